"""The outbox of partners' object changes: no accepted change goes unannounced when a process dies.

A partner's object is stored marked unannounced in the same write that changes it. Once its event
is published, `published` queues the mark to be cleared; a few times a second the queued marks are
cleared in one bulk write. A sweep finds marks older than `grace` (their process died between the
write and the publish, or before clearing) and publishes the current state of those objects again.
Consumers may so see an event twice, never miss one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

import structlog

from shared.contracts.base import Message
from shared.modules.receiver import PartnerRecord, PartnerVersion, ReceiverStore
from shared.ocpi.v2_1_1.types import utc_now
from shared.periodic import Periodic

log = structlog.get_logger(__name__)

Publish = Callable[[Message], Awaitable[None]]
T = TypeVar("T")


class Announcer(Generic[T]):
    """Clears the marks of published changes and republishes the ones left behind.

    `to_event` announces a stored record as it is now (what changed is not known any more after a
    crash); `mark_of` tells which record version a published event announced (None: not ours).
    """

    def __init__(
        self,
        partners: ReceiverStore[T],
        publish: Publish,
        to_event: Callable[[PartnerRecord[T]], Message],
        mark_of: Callable[[Any], PartnerVersion | None],
        flush_every: float = 0.25,
        sweep_every: float = 15.0,
        grace: float = 30.0,
    ) -> None:
        self._partners = partners
        self._publish = publish
        self._to_event = to_event
        self._mark_of = mark_of
        self._flush_every = flush_every
        self._sweep_every = sweep_every
        # Well above the time from a write to its publish (an RPC answer is due within seconds).
        self._grace = grace
        self._done: list[PartnerVersion] = []
        self._since_sweep = 0.0
        self._loop = Periodic("announcer", flush_every, self._tick)

    def published(self, events: Sequence[Message]) -> None:
        """These events are on the broker: their marks can go."""
        marks = (self._mark_of(event) for event in events)
        self._done.extend(mark for mark in marks if mark is not None)

    async def flush(self) -> None:
        """Clear the marks of what was published since the last flush."""
        done, self._done = self._done, []
        try:
            await self._partners.announced(done)
        except Exception:
            self._done[:0] = done  # tried again at the next flush; the sweep covers a crash
            raise

    async def sweep(self) -> int:
        """Publish again the changes whose mark outlived the grace period; how many."""
        stale = await self._partners.unannounced(utc_now() - timedelta(seconds=self._grace), 500)
        events = [self._to_event(record) for record in stale]
        for event in events:
            await self._publish(event)
        self.published(events)
        if events:
            log.warning("partner_changes_announced_again", count=len(events))
        return len(events)

    async def start(self) -> None:
        self._since_sweep = self._sweep_every  # sweep once at start: a crash before it left marks behind
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        with contextlib.suppress(Exception):
            await self.flush()

    async def _tick(self) -> None:
        """Flush every tick; sweep every `sweep_every` seconds."""
        if self._since_sweep >= self._sweep_every:
            self._since_sweep = 0.0
            await self.sweep()
        self._since_sweep += self._flush_every
        await self.flush()
