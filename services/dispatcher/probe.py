"""The partner probe: asks OUT_OF_SYNC partners and every CPO partner whether they answer again.

A partner that answers again is set IN_SYNC and its parked pushes go out; a CPO partner that comes back
after an outage is pulled, since pushes it sent us meanwhile may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from services.dispatcher.domain import next_probe_interval
from services.dispatcher.health import PartnerHealth
from services.dispatcher.ocpi_client import OcpiClient
from services.dispatcher.partners import Partner, PartnerProjection
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.push_worker import TIMER_SLACK, Clock, utc_now
from services.dispatcher.pushes import PushQueue
from services.dispatcher.tuning import Tuning
from shared.contracts.partners import SyncState
from shared.settings import Role

log = structlog.get_logger(__name__)

# Partners probed concurrently per tick and replica.
BATCH = 16


class PartnerProbe:
    """One loop per replica; claims due probes so replicas do not probe the same partner together."""

    def __init__(
        self,
        partners: PartnerProjection,
        pushes: PushQueue,
        pulls: PullSchedule,
        health: PartnerHealth,
        client: OcpiClient,
        tuning: Tuning,
        wake_pulls: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self._partners = partners
        self._pushes = pushes
        self._pulls = pulls
        self._health = health
        self._client = client
        self._tuning = tuning
        self._wake_pulls = wake_pulls
        self._clock = clock
        self._stop = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._reconciled_at: float | None = None

    def wake_in(self, delay: float) -> None:
        """A probe this replica scheduled is due in `delay` seconds: look then, not at the next tick."""
        loop = asyncio.get_running_loop()
        self._timers = {t for t in self._timers if t.when() > loop.time()}
        # A little after: claims compare due times with the wall clock, timers run on the loop's.
        self._timers.add(loop.call_later(delay + TIMER_SLACK, self._wakeup.set))

    async def start(self) -> None:
        """Start the probe loop."""
        self._stop.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Let the probes in flight finish (bounded by the HTTP timeout), then end the loop."""
        self._stop.set()
        self._wakeup.set()
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._task is None:
            return
        _, late = await asyncio.wait([self._task], timeout=self._tuning.stop_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                await self._tick()
            except Exception:
                log.exception("probe_loop_error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._tuning.probe_tick)

    async def _tick(self) -> None:
        at = asyncio.get_running_loop().time()
        if self._reconciled_at is None or at - self._reconciled_at >= self._tuning.reconcile_every:
            self._reconciled_at = at
            await self._reconcile_parked()
        now = self._clock()
        due: list[Partner] = []
        while len(due) < BATCH:
            lease = 2 * self._tuning.push_timeout + 1.0
            partner = await self._partners.claim_probe(now, lease, self._tuning.cpo_probe)
            if partner is None:
                break
            due.append(partner)
        await asyncio.gather(*(self._probe(p) for p in due))

    async def _reconcile_parked(self) -> None:
        """Parked pushes of partners that are not OUT_OF_SYNC (a race with a recovery) go out again."""
        ids = await self._pushes.parked_partner_ids()
        if not ids:
            return
        known = {p.partner_id: p for p in await self._partners.get_many(ids)}
        for partner_id in ids:
            partner = known.get(partner_id)
            if partner is None:
                await self._pushes.forget_partner(partner_id)
            elif partner.sync_state is not SyncState.OUT_OF_SYNC:
                self._health.on_unparked(await self._pushes.unpark_partner(partner_id, self._clock()))

    async def _pull_back(self, partner: Partner, now: datetime) -> None:
        """The partner answers again: what it pushed us meanwhile may be lost, so a delta pull of
        every module it sends (a CPO's locations and tariffs, an eMSP's tokens)."""
        modules = partner.sent_modules()
        if not modules:
            return
        log.info("partner_back_pulling", partner_id=partner.partner_id, modules=[m.value for m in modules])
        for module in modules:
            await self._pulls.request(partner.partner_id, module, now, full=False)
        self._wake_pulls()

    async def _probe(self, partner: Partner) -> None:
        reply = await self._client.call("GET", partner.versions_url, partner.token)
        now = self._clock()
        pid = partner.partner_id
        if reply.answered:
            if partner.sync_state is not SyncState.IN_SYNC:
                await self._health.answered(pid, now)
            if partner.role is Role.CPO:
                if not partner.reachable and await self._partners.set_reachable(pid, True):
                    await self._pull_back(partner, now)
                if partner.sync_state is SyncState.OUT_OF_SYNC:
                    # Claimed as out of sync (due after the lease); watched as usual from now on.
                    at = now + timedelta(seconds=self._tuning.cpo_probe)
                    await self._partners.schedule_probe(pid, at, 0.0)
                self.wake_in(self._tuning.cpo_probe)
            else:
                if partner.sync_state is SyncState.OUT_OF_SYNC:
                    # An eMSP is watched only while out of sync: its coming back is this answer.
                    await self._pull_back(partner, now)
                await self._partners.stop_probing(pid)
            return
        if partner.role is Role.CPO and partner.reachable and await self._partners.set_reachable(pid, False):
            log.warning("partner_unreachable", partner_id=pid, detail=reply.message, status=reply.http_status)
        if partner.sync_state is SyncState.OUT_OF_SYNC:
            tuning = self._tuning
            interval = next_probe_interval(partner.probe_interval, tuning.probe_min, tuning.probe_max)
            if partner.role is Role.CPO:
                interval = min(interval, self._tuning.cpo_probe)
            await self._partners.schedule_probe(pid, now + timedelta(seconds=interval), interval)
            self.wake_in(interval)
        elif partner.role is Role.CPO:
            self.wake_in(self._tuning.cpo_probe)  # the claim scheduled it
        else:
            await self._partners.stop_probing(pid)
