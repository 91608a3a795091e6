"""Event handlers: keep the partner projection, queue pushes, request pulls. HANDLERS at the bottom."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import msgspec
import structlog

from services.dispatcher.partners import LOCATIONS, PartnerProjection
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.push_worker import Clock, utc_now
from services.dispatcher.pushes import PushQueue, Snapshot
from shared.contracts.base import routing_key, tag_of
from shared.contracts.locations import LocationChange, LocationChanged
from shared.contracts.partners import PartnerRegistered, PartnerUnregistered, PullRequested, SyncState
from shared.messaging.consumer import Delivery, PoisonMessage
from shared.settings import Role

log = structlog.get_logger(__name__)


@dataclass
class Deps:
    """What the handlers work with; the composition root fills it in."""

    partners: PartnerProjection
    pushes: PushQueue
    pulls: PullSchedule
    wake_pushes: Callable[[], None]
    wake_pulls: Callable[[], None]
    cpo_probe: float
    clock: Clock = utc_now


async def partner_registered(event: PartnerRegistered, deps: Deps) -> None:
    """Store the partner's connection; a new CPO partner gets its first pull."""
    first = await deps.partners.register(event, deps.clock(), deps.cpo_probe)
    log.info(
        "partner_registered",
        partner_id=event.partner_id,
        role=event.role.value,
        first=first,
        modules=sorted(event.endpoints),
    )
    if first and event.role is Role.CPO and LOCATIONS in event.endpoints:
        deps.wake_pulls()


async def partner_unregistered(event: PartnerUnregistered, deps: Deps) -> None:
    """Forget the partner and everything still waiting for it."""
    known = await deps.partners.unregister(event.partner_id, event.unregistered_at)
    dropped = await deps.pushes.forget_partner(event.partner_id)
    log.info("partner_unregistered", partner_id=event.partner_id, known=known, dropped_pushes=dropped)


async def locations_changed(events: Sequence[LocationChanged], deps: Deps) -> None:
    """Coalesce new states into a pending push for every eMSP partner that receives locations.

    A run of events is coalesced first (the newest state of each location, with every changed part).
    The states are stored once for all partners; then a burst costs each partner one read and one
    bulk write of small pending records, not a few round trips per event.
    """
    now = deps.clock()
    snapshots = coalesce(events)
    await deps.pushes.record_states(snapshots)
    receivers = await deps.partners.locations_receivers()
    for partner in receivers:
        parked = partner.sync_state is SyncState.OUT_OF_SYNC
        await deps.pushes.enqueue_many(partner.partner_id, snapshots, now, parked=parked)
    if receivers:
        deps.wake_pushes()


def coalesce(events: Sequence[LocationChanged]) -> list[Snapshot]:
    """Per location, the newest state of the run with the union of the changed parts, first seen first."""
    newest: dict[str, LocationChanged] = {}
    changes: dict[str, list[LocationChange]] = {}
    for event in events:
        key = event.location.id
        if key not in newest or event.version > newest[key].version:
            newest[key] = event
        parts = changes.setdefault(key, [])
        parts.extend(change for change in event.changes if change not in parts)
    return [
        Snapshot(location=event.location, version=event.version, changes=changes[key])
        for key, event in newest.items()
    ]


async def pull_requested(event: PullRequested, deps: Deps) -> None:
    """The operator asked for a re-sync of a partner's module."""
    if event.module != LOCATIONS:
        log.warning("pull_unsupported_module", partner_id=event.partner_id, module=event.module)
        return
    partner = await deps.partners.get(event.partner_id)
    if partner is None or not partner.sends_locations:
        log.warning("pull_not_possible", partner_id=event.partner_id, reason="no CPO locations endpoint")
        return
    await deps.pulls.request(event.partner_id, deps.clock(), event.full)
    deps.wake_pulls()


class _Tagged(msgspec.Struct):
    type: str = ""


Event = PartnerRegistered | PartnerUnregistered | LocationChanged | PullRequested
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_tag_decoder = msgspec.json.Decoder(_Tagged)
_KNOWN = frozenset(tag_of(kind) for kind in get_args(Event))


def decode(delivery: Delivery) -> Event | None:
    """The event of a delivery, None for a kind that is not ours; PoisonMessage when unreadable."""
    try:
        kind = _tag_decoder.decode(delivery.body).type
        if kind not in _KNOWN:
            # A newer producer's message under a bound key (e.g. credentials.partner.*): not ours.
            log.info("event_ignored", type=kind)
            return None
        return _decoder.decode(delivery.body)
    except msgspec.DecodeError as exc:
        raise PoisonMessage(f"not a dispatcher event ({delivery.routing_key}): {exc}") from exc


async def handle_batch(deliveries: Sequence[Delivery], deps: Deps) -> list[str | None]:
    """Handle a batch in order; the verdict of each delivery (None, or why it is dead-lettered).

    Consecutive location changes are handled together; partner events and pull requests one by one
    between them, so a change never overtakes the registration or removal of a partner before it.
    """
    verdicts: list[str | None] = [None] * len(deliveries)
    changes: list[LocationChanged] = []
    for index, delivery in enumerate(deliveries):
        try:
            event = decode(delivery)
        except PoisonMessage as exc:
            verdicts[index] = str(exc)
            continue
        if isinstance(event, LocationChanged):
            changes.append(event)
            continue
        if event is None:
            continue
        if changes:
            await locations_changed(changes, deps)
            changes = []
        await HANDLERS[type(event)](event, deps)
        log.debug("event_handled", type=routing_key(event))
    if changes:
        await locations_changed(changes, deps)
    return verdicts


HANDLERS: dict[type[Any], Callable[[Any, Deps], Awaitable[None]]] = {
    PartnerRegistered: partner_registered,
    PartnerUnregistered: partner_unregistered,
    PullRequested: pull_requested,
}
