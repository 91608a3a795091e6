"""Per-location ordering of inputs inside one process (KeyedLocks)."""

from __future__ import annotations

import asyncio

from services.locations.ordering import KeyedLocks


async def test_same_key_runs_one_at_a_time_in_arrival_order() -> None:
    """Holders of one key run one after another, in the order they asked, even when the first is slow."""
    locks = KeyedLocks()
    order: list[str] = []

    async def work(name: str, pause: float) -> None:
        async with locks.hold("L1"):
            order.append(f"{name}-start")
            await asyncio.sleep(pause)
            order.append(f"{name}-end")

    await asyncio.wait_for(asyncio.gather(work("a", 0.05), work("b", 0), work("c", 0)), 5)
    assert order == ["a-start", "a-end", "b-start", "b-end", "c-start", "c-end"]
    assert len(locks) == 0


async def test_different_keys_do_not_wait_for_each_other() -> None:
    """A slow holder of one key does not hold up another key."""
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, pause: float) -> None:
        async with locks.hold(key):
            await asyncio.sleep(pause)
            order.append(key)

    await asyncio.wait_for(asyncio.gather(work("slow", 0.1), work("fast", 0)), 5)
    assert order == ["fast", "slow"]


async def test_lock_is_released_when_the_body_fails() -> None:
    """An exception inside the body releases the key and forgets it."""
    locks = KeyedLocks()
    try:
        async with locks.hold("L1"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with asyncio.timeout(1), locks.hold("L1"):
        pass
    assert len(locks) == 0
