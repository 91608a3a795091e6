"""Handlers of the locations service: CPO sender, eMSP receiver, inputs of the company's systems.

Each handler takes one message and the repository and returns an Outcome: the RPC reply and the
events to publish once the change is stored. Not found is OCPI 2003 with HTTP 404 at every level
(the location, an EVSE or a connector of it): a PATCH sender then falls back to PUT, as the spec asks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.locations.domain import InvalidChange, UnknownObject, addressed, holds, put_location, require
from services.locations.inputs import Applied, Rejected, apply_inputs, location_id_of
from services.locations.paging import decode_cursor, next_page_query
from services.locations.receiving import Rule, patch_rule, put_rule
from services.locations.repository import (
    UNSTORABLE,
    OwnRecord,
    OwnWrite,
    PartnerRecord,
    Repository,
    Window,
)
from shared.contracts.base import Message, Outcome, RpcReply, error, ok
from shared.contracts.locations import (
    ChangeScope,
    ConnectorRemove,
    ConnectorUpsert,
    EvseRemove,
    EvseStatusSet,
    EvseUpsert,
    LocationChange,
    LocationChanged,
    LocationInput,
    LocationRemove,
    LocationUpsert,
    PartnerLocationChanged,
    PartnerLocationImport,
    ReceiverGet,
    ReceiverPatch,
    ReceiverPut,
    SenderGet,
    SenderList,
)
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.types import to_utc, utc_now

# Compare-and-set attempts before giving up (the message is then retried by the consumer).
MAX_ATTEMPTS = 20


class ConcurrentChanges(Exception):
    """Others kept changing the same location; the message is retried later."""


def invalid(message: str) -> Outcome:
    """OCPI 2001: invalid or missing parameters."""
    return Outcome(reply=error(int(OcpiStatus.INVALID_OR_MISSING_PARAMETERS), message))


def unstorable(exc: Exception) -> Outcome:
    """OCPI 2001 for a request whose values the database can never store (see UNSTORABLE)."""
    return invalid(f"the request holds a value that cannot be stored: {type(exc).__name__}: {exc}")


def unknown(exc: UnknownObject) -> Outcome:
    """OCPI 2003 with HTTP 404: the addressed object is not stored."""
    return Outcome(reply=error(int(OcpiStatus.UNKNOWN_LOCATION), str(exc), http_status=404))


def _get(stored: OwnRecord | PartnerRecord | None, msg: SenderGet | ReceiverGet) -> Outcome:
    if msg.connector_id is not None and msg.evse_uid is None:
        return invalid("a connector is addressed by location_id, evse_uid and connector_id")
    try:
        location = require(None if stored is None else stored.location, msg.location_id)
        return Outcome(reply=ok(addressed(location, msg.evse_uid, msg.connector_id)))
    except UnknownObject as exc:
        return unknown(exc)


# ---- CPO side: Sender interface ------------------------------------------------------------------


async def handle_sender_list(msg: SenderList, repo: Repository) -> Outcome:
    """A page of our locations, oldest creation first, with the query of the next page if any."""
    if msg.offset < 0 or msg.limit < 0:
        return invalid("offset and limit must not be negative")
    try:
        after_seq = None if msg.cursor is None else decode_cursor(msg.cursor)
    except ValueError as exc:
        return invalid(str(exc))
    date_from = None if msg.date_from is None else to_utc(msg.date_from)
    date_to = None if msg.date_to is None else to_utc(msg.date_to)
    # One row more than asked tells whether another page follows.
    window = Window(
        limit=msg.limit + 1, offset=msg.offset, after_seq=after_seq, date_from=date_from, date_to=date_to
    )
    try:
        rows = await repo.own.page(window) if msg.limit else []
        total = await repo.own.count(date_from, date_to)
    except UNSTORABLE as exc:  # a query value BSON cannot encode
        return unstorable(exc)
    page = rows[: msg.limit]
    next_query = None
    if len(rows) > msg.limit:
        next_query = next_page_query(
            offset=msg.offset,
            limit=msg.limit,
            returned=len(page),
            last_seq=page[-1][0],
            date_from=date_from,
            date_to=date_to,
        )
    locations = [location for _, location in page]
    return Outcome(reply=ok(locations, total_count=total, limit=msg.limit, next_query=next_query))


async def handle_sender_get(msg: SenderGet, repo: Repository) -> Outcome:
    """One of our locations, or one EVSE or connector of it."""
    return _get(await repo.own.get(msg.location_id), msg)


# ---- CPO side: input from the company's systems ----------------------------------------------------


@dataclass
class InputsOutcome:
    """What a batch of inputs did: the events to publish, and the inputs that can never apply."""

    events: list[Message] = field(default_factory=list)
    # Batch index of each rejected input, with the reason.
    rejected: dict[int, str] = field(default_factory=dict)


async def handle_location_inputs(inputs: Sequence[LocationInput], repo: Repository) -> InputsOutcome:
    """Apply a batch of inputs: one read of the locations they touch, one write of those that change.

    Inputs apply in batch order per location, each location is announced once with all its changed
    parts, and a redelivered input changes nothing but announces the current state again (its event
    may have been lost with the process; the dispatcher drops versions it has seen). Locations that
    another replica changed meanwhile are read and applied again.
    """
    runs: dict[str, list[tuple[int, LocationInput]]] = {}
    for index, msg in enumerate(inputs):
        runs.setdefault(location_id_of(msg), []).append((index, msg))
    outcome = InputsOutcome()
    for _ in range(MAX_ATTEMPTS):
        if not runs:
            return outcome
        records = await repo.own.get_many(list(runs))
        writes: dict[str, tuple[OwnWrite, Applied]] = {}
        for location_id, run in runs.items():
            record = records.get(location_id)
            if record is None:
                applied = apply_inputs(None, (), run)
            else:
                applied = apply_inputs(record.location, record.recent_event_ids, run)
            if applied.location is not None:
                version = None if record is None else record.version
                write = OwnWrite(
                    location=applied.location, version=version, event_ids=tuple(applied.event_ids)
                )
                writes[location_id] = (write, applied)
                continue
            outcome.rejected.update(applied.rejected)
            if applied.replayed and record is not None:
                outcome.events.append(_changed(record.location, record.version, applied.changes))
        saved = await repo.own.save_many([write for write, _ in writes.values()]) if writes else {}
        for location_id, (write, applied) in writes.items():
            if location_id in saved:
                outcome.rejected.update(applied.rejected)
                outcome.events.append(_changed(write.location, saved[location_id], applied.changes))
        runs = {location_id: runs[location_id] for location_id in writes if location_id not in saved}
    raise ConcurrentChanges(f"locations {sorted(runs)} kept changing")


def _changed(location: Location, version: int, changes: list[LocationChange]) -> LocationChanged:
    return LocationChanged(location=location, version=version, changes=changes)


async def handle_location_input(msg: LocationInput, repo: Repository) -> Outcome:
    """Apply one input, as a batch of one; Rejected when it can never apply."""
    outcome = await handle_location_inputs([msg], repo)
    if outcome.rejected:
        raise Rejected(outcome.rejected[0])
    return Outcome(events=outcome.events)


# ---- eMSP side: Receiver interface and re-sync imports -------------------------------------------


async def handle_receiver_get(msg: ReceiverGet, repo: Repository) -> Outcome:
    """A partner's location, EVSE or connector as we hold it."""
    return _get(await repo.partners.get(msg.country_code, msg.party_id, msg.location_id), msg)


