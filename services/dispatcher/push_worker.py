"""The push loop: claim a due pending push under a lease, send it, record the outcome."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import msgspec
import structlog

from services.dispatcher.domain import Answer, PushCall, classify, is_refusal, retry_delay
from services.dispatcher.health import PartnerHealth
from services.dispatcher.ocpi_client import OcpiClient, Reply
from services.dispatcher.partners import Partner, PartnerCache
from services.dispatcher.push_plans import MODULE_PLANS, ModulePlan
from services.dispatcher.pushes import (
    Completions,
    Delivered,
    PendingPush,
    PushKey,
    PushQueue,
    finish,
    push_key,
)
from services.dispatcher.tuning import Tuning
from services.dispatcher.wakeup import Signal, WakeOne
from shared.contracts.base import Message, routing_key
from shared.contracts.partners import SyncState
from shared.failpoints import failpoint
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Settings
from shared.storage import Document

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Publish = Callable[[Message], Awaitable[None]]
# Timers for due pushes fire this much after the due time (wall clock and loop clock differ a little).
TIMER_SLACK = 0.05
# A push the partner answered HTTP 429 (too many requests) goes again after this long, times a jitter
# of 0.5 to 1: the partner is up and says so; its retry budget and sync state are left alone.
THROTTLED_PAUSE = 2.0
# A delivery's announcement (CdrDelivered) the broker refuses is tried this many times, this long
# apart, with the lease held; then the completion is written anyway (the partner has the object).
ANNOUNCE_ATTEMPTS = 3
ANNOUNCE_PAUSE = 1.0


def utc_now() -> datetime:
    """Wall-clock time, aware UTC."""
    return datetime.now(UTC)


class PushWorker:
    """A few tasks that push pending object states to partners, in version order per object.

    Database work per push: one claim (which brings the state, the parts and what the partner has)
    and one completion, written together with those of the pushes running alongside (Completions).
    Workers are woken one per push queued by this replica, per retry this replica scheduled (a
    timer), per push unparked; a slow poll finds what other replicas left (a dead replica's retries).

    A worker woken for a record this replica queued claims that record by its identity, urgent
    records first (a blocked card before a backlog): a point lookup whose cost does not grow with
    the backlog. Timers, polls and unparking use the sorted claim (most urgent, then most overdue).
    """

    def __init__(
        self,
        pushes: PushQueue,
        partners: PartnerCache,
        health: PartnerHealth,
        client: OcpiClient,
        settings: Settings,
        tuning: Tuning,
        owner: str,
        clock: Clock = utc_now,
        publish: Publish | None = None,
    ) -> None:
        self._pushes = pushes
        # Publishes what a module plan announces of a delivery (events exchange).
        self._publish = publish
        self._partners = partners
        self._health = health
        self._client = client
        self._settings = settings
        self._tuning = tuning
        self._owner = owner
        self._clock = clock
        self._wakeup = WakeOne()
        self._completions = Completions(pushes, tuning.complete_window, self._written)
        # Claims that found nothing while this replica held leases: the push they were woken for
        # may be one of those, due again if something joined it during the push.
        self._missed = 0
        self._running = 0
        # Records this replica is pushing now, and those of them that changed meanwhile (and whether
        # urgently): a change of a record in flight wakes nobody (the claim would find it leased);
        # its push's completion makes it due again and wakes one worker for it.
        self._in_flight: set[PushKey] = set()
        self._dirty: dict[PushKey, bool] = {}
        # Records a worker was woken for and nobody here claimed yet: another change of one of them
        # needs no second worker (under load, changes come faster than claims). The woken workers
        # take them in order from the two queues, urgent first; an entry no longer awaited (a poll
        # claimed it) is skipped.
        self._awaited: set[PushKey] = set()
        self._urgent_keys: deque[PushKey] = deque()
        self._keys: deque[PushKey] = deque()
        # Pushes running per partner, and the records woken for while their partner held its share
        # of the workers (`tuning.share`): each of those waits for one of that partner's pushes to
        # end (else the sorted claim, which leaves busy partners out, finds it).
        self._load: Counter[str] = Counter()
        self._deferred: dict[str, deque[PushKey]] = {}
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    def wake(self, count: int = 1, signal: Signal = Signal.QUEUED) -> None:
        """`count` pushes became due: one worker looks for each, now rather than at the next poll."""
        self._completions.expect(self._wakeup.notify(count, signal))

    def wake_for(self, keys: Sequence[PushKey], urgent: Collection[PushKey] = ()) -> None:
        """These records became due (`urgent` ones go first): one worker per record not being pushed
        by this replica now."""
        idle = 0
        for key in keys:
            first = key in urgent
            if key in self._in_flight:
                self._dirty[key] = self._dirty.get(key, False) or first
            elif key not in self._awaited:
                self._await(key, first)
                idle += 1
            elif first:
                self._urgent_keys.append(key)  # awaited already: its worker now takes it first
        if idle:
            self.wake(idle)

    def _await(self, key: PushKey, urgent: bool) -> None:
        self._awaited.add(key)
        (self._urgent_keys if urgent else self._keys).append(key)

    def _next_key(self) -> PushKey | None:
        """The next awaited record for a worker woken for one, urgent first; None when none is left."""
        for keys in (self._urgent_keys, self._keys):
            while keys:
                key = keys.popleft()
                if key in self._awaited:
                    self._awaited.discard(key)
                    return key
        return None

    def wake_later(self, delay: float) -> None:
        """A push this replica scheduled comes due in `delay` seconds: a worker looks then."""
        loop = asyncio.get_running_loop()
        self._timers = {t for t in self._timers if t.when() > loop.time()}
        # A little after: the claim compares due times with the wall clock, timers run on the loop's.
        self._timers.add(loop.call_later(delay + TIMER_SLACK, self._timer_fired))

    def _timer_fired(self) -> None:
        if not self._stopping:
            self.wake(1, Signal.TIMER)

    async def start(self) -> None:
        """Start the worker tasks, and the tick that looks for pushes due later or queued elsewhere."""
        self._stopping = False
        self._wakeup = WakeOne()
        self._completions = Completions(self._pushes, self._tuning.complete_window, self._written)
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._tuning.workers)]
        self._ticker = asyncio.create_task(self._tick())
        # Pushes left pending by a previous run of this process or by a replica that died.
        self._poll()

    async def stop(self) -> None:
        """Take no new pushes; let those in flight finish (bounded), then cancel what is left."""
        self._stopping = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
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
        await self._completions.drain()

    def _poll(self) -> None:
        # A poll's find may be one of many (a backlog): its worker wakes the next.
        self.wake(1, Signal.POLL)

    async def _tick(self) -> None:
        # Pushes other replicas queued and left (a dead replica's retries) come due without a signal.
        while True:
            await asyncio.sleep(self._tuning.poll)
            self._poll()

    async def _run(self) -> None:
        while not self._stopping:
            signal = await self._wakeup.wait()
            if self._stopping:
                self._completions.settled()
                return
            wanted = self._next_key() if signal is Signal.QUEUED else None
            if wanted is not None and not self._reserve(wanted[0]):
                # Its partner holds its share of the workers (slow, or a backlog): the record waits
                # for one of those pushes to end, and this worker is free for other partners.
                self._defer(wanted)
                self._completions.settled()
                continue
            try:
                if wanted is not None:
                    job = await self._pushes.claim_key(self._owner, wanted, self._clock(), self._tuning.lease)
                else:
                    busy = [p for p, running in self._load.items() if running >= self._tuning.share]
                    job = await self._pushes.claim(self._owner, self._clock(), self._tuning.lease, busy)
                    if job is not None and not self._reserve(job.partner_id):
                        # Another worker took the partner's last share while this one claimed.
                        await self._pushes.release(job, self._owner, self._clock(), job.attempts)
                        self._defer(push_key(job))
                        self._completions.settled()
                        continue
            except Exception:
                if wanted is not None:
                    self._released(wanted[0])
                    self._await(wanted, False)  # the next signal or poll takes it
                self._completions.settled()
                # The next signal or poll tries again.
                log.exception("push_loop_error")
                await asyncio.sleep(1.0)
                continue
            if job is None:
                if wanted is None:
                    self._missed_claim(signal)
                else:
                    self._released(wanted[0])
                    if wanted in self._in_flight:
                        # This replica is pushing it (another worker's claim came first): the change
                        # that woke us goes out once that push is written.
                        self._dirty.setdefault(wanted, False)
                    # Otherwise another replica holds it, or nothing of it is due any more.
                    self._completions.settled()
                continue
            key = push_key(job)
            known = key in self._awaited
            self._awaited.discard(key)
            if signal is Signal.POLL and not known:
                # What this replica did not queue (a dead replica's, or from before a restart) may be
                # one of a backlog: look again. What it queued has workers coming already.
                self._poll()
            self._in_flight.add(key)
            self._running += 1
            try:
                await self._deliver(job)
            except Exception:
                # The lease of a claimed push runs out and another attempt picks it up.
                log.exception("push_loop_error")
            finally:
                self._running -= 1
                self._released(job.partner_id)
                self._written(())

    def _reserve(self, partner_id: str) -> bool:
        """Take one of the partner's share of the workers, before the claim (workers woken together
        see each other's); False when it holds its share already."""
        if self._load[partner_id] >= self._tuning.share:
            return False
        self._load[partner_id] += 1
        return True

    def _defer(self, key: PushKey) -> None:
        self._deferred.setdefault(key[0], deque()).append(key)

    def _released(self, partner_id: str) -> None:
        """A worker of the partner is free again: a record deferred for its share gets a worker."""
        self._load[partner_id] -= 1
        if self._load[partner_id] <= 0:
            del self._load[partner_id]
        waiting = self._deferred.get(partner_id)
        if waiting:
            self.wake_for([waiting.popleft()])
            if not waiting:
                del self._deferred[partner_id]

    def _missed_claim(self, signal: Signal) -> None:
        if signal is Signal.QUEUED:
            if self._running > 0 or not self._completions.idle:
                self._missed += 1  # woken again once this replica's pushes are written
            else:
                # Held by another replica, perhaps: one more look a little later, no more.
                self.wake_later(self._tuning.missed_retry)
        self._completions.settled()

    def _written(self, keys: Sequence[PushKey]) -> None:
        """Pushes of this replica ended, those of `keys` with their completion written: a record
        that changed during its push is due again (one worker for it), and what a missed claim was
        woken for may be due once nothing of this replica runs or waits to be written."""
        again = 0
        for key in keys:
            self._in_flight.discard(key)
            if key in self._dirty:
                urgent = self._dirty.pop(key)
                if key not in self._awaited:
                    self._await(key, urgent)
                    again += 1
        if self._missed and self._running == 0 and self._completions.idle:
            again += self._missed
            self._missed = 0
        if again:
            self.wake(again)

    async def _deliver(self, job: PendingPush) -> None:
        finished = False
        try:
            # Every push_* line names the request behind the state it pushes.
            with structlog.contextvars.bound_contextvars(request_id=job.request_id):
                finished = await self._deliver_bound(job)
        finally:
            if not finished:
                # Released for a retry, parked or dropped: a change meanwhile waits for that too.
                self._in_flight.discard(push_key(job))
                self._dirty.pop(push_key(job), None)
                self._completions.settled()

    def _finish(self, job: PendingPush, sent: Delivered | None, refused: str | None = None) -> bool:
        self._completions.add(finish(job, self._owner, sent, self._clock(), refused), push_key(job))
        return True

    async def _deliver_bound(self, job: PendingPush) -> bool:
        """Push one claimed job; True when it ended with a (group) finish, False otherwise."""
        partner = await self._partners.get(job.partner_id)
        ids = {"partner_id": job.partner_id, "module": job.module.value, "key": job.key}
        if partner is None or not partner.receives(job.module):
            await self._pushes.forget(job, self._owner)
            log.info("push_dropped", reason="not a receiver", **ids)
            return False
        if partner.sync_state is SyncState.OUT_OF_SYNC:
            await self._pushes.park(job, self._owner, job.attempts)
            return False
        # Always the newest state: never older than anything the partner got, and as current as can be.
        version, state, delivered = job.version, job.state, job.delivered
        plan = MODULE_PLANS[job.module]
        parts = job.parts
        if delivered is not None and delivered.version >= version:
            # The partner has this state: send only the parts no push has carried yet.
            parts = [p for p in job.parts if not plan.covers(delivered.pushed, p)]
            if not parts:
                return self._finish(job, None)
        if job.refused is not None and job.refused >= version:
            # The partner refused this state for good: the same state again (an event announced
            # once more) is not sent again; a newer one is.
            return self._finish(job, None)
        whole = plan.fallback(state) if plan.whole_first and delivered is None and state is not None else None
        if whole is not None:
            # The partner has no version of it: the whole object, not a part it could not place.
            calls = [whole]
        else:
            calls = plan.calls(job.key, state, parts, self._tuning.max_push_calls)
        sent, detail, replies = await self._send(partner, job, plan, state, calls)
        now = self._clock()
        fields = {**ids, "version": version}
        if sent is None and detail.startswith(THROTTLED_DETAIL):
            pause = THROTTLED_PAUSE * random.uniform(0.5, 1.0)
            await self._pushes.release(job, self._owner, now + timedelta(seconds=pause), job.attempts)
            self.wake_later(pause)
            log.info("push_throttled", retry_in=round(pause, 3), detail=detail, **fields)
            return False
        if sent is not None:
            # Tests die here (after the partner took it, before anything is recorded) to prove
            # what a crash in this window costs: one more push, never a lost one.
            failpoint(f"{ANSWERED_FAILPOINT}.{job.module.value}")
            announcement = plan.announce(job.key, job.partner_id, replies, now)
            if announcement is not None:
                # Before the completion: a crash between the two repeats the push (and this event),
                # it never loses the event while the partner has the object.
                await self._announce(announcement, fields)
            self._finish(job, Delivered(version=version, pushed=plan.pushed(sent, parts)))
            log.info("push_delivered", calls=[_shown(c) for c in sent], **fields)
            # A partner read as IN_SYNC needs no write. If another push failed since, that push's
            # own retry reads RETRYING and brings the partner back when it succeeds.
            if partner.sync_state is not SyncState.IN_SYNC:
                await self._health.answered(job.partner_id, now)
            return True
        attempts = job.attempts + 1
        last = replies[-1] if replies else None
        if (
            attempts >= self._settings.push_max_attempts
            and last is not None
            and is_refusal(last.http_status, last.status_code)
        ):
            # The partner answers, and refuses this object every time: it is set aside alone (a
            # newer change of it goes out again) and the partner's other pushes go on, rather than
            # parking all of them and sending this one again after every recovery.
            self._finish(job, None, refused=detail)
            log.warning("push_refused", attempts=attempts, detail=detail, **fields)
            if partner.sync_state is not SyncState.IN_SYNC:
                await self._health.answered(job.partner_id, now)
            return True
        if attempts >= self._settings.push_max_attempts:
            # OUT_OF_SYNC first, so the parked-push reconciliation never sees a parked push of a
            # partner that is still RETRYING.
            await self._health.give_up(job.partner_id, f"{attempts} attempts failed: {detail}", now)
            await self._pushes.park(job, self._owner, attempts)
            log.warning("push_failed_parked", attempts=attempts, detail=detail, **fields)
            return False
        delay = retry_delay(
            job.attempts,
            self._settings.push_backoff_base,
            self._settings.push_backoff_max,
            random.uniform(0.5, 1.0),
        )
        await self._pushes.release(job, self._owner, now + timedelta(seconds=delay), attempts)
        self.wake_later(delay)
        log.info(
            "push_failed_will_retry", attempts=attempts, retry_in=round(delay, 3), detail=detail, **fields
        )
        await self._health.push_failed(job.partner_id, detail, now)
        return False

    async def _announce(self, event: Message, fields: dict[str, object]) -> None:
        """Publish a delivery's announcement, a few times if the broker refuses it; then give up
        with an error line that carries the event (the push is complete: it never goes again)."""
        for attempt in range(1, ANNOUNCE_ATTEMPTS + 1):
            try:
                if self._publish is None:
                    raise RuntimeError("this worker has no publisher")
                await self._publish(event)
                return
            except Exception as exc:
                if attempt == ANNOUNCE_ATTEMPTS:
                    log.error(
                        "push_announcement_not_published",
                        announced=routing_key(event),
                        body=msgspec.json.encode(event).decode(),
                        error=f"{type(exc).__name__}: {exc}",
                        **fields,
                    )
                    return
                log.warning(
                    "push_announcement_retry", announced=routing_key(event), attempt=attempt, **fields
                )
                await asyncio.sleep(ANNOUNCE_PAUSE)

    def _url(self, partner: Partner, module: ModuleID, call: PushCall) -> str:
        if call.collection:
            # The module's endpoint as the partner gave it (a CDR is POSTed there).
            return partner.endpoints[module]
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
    ) -> tuple[list[PushCall] | None, str, list[Reply]]:
        """Send the calls; the calls that carried the state (None: it failed), why it failed, and the
        replies to the calls that carried it.

        The first goes alone, then the others `push_concurrency` at a time: each addresses its own
        part of the object (one call per EVSE), so no part can overtake itself, and the lease keeps
        the object's next push waiting until all have answered. A partial call the partner cannot
        place (unknown object) is made good by one PUT of the whole object once all have answered.
        """
        gate = asyncio.Semaphore(self._tuning.push_concurrency)

        async def one(call: PushCall) -> tuple[PushCall, Reply, Answer]:
            async with gate:
                reply = await self._call(partner, job, call)
            answer = classify(reply.http_status, reply.status_code)
            if call.absent_ok and reply.http_status == 404:
                # A DELETE of an object the partner does not hold: it is where we want it.
                answer = Answer.OK
            return call, reply, answer

        # The first call alone: a partner that is down costs one failed request per attempt, not one
        # per part.
        results = [await one(calls[0])] if calls else []
        if results and results[0][2] not in (Answer.FAILED, Answer.THROTTLED):
            results.extend(await asyncio.gather(*(one(call) for call in calls[1:])))
        fallback = plan.fallback(state) if state is not None else None
        for call, reply, answer in results:
            if answer is Answer.THROTTLED:
                return None, f"{THROTTLED_DETAIL}: {_failure(call, reply)}", []
            if answer is Answer.FAILED or (
                answer is Answer.UNKNOWN_OBJECT and (not call.partial or fallback is None)
            ):
                return None, _failure(call, reply), [reply]
        unknown = [(call, reply) for call, reply, answer in results if answer is Answer.UNKNOWN_OBJECT]
        carried = [reply for _, reply, answer in results if answer is Answer.OK]
        if not unknown or fallback is None:
            return calls, "", carried
        call, reply = unknown[0]
        # The receiver lacks the object or a part of it: the whole object puts everything in place.
        log.info(
            "push_unknown_object_fallback",
            partner_id=partner.partner_id,
            module=job.module.value,
            method=call.method,
            path="/".join(call.path),
            unknown=len(unknown),
            request_id=reply.request_id,
        )
        reply = await self._call(partner, job, fallback)
        if classify(reply.http_status, reply.status_code) is not Answer.OK:
            return None, _failure(fallback, reply), [reply]
        return [*(c for c, _, answer in results if answer is Answer.OK), fallback], "", [*carried, reply]


THROTTLED_DETAIL = "throttled by the partner (HTTP 429)"
# `push.answered.<module>`: the failpoint between a partner's success answer and its record.
ANSWERED_FAILPOINT = "push.answered"


def _shown(call: PushCall) -> str:
    """A call in the push_delivered line: its method and path ("POST (collection)" for a CDR)."""
    return f"{call.method} {'/'.join(call.path) if call.path else '(collection)'}"


def _failure(call: PushCall, reply: Reply) -> str:
    """Why a call failed, for the log line and the sync-state event."""
    detail = f"{call.method} HTTP {reply.http_status} status {reply.status_code} {reply.message}".strip()
    return f"{detail} (request {reply.request_id})"
