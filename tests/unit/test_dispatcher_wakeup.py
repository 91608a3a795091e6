"""WakeOne: one idle worker per signal, none lost when nobody waits, all released on close."""

from __future__ import annotations

import asyncio

from services.dispatcher.wakeup import Signal, WakeOne


async def test_a_signal_wakes_one_worker_the_longest_waiting() -> None:
    """Three workers wait; one signal wakes the first of them only."""
    wake = WakeOne()
    woken: list[int] = []

    async def worker(n: int) -> None:
        await wake.wait()
        woken.append(n)

    tasks = [asyncio.create_task(worker(n)) for n in range(3)]
    await asyncio.sleep(0)
    wake.notify()
    await asyncio.sleep(0.01)
    assert woken == [0]
    wake.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert sorted(woken) == [0, 1, 2]


async def test_a_signal_with_nobody_waiting_is_kept_for_the_next_wait() -> None:
    """A signal sent while every worker is busy lets the next one that waits look at once."""
    wake = WakeOne()
    wake.notify()
    await asyncio.wait_for(wake.wait(), 0.1)
    waiting = asyncio.create_task(wake.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    wake.close()
    await asyncio.wait_for(waiting, 1)
    await asyncio.wait_for(wake.wait(), 0.1)  # closed: returns at once


async def test_a_cancelled_waiter_does_not_swallow_a_signal() -> None:
    """A worker cancelled while waiting is skipped; the signal reaches the next one."""
    wake = WakeOne()
    first = asyncio.create_task(wake.wait())
    second = asyncio.create_task(wake.wait())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    wake.notify()
    await asyncio.wait_for(second, 1)


async def test_a_count_of_signals_wakes_as_many_workers_and_keeps_the_rest() -> None:
    """notify(3) with two workers waiting wakes both and keeps one signal, with its reason."""
    wake = WakeOne()
    woken: list[Signal] = []

    async def worker() -> None:
        woken.append(await wake.wait())

    tasks = [asyncio.create_task(worker()) for _ in range(2)]
    await asyncio.sleep(0)
    assert wake.notify(3, Signal.POLL) == 3
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert woken == [Signal.POLL, Signal.POLL]
    assert await asyncio.wait_for(wake.wait(), 0.1) is Signal.POLL
    waiting = asyncio.create_task(wake.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # three signals, three looks: no fourth
    wake.close()
    await asyncio.wait_for(waiting, 1)
