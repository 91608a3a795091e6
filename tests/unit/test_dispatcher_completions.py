"""Group commit of push completions: the finishes of pushes that run together make one write."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from pymongo import UpdateOne

from services.dispatcher.pushes import Completions, PushQueue


class Recorder:
    """Stands in for PushQueue.finish_many: records each write's size, optionally slow."""

    def __init__(self, pause: float = 0.0) -> None:
        self.writes: list[int] = []
        self.pause = pause

    async def finish_many(self, operations: Sequence[UpdateOne]) -> None:
        await asyncio.sleep(self.pause)
        self.writes.append(len(operations))


def update(n: int) -> UpdateOne:
    return UpdateOne({"_id": n}, [{"$set": {"done": True}}])


def completions(recorder: Recorder, window: float = 5.0) -> tuple[Completions, list[int]]:
    written: list[int] = []
    group = Completions(cast(PushQueue, recorder), window, lambda keys: written.append(len(keys)))
    return group, written


async def test_the_finishes_of_pushes_woken_together_are_written_once() -> None:
    """Three pushes expected: the first two finishes wait, the third writes all three at once."""
    recorder = Recorder()
    group, written = completions(recorder)
    group.expect(3)
    group.add(update(1), ("p", "locations", "L1"))
    group.add(update(2), ("p", "locations", "L2"))
    await asyncio.sleep(0.01)
    assert recorder.writes == [] and not group.idle
    group.add(update(3), ("p", "locations", "L3"))
    await group.drain()
    assert recorder.writes == [3] and written == [3] and group.idle


async def test_a_push_that_ends_without_a_finish_releases_the_others() -> None:
    """An expected push that finds nothing (or fails) no longer holds the group back."""
    recorder = Recorder()
    group, _ = completions(recorder)
    group.expect(2)
    group.add(update(1), ("p", "locations", "L1"))
    await asyncio.sleep(0.01)
    assert recorder.writes == []
    group.settled()
    await asyncio.sleep(0.01)
    assert recorder.writes == [1]


async def test_the_window_bounds_the_wait_for_a_slow_push() -> None:
    """A finish waits at most `window` for a push that is still running."""
    recorder = Recorder()
    group, _ = completions(recorder, window=0.05)
    group.expect(2)
    group.add(update(1), ("p", "locations", "L1"))
    await asyncio.sleep(0.2)
    assert recorder.writes == [1]


async def test_finishes_arriving_during_a_write_join_the_next() -> None:
    """While one write is out, new finishes are held and written together after it."""
    recorder = Recorder(pause=0.05)
    group, _ = completions(recorder)
    group.expect(1)
    group.add(update(1), ("p", "locations", "L1"))
    await asyncio.sleep(0.01)  # the first write is out
    group.expect(2)
    group.add(update(2), ("p", "locations", "L2"))
    group.add(update(3), ("p", "locations", "L3"))
    await group.drain()
    assert recorder.writes == [1, 2]


async def test_after_a_write_the_group_is_idle_for_the_callback() -> None:
    """The callback runs once the write is done: a missed claim woken from it finds the push free."""
    recorder = Recorder(pause=0.01)
    states: list[bool] = []
    group = Completions(cast(PushQueue, recorder), 5.0, lambda keys: states.append(group.idle))
    group.expect(1)
    group.add(update(1), ("p", "locations", "L1"))
    assert not group.idle
    await group.drain()
    assert states == [True] and group.idle
