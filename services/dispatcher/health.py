"""Partner sync-state transitions (IN_SYNC, RETRYING, OUT_OF_SYNC) and the events announcing them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from services.dispatcher.partners import PartnerCache
from services.dispatcher.pushes import PushQueue
from shared.contracts.base import Message
from shared.contracts.partners import PartnerSyncStateChanged, SyncState

log = structlog.get_logger(__name__)

Publish = Callable[[Message], Awaitable[None]]


class PartnerHealth:
    """Moves partners between sync states; only the replica whose write made a transition announces it."""

    def __init__(self, partners: PartnerCache, pushes: PushQueue, publish: Publish, probe_min: float) -> None:
        self._cache = partners
        self._partners = partners.projection
        self._pushes = pushes
        self._publish = publish
        self._probe_min = probe_min
        # Set by the composition root: pushes unparked are due now; a probe is due in so many seconds.
        self.on_unparked: Callable[[int], None] = lambda count: None
        self.on_probe_due: Callable[[float], None] = lambda delay: None

    async def _announce(self, partner_id: str, state: SyncState, detail: str, now: datetime) -> None:
        try:
            event = PartnerSyncStateChanged(partner_id=partner_id, state=state, detail=detail, at=now)
            await self._publish(event)
        except Exception:
            log.exception("sync_state_not_published", partner_id=partner_id, state=state.value)

    async def push_failed(self, partner_id: str, detail: str, now: datetime) -> None:
        """A push failed but will be retried: IN_SYNC -> RETRYING."""
        if await self._partners.mark_retrying(partner_id):
            self._cache.set_state(partner_id, SyncState.RETRYING)
            log.info("partner_retrying", partner_id=partner_id, detail=detail)
            await self._announce(partner_id, SyncState.RETRYING, detail, now)

    async def give_up(self, partner_id: str, detail: str, now: datetime) -> None:
        """Attempts are spent: OUT_OF_SYNC, park the partner's pushes, start probing it."""
        probe_at = now + timedelta(seconds=self._probe_min)
        changed = await self._partners.mark_out_of_sync(partner_id, probe_at, self._probe_min)
        parked = await self._pushes.park_partner(partner_id)
        if changed:
            self._cache.set_state(partner_id, SyncState.OUT_OF_SYNC)
            self.on_probe_due(self._probe_min)
            log.warning("partner_out_of_sync", partner_id=partner_id, detail=detail, parked=parked)
            await self._announce(partner_id, SyncState.OUT_OF_SYNC, detail, now)

    async def answered(self, partner_id: str, now: datetime) -> None:
        """The partner answers again: IN_SYNC, and its parked pushes are due now."""
        before = await self._partners.mark_in_sync(partner_id)
        # IN_SYNC now, whoever made it so (None: it was already).
        self._cache.set_state(partner_id, SyncState.IN_SYNC)
        if before is None:
            return
        unparked = await self._pushes.unpark_partner(partner_id, now)
        self.on_unparked(unparked)
        log.info("partner_in_sync", partner_id=partner_id, was=before.value, unparked=unparked)
        await self._announce(partner_id, SyncState.IN_SYNC, f"recovered from {before.value}", now)
