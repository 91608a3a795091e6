"""The pull runner (re-sync): page through a partner's objects of one module and import each one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
import structlog

from services.dispatcher.domain import Answer, classify, first_page_url, next_page_url, retry_delay
from services.dispatcher.ocpi_client import OcpiClient
from services.dispatcher.partners import Partner, PartnerProjection
from services.dispatcher.pull_schedule import PullJob, PullSchedule
from services.dispatcher.push_worker import TIMER_SLACK, Clock, utc_now
from services.dispatcher.tuning import Tuning
from shared.contracts.base import Message
from shared.contracts.catalogue import IMPORTS
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.codec import check_depth, decode
from shared.ocpi.v2_1_1.modules import MODULES
from shared.ocpi.v2_1_1.types import format_datetime
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Settings

log = structlog.get_logger(__name__)

PublishInternal = Callable[[Message, str | None], Awaitable[None]]
_items = msgspec.json.Decoder(list[msgspec.Raw] | None)
_id_only = msgspec.json.Decoder(dict[str, object])
# A partner whose Link headers never end is cut off here.
MAX_PAGES = 100_000


class PullFailed(Exception):
    """A page could not be fetched or read; the pull is retried from its first page."""


def singular(module: ModuleID) -> str:
    """How log lines and import messages name one object of a module ("location", "tariff")."""
    return module.value.removesuffix("s")


def import_message(module: ModuleID, party: Party, obj: object, partner_id: str) -> Message:
    """The module's import message (IMPORTS) for one pulled object of `party`, naming the partner
    it came from where the message has room for it (tokens: sessions and CDRs of a token go there)."""
    kind = IMPORTS[module]
    fields = {"country_code": party.country_code, "party_id": party.party_id, singular(module): obj}
    if "partner_id" in kind.__struct_fields__:
        fields["partner_id"] = partner_id
    return kind(**fields)


def object_id(module: ModuleID, obj: object) -> str:
    """The id of a pulled object (`id`, or a token's `uid`), as the module table names its field."""
    return str(getattr(obj, MODULES[module].levels[0].id_field))


class PullRunner:
    """Runs due pulls, one partner at a time per replica."""

    def __init__(
        self,
        schedule: PullSchedule,
        partners: PartnerProjection,
        client: OcpiClient,
        publish: PublishInternal,
        settings: Settings,
        tuning: Tuning,
        clock: Clock = utc_now,
    ) -> None:
        self._schedule = schedule
        self._partners = partners
        self._client = client
        self._publish = publish
        self._settings = settings
        self._tuning = tuning
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A pull was requested: look now."""
        self._wakeup.set()

    async def start(self) -> None:
        """Start the runner task."""
        self._stopping = False
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish the page in flight (bounded); an interrupted pull is retried by whoever claims it next."""
        self._stopping = True
        self._wakeup.set()
        if self._task is None:
            return
        _, late = await asyncio.wait([self._task], timeout=self._tuning.stop_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                job = await self._schedule.claim(self._clock(), self._tuning.pull_lease)
                if job is not None:
                    await self._pull(job)
                    continue
            except Exception:
                log.exception("pull_loop_error")
                await asyncio.sleep(1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._tuning.poll)

    async def _pull(self, job: PullJob) -> None:
        partner = await self._partners.get(job.partner_id)
        if partner is None:
            # Unregistered meanwhile (or a late registration after its removal): nothing to pull.
            await self._schedule.forget_partner(job.partner_id)
            log.info(
                "pull_dropped", partner_id=job.partner_id, module=job.module.value, reason="not registered"
            )
            return
        if not partner.sends(job.module) or not partner.parties:
            log.warning(
                "pull_skipped", partner_id=partner.partner_id, module=job.module.value, reason="not a sender"
            )
            await self._schedule.failed(job, None)
            return
        started = self._clock()
        since = None if job.full or job.last_sync_started is None else job.last_sync_started
        date_from = None if since is None else format_datetime(since)
        try:
            imported, rejected, pages = await self._pages(job, partner, date_from)
        except PullFailed as exc:
            await self._failed(job, str(exc))
            return
        await self._schedule.succeeded(job, started)
        log.info(
            "pull_completed",
            partner_id=partner.partner_id,
            module=job.module.value,
            full=since is None,
            pages=pages,
            imported=imported,
            rejected=rejected,
        )

    async def _pages(self, job: PullJob, partner: Partner, date_from: str | None) -> tuple[int, int, int]:
        party = partner.parties[0]
        module = job.module
        level = MODULES[module].levels[0]
        object_type = level.object_type
        name = singular(module)
        limit = self._tuning.pull_page_limit
        url: str | None = first_page_url(partner.endpoints[module], limit, date_from)
        # Digests, not URLs: a partner's Link URLs can be kilobytes each, for up to MAX_PAGES pages (L2).
        seen: set[bytes] = set()
        imported = rejected = 0
        while url is not None:
            digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if digest in seen or len(seen) >= MAX_PAGES:
                raise PullFailed(f"Link loop at {url[:200]}")
            seen.add(digest)
            reply = await self._client.call("GET", url, partner.token)
            if classify(reply.http_status, reply.status_code) is not Answer.OK:
                status = f"HTTP {reply.http_status} status {reply.status_code}"
                raise PullFailed(f"GET {url}: {status} {reply.message}")
            try:
                items = _items.decode(reply.data) or []
            except (msgspec.DecodeError, RecursionError) as exc:
                raise PullFailed(f"GET {url}: data is not a list: {exc!r}") from exc
            for raw in items:
                try:
                    # Refuses ints the database cannot store and JSON nested too deep (TooDeep).
                    obj: Any = decode(raw, object_type)
                except msgspec.DecodeError as exc:
                    rejected += 1
                    fields = {
                        "partner_id": partner.partner_id,
                        f"{name}_{level.id_field}": _object_id(raw, level.id_field),
                        "reason": str(exc),
                    }
                    log.warning(f"pulled_{name}_rejected", **fields)
                    continue
                stamp = format_datetime(obj.last_updated)
                message_id = f"{partner.partner_id}:{object_id(module, obj)}:{stamp}"
                await self._publish(import_message(module, party, obj, partner.partner_id), message_id)
                imported += 1
            url = next_page_url(reply.link, url)
            await self._schedule.extend(job, self._clock(), self._tuning.pull_lease)
        return imported, rejected, len(seen)

    async def _failed(self, job: PullJob, detail: str) -> None:
        attempts = job.attempts + 1
        partner_id = job.partner_id
        if attempts >= self._tuning.pull_max_attempts:
            # Given up until asked again; the probe sees the partner come back and asks.
            await self._schedule.failed(job, None)
            await self._partners.set_reachable(partner_id, False)
            log.warning(
                "pull_abandoned",
                partner_id=partner_id,
                module=job.module.value,
                attempts=attempts,
                detail=detail,
            )
            return
        delay = retry_delay(
            job.attempts,
            self._settings.push_backoff_base,
            self._settings.push_backoff_max,
            random.uniform(0.5, 1.0),
        )
        await self._schedule.failed(job, self._clock() + timedelta(seconds=delay))
        # The retry is this replica's to remember: no need to poll for it.
        asyncio.get_running_loop().call_later(delay + TIMER_SLACK, self.wake)
        log.info(
            "pull_failed_will_retry",
            partner_id=partner_id,
            module=job.module.value,
            attempts=attempts,
            retry_in=round(delay, 3),
            detail=detail,
        )


def _object_id(raw: msgspec.Raw, id_field: str) -> object:
    """The id (`id_field`) of a rejected object, when it has one, for the log line."""
    try:
        # Deeper than objects may be, but still far from msgspec's recursion limit (~1000).
        check_depth(raw, limit=256)
        return _id_only.decode(raw).get(id_field)
    except msgspec.DecodeError:
        return None