async def store_partner_location(
    repo: Repository, country_code: str, party_id: str, location_id: str, rule: Rule
) -> tuple[Location | None, PartnerRecord | None]:
    """Apply `rule` to our copy with compare-and-set: (copy before, record after or None if unchanged)."""
    for _ in range(MAX_ATTEMPTS):
        record = await repo.partners.get(country_code, party_id, location_id)
        before = None if record is None else record.location
        location = rule(before)
        if location is None:
            return before, None
        if record is None:
            saved = await repo.partners.add(country_code, party_id, location)
        else:
            saved = await repo.partners.update(country_code, party_id, location, record.version)
        if saved is not None:
            return before, saved
    raise ConcurrentChanges(f"location {country_code}/{party_id}/{location_id} kept changing")


def partner_changed(after: PartnerRecord, change: LocationChange) -> PartnerLocationChanged:
    """The announcement of a stored partner location: its party, new state and version."""
    return PartnerLocationChanged(
        country_code=after.country_code,
        party_id=after.party_id,
        location=after.location,
        version=after.version,
        change=change,
    )


async def _receive(
    msg: ReceiverPut | ReceiverPatch, repo: Repository, rule: Rule, scope: ChangeScope
) -> Outcome:
    before, after = await store_partner_location(repo, msg.country_code, msg.party_id, msg.location_id, rule)
    created = after is not None and not holds(before, msg.evse_uid, msg.connector_id)
    reply: RpcReply = ok(None, http_status=201 if created else 200)
    if after is None:
        return Outcome(reply=reply)  # older than what we hold, or identical: success, no change
    event = partner_changed(after, LocationChange(scope, msg.evse_uid, msg.connector_id))
    return Outcome(reply=reply, events=[event])


