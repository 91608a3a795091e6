"""The push loop: claim a due pending push under a lease, send it, record the outcome."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import structlog

from services.dispatcher.domain import Answer, PushCall, classify, retry_delay
from services.dispatcher.health import PartnerHealth
from services.dispatcher.ocpi_client import OcpiClient, Reply
from services.dispatcher.partners import Partner, PartnerProjection
from services.dispatcher.push_plans import MODULE_PLANS, ModulePlan
from services.dispatcher.pushes import Delivered, PendingPush, PushQueue
from services.dispatcher.tuning import Tuning
from services.dispatcher.wakeup import WakeOne
from shared.contracts.partners import SyncState
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Settings
from shared.storage import Document

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Wall-clock time, aware UTC."""
    return datetime.now(UTC)


class PushWorker:
    """A few tasks that push pending object states to partners, in version order per object."""

    def __init__(
        self,
        pushes: PushQueue,
        partners: PartnerProjection,
        health: PartnerHealth,
        client: OcpiClient,
        settings: Settings,
        tuning: Tuning,
        owner: str,
        clock: Clock = utc_now,
    ) -> None:
        self._pushes = pushes
        self._partners = partners
        self._health = health
        self._client = client
        self._settings = settings
        self._tuning = tuning
        self._owner = owner
        self._clock = clock
        # One worker looks per signal; one that finds a push signals the next (there may be more).
        self._wakeup = WakeOne()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something became due: look now rather than at the next poll."""
        self._wakeup.notify()

    async def start(self) -> None:
        """Start the worker tasks, and the tick that looks for pushes due later or queued elsewhere."""
        self._stopping = False
        self._wakeup = WakeOne()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._tuning.workers)]
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        """Take no new pushes; let those in flight finish (bounded), then cancel what is left."""
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        self._wakeup.close()
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=self._tuning.stop_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _tick(self) -> None:
        # Retries come due and other replicas queue pushes without telling this one.
        while True:
            await asyncio.sleep(self._tuning.poll)
            self._wakeup.notify()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                job = await self._pushes.claim(self._owner, self._clock(), self._tuning.lease)
                if job is not None:
                    self._wakeup.notify()
                    await self._deliver(job)
                    continue
            except Exception:
                # The lease of a claimed push runs out and another attempt picks it up.
                log.exception("push_loop_error")
                await asyncio.sleep(1.0)
                continue
            await self._wakeup.wait()

    async def _deliver(self, job: PendingPush) -> None:
        # Every push_* line names the request behind the state it pushes.
        with structlog.contextvars.bound_contextvars(request_id=job.request_id):
            await self._deliver_bound(job)

    async def _deliver_bound(self, job: PendingPush) -> None:
        # Three reads at once: each is a round trip, and the push waits for all of them.
        partner, stored, delivered = await asyncio.gather(
            self._partners.get(job.partner_id),
            self._pushes.newest_state(job.module, job.key),
            self._pushes.delivered_state(job.partner_id, job.module, job.key),
        )
        ids = {"partner_id": job.partner_id, "module": job.module.value, "key": job.key}
        if partner is None or not partner.receives(job.module):
            await self._pushes.drop(job, self._owner, self._clock())
            log.info("push_dropped", reason="not a receiver", **ids)
            return
        if partner.sync_state is SyncState.OUT_OF_SYNC:
            await self._pushes.park(job, self._owner, job.attempts)
            return
        if stored is None:  # states are stored before pushes are queued: not expected
            await self._pushes.drop(job, self._owner, self._clock())
            log.error("push_dropped", reason="no state", **ids)
            return
        # Always the newest state: never older than anything the partner got, and as current as can be.
        version, state = stored
        plan = MODULE_PLANS[job.module]
        parts = job.parts
        if delivered is not None and delivered.version >= version:
            # The partner has this state: send only the parts no push has carried yet.
            parts = [p for p in job.parts if not plan.covers(delivered.pushed, p)]
            if not parts:
                await self._pushes.drop(job, self._owner, self._clock())
                return
        calls = plan.calls(job.key, state, parts, self._tuning.max_evse_calls)
        sent, detail = await self._send(partner, job, plan, state, calls)
        now = self._clock()
        fields = {**ids, "version": version}
        if sent is not None:
            record = Delivered(version=version, pushed=plan.pushed(sent, parts))
            await self._pushes.complete(job, self._owner, record, now)
            log.info("push_delivered", calls=[f"{c.method} {'/'.join(c.path)}" for c in sent], **fields)
            # A partner read as IN_SYNC needs no write. If another push failed since, that push's
            # own retry reads RETRYING and brings the partner back when it succeeds.
            if partner.sync_state is not SyncState.IN_SYNC:
                await self._health.answered(job.partner_id, now)
            return
        attempts = job.attempts + 1
        if attempts >= self._settings.push_max_attempts:
            # OUT_OF_SYNC first, so the parked-push reconciliation never sees a parked push of a
            # partner that is still RETRYING.
            await self._health.give_up(job.partner_id, f"{attempts} attempts failed: {detail}", now)
            await self._pushes.park(job, self._owner, attempts)
            log.warning("push_failed_parked", attempts=attempts, detail=detail, **fields)
            return
        delay = retry_delay(
            job.attempts,
            self._settings.push_backoff_base,
            self._settings.push_backoff_max,
            random.uniform(0.5, 1.0),
        )
        await self._pushes.release(job, self._owner, now + timedelta(seconds=delay), attempts)
        log.info(
            "push_failed_will_retry", attempts=attempts, retry_in=round(delay, 3), detail=detail, **fields
        )
        await self._health.push_failed(job.partner_id, detail, now)

    def _url(self, partner: Partner, module: ModuleID, call: PushCall) -> str:
        base = partner.endpoints[module].rstrip("/")
        segments = (self._settings.country_code, self._settings.party_id, *call.path)
        return base + "/" + "/".join(quote(s, safe="") for s in segments)

    async def _call(self, partner: Partner, job: PendingPush, call: PushCall) -> Reply:
        url = self._url(partner, job.module, call)
        return await self._client.call(call.method, url, partner.token, call.body, job.request_id)

    async def _send(
        self,
        partner: Partner,
        job: PendingPush,
        plan: ModulePlan,
        state: Document | None,
        calls: list[PushCall],
    ) -> tuple[list[PushCall] | None, str]:
        """Run the calls in order; the calls that carried the state, or None and why it failed."""
        module = job.module
        sent: list[PushCall] = []
        for call in calls:
            reply = await self._call(partner, job, call)
            answer = classify(reply.http_status, reply.status_code)
            if call.absent_ok and reply.http_status == 404:
                # A DELETE of an object the partner does not hold: it is where we want it.
                answer = Answer.OK
            fallback = plan.fallback(state) if state is not None else None
            if answer is Answer.UNKNOWN_OBJECT and call.partial and fallback is not None:
                # The receiver lacks the object or a part of it: the whole object puts everything in place.
                log.info(
                    "push_unknown_object_fallback",
                    partner_id=partner.partner_id,
                    module=module.value,
                    method=call.method,
                    path="/".join(call.path),
                    request_id=reply.request_id,
                )
                reply = await self._call(partner, job, fallback)
                if classify(reply.http_status, reply.status_code) is Answer.OK:
                    return [*sent, fallback], ""
                answer = Answer.FAILED
            if answer is not Answer.OK:
                detail = (
                    f"{call.method} HTTP {reply.http_status} status {reply.status_code} "
                    f"{reply.message}".strip()
                )
                return None, f"{detail} (request {reply.request_id})"
            sent.append(call)
        return sent, ""
