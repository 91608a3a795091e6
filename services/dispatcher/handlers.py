"""Event handlers: keep the partner projection, queue pushes, request pulls. HANDLERS at the bottom."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import structlog

from services.dispatcher.partner_tokens import PartnerTokens
from services.dispatcher.partners import PartnerCache
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.push_plans import MODULE_PLANS, PUSH_PLANS, Snapshot
from services.dispatcher.push_worker import Clock, utc_now
from services.dispatcher.pushes import PushKey, PushQueue
from shared.contracts.base import Message, routing_key, tag_of
from shared.contracts.catalogue import IMPORTS, decoder
from shared.contracts.partners import PartnerRegistered, PartnerUnregistered, PullRequested, SyncState
from shared.messaging.consumer import Delivery, PoisonMessage
from shared.messaging.headers import REQUEST_ID
from shared.ocpi.v2_1_1.modules import MODULES, Audience, module_named
from shared.storage import Document

log = structlog.get_logger(__name__)


@dataclass
class Deps:
    """What the handlers work with; the composition root fills it in."""

    partners: PartnerCache
    # The gateway, asked for a registered partner's token (it is not in the event).
    tokens: PartnerTokens
    pushes: PushQueue
    pulls: PullSchedule
    # (records now due, those of them that are urgent: their pushes go first)
    wake_pushes: Callable[[Sequence[PushKey], frozenset[PushKey]], None]
    wake_pulls: Callable[[], None]
    cpo_probe: float
    clock: Clock = utc_now


async def partner_registered(event: PartnerRegistered, deps: Deps) -> None:
    """Store the partner's connection with the token the gateway hands over; every module a partner
    sends us gets its first (full) pull."""
    sealed = await deps.tokens.sealed(event.partner_id)
    if sealed is None:
        # Unregistered or removed since this event: its PartnerUnregistered follows.
        log.info("partner_registration_obsolete", partner_id=event.partner_id)
        return
    now = deps.clock()
    first = await deps.partners.projection.register(event, sealed, now, deps.cpo_probe)
    await deps.partners.reload(event.partner_id)
    log.info(
        "partner_registered",
        partner_id=event.partner_id,
        role=event.role.value,
        first=first,
        modules=sorted(event.endpoints),
    )
    sent = [
        module.id
        for module in MODULES.values()
        if module.id in IMPORTS and event.role is module.sender_role and module.id in event.endpoints
    ]
    if sent:
        await deps.pulls.first_pulls(event.partner_id, sent, now)
        deps.wake_pulls()


async def partner_unregistered(event: PartnerUnregistered, deps: Deps) -> None:
    """Forget the partner and everything still waiting for it."""
    known = await deps.partners.projection.unregister(event.partner_id, event.unregistered_at)
    deps.partners.forget(event.partner_id)
    dropped = await deps.pushes.forget_partner(event.partner_id)
    await deps.pulls.forget_partner(event.partner_id)
    log.info("partner_unregistered", partner_id=event.partner_id, known=known, dropped_pushes=dropped)


async def objects_changed(snapshots: Sequence[Snapshot], deps: Deps) -> None:
    """Coalesce new states into the push records of every partner that receives them.

    A run of events is coalesced first (the newest state of each object, with every changed part);
    then the whole run costs one bulk write for all partners, modules and objects, and no read
    (partners come from the in-memory projection). A module whose audience is the token's owner
    (sessions, CDRs) goes only to the partner its snapshot names (see `audience_of`).
    """
    now = deps.clock()
    coalesced = coalesce(snapshots)
    targets: list[tuple[str, bool, Snapshot]] = []
    due: list[PushKey] = []
    urgent: set[PushKey] = set()
    for module in dict.fromkeys(s.module for s in coalesced):
        receivers = await deps.partners.receivers(module)
        priority = MODULE_PLANS[module].priority
        for s in (s for s in coalesced if s.module is module):
            audience = audience_of(s)
            first = priority(s.state, s.parts) > 0
            if audience and not audience & {p.partner_id for p in receivers}:
                # The owner's connection is not (or no longer) a receiver of the module: nothing is
                # queued, and nothing later brings this object to it. Said loudly: for a CDR it is
                # a bill nobody receives (re-publish it once the partner is connected again).
                log.warning("push_no_receiver", module=module.value, key=s.key, partners=sorted(audience))
            for partner in receivers:
                if audience is not None and partner.partner_id not in audience:
                    continue
                # Parked pushes wait for their partner to answer again: no worker looks for them now.
                parked = partner.sync_state is SyncState.OUT_OF_SYNC
                targets.append((partner.partner_id, parked, s))
                if not parked:
                    key = (partner.partner_id, module.value, s.key)
                    due.append(key)
                    if first:
                        urgent.add(key)
    await deps.pushes.enqueue_each(targets, now)
    if due:
        deps.wake_pushes(due, frozenset(urgent))


def audience_of(snapshot: Snapshot) -> frozenset[str] | None:
    """The partners a snapshot may go to (None: every receiver of its module). A snapshot of a
    TOKEN_OWNER module that names nobody goes to nobody: an owner-only object is never broadcast."""
    if snapshot.audience is None and MODULES[snapshot.module].audience is Audience.TOKEN_OWNER:
        return frozenset()
    return snapshot.audience


def coalesce(snapshots: Sequence[Snapshot]) -> list[Snapshot]:
    """Per object, the newest state of the run with the union of the changed parts, first seen first."""
    newest: dict[tuple[str, str], Snapshot] = {}
    parts: dict[tuple[str, str], list[Document]] = {}
    for snapshot in snapshots:
        ref = (snapshot.module.value, snapshot.key)
        if ref not in newest or snapshot.version > newest[ref].version:
            newest[ref] = snapshot
        union = parts.setdefault(ref, [])
        union.extend(part for part in snapshot.parts if part not in union)
    return [replace(snapshot, parts=parts[ref]) for ref, snapshot in newest.items()]


async def pull_requested(event: PullRequested, deps: Deps) -> None:
    """The operator asked for a re-sync of a partner's module."""
    module = module_named(event.module)
    if module is None or module.id not in IMPORTS:
        log.warning("pull_unsupported_module", partner_id=event.partner_id, module=event.module)
        return
    partner = await deps.partners.projection.get(event.partner_id)
    if partner is None or not partner.sends(module.id):
        log.warning(
            "pull_not_possible", partner_id=event.partner_id, module=event.module, reason="not a sender of it"
        )
        return
    await deps.pulls.request(event.partner_id, module.id, deps.clock(), event.full)
    deps.wake_pulls()