async def handle_receiver_put(msg: ReceiverPut, repo: Repository) -> Outcome:
    """Store a pushed location, EVSE or connector unless ours is newer."""
    try:
        rule, scope = put_rule(msg)
        return await _receive(msg, repo, rule, scope)
    except InvalidChange as exc:
        return invalid(str(exc))
    except UNSTORABLE as exc:
        return unstorable(exc)
    except UnknownObject as exc:
        return unknown(exc)


async def handle_receiver_patch(msg: ReceiverPatch, repo: Repository) -> Outcome:
    """Merge a partial update into a location, EVSE or connector we hold; unknown ones are 2003/404."""
    try:
        rule, scope = patch_rule(msg, utc_now())
        return await _receive(msg, repo, rule, scope)
    except (InvalidChange, msgspec.ValidationError) as exc:
        return invalid(str(exc))
    except UNSTORABLE as exc:
        return unstorable(exc)
    except UnknownObject as exc:
        return unknown(exc)


async def handle_partner_location_import(msg: PartnerLocationImport, repo: Repository) -> Outcome:
    """Store a location pulled from a partner during a re-sync, unless ours is newer.

    Raises one of UNSTORABLE when the location can never be stored (the caller dead-letters it).
    """
    location = msg.location

    def rule(stored: Location | None) -> Location | None:
        return put_location(stored, location, location.id)

    _, after = await store_partner_location(repo, msg.country_code, msg.party_id, location.id, rule)
    if after is None:
        return Outcome()
    return Outcome(events=[partner_changed(after, LocationChange(ChangeScope.LOCATION))])


Handler = Callable[[Any, Repository], Awaitable[Outcome]]

HANDLERS: dict[type[Message], Handler] = {
    SenderList: handle_sender_list,
    SenderGet: handle_sender_get,
    ReceiverGet: handle_receiver_get,
    ReceiverPut: handle_receiver_put,
    ReceiverPatch: handle_receiver_patch,
    LocationUpsert: handle_location_input,
    LocationRemove: handle_location_input,
    EvseStatusSet: handle_location_input,
    EvseUpsert: handle_location_input,
    EvseRemove: handle_location_input,
    ConnectorUpsert: handle_location_input,
    ConnectorRemove: handle_location_input,
    PartnerLocationImport: handle_partner_location_import,
}


async def dispatch(msg: Message, repo: Repository) -> Outcome:
    """Run the handler of a message: the one entry point of the RPC server, the consumer and the tests."""
    return await HANDLERS[type(msg)](msg, repo)