class _Tagged(msgspec.Struct):
    type: str = ""


OTHER_EVENTS: tuple[type[Message], ...] = (PartnerRegistered, PartnerUnregistered, PullRequested)
EVENT_TYPES: tuple[type[Message], ...] = (*OTHER_EVENTS, *PUSH_PLANS)
_decoder = decoder(*EVENT_TYPES)
_tag_decoder = msgspec.json.Decoder(_Tagged)
_KNOWN = frozenset(tag_of(kind) for kind in EVENT_TYPES)


def decode(delivery: Delivery) -> Message | None:
    """The event of a delivery, None for a kind that is not ours; PoisonMessage when unreadable."""
    try:
        kind = _tag_decoder.decode(delivery.body).type
        if kind not in _KNOWN:
            # A newer producer's message under a bound key (e.g. credentials.partner.*): not ours.
            log.info("event_ignored", type=kind)
            return None
        event: Message = _decoder.decode(delivery.body)
        return event
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"not a dispatcher event ({delivery.routing_key}): {exc}") from exc


async def handle_batch(deliveries: Sequence[Delivery], deps: Deps) -> list[str | None]:
    """Handle a batch in order; the verdict of each delivery (None, or why it is dead-lettered).

    Consecutive changes of our objects (any event of PUSH_PLANS) are handled together; partner events
    and pull requests one by one between them, so a change never overtakes the registration or
    removal of a partner before it.
    """
    verdicts: list[str | None] = [None] * len(deliveries)
    changes: list[Snapshot] = []
    for index, delivery in enumerate(deliveries):
        try:
            event = decode(delivery)
        except PoisonMessage as exc:
            verdicts[index] = str(exc)
            continue
        if event is None:
            continue
        plan = PUSH_PLANS.get(type(event))
        if plan is not None:
            request_id = delivery.headers.get(REQUEST_ID)
            changes.append(plan.snapshot(event, request_id if isinstance(request_id, str) else None))
            continue
        if changes:
            await objects_changed(changes, deps)
            changes = []
        await HANDLERS[type(event)](event, deps)
        log.debug("event_handled", type=routing_key(event))
    if changes:
        await objects_changed(changes, deps)
    return verdicts


HANDLERS: dict[type[Any], Callable[[Any, Deps], Awaitable[None]]] = {
    PartnerRegistered: partner_registered,
    PartnerUnregistered: partner_unregistered,
    PullRequested: pull_requested,
}
