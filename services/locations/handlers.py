"""Handlers of the locations service: what is special to locations on top of shared/modules.

Each handler takes one message and the repository and returns an Outcome: the RPC reply and the
events to publish once the change is stored. Not found is OCPI 2003 with HTTP 404 at every level
(the location, an EVSE or a connector of it): a PATCH sender then falls back to PUT, as the spec asks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from services.locations.domain import addressed, holds, put_location, require
from services.locations.inputs import LocationInputs, Rejected
from services.locations.receiving import ids_of, patch_rule, put_rule
from services.locations.repository import Repository
from shared.contracts.base import Message, Outcome, ok
from shared.contracts.locations import (
    ChangeScope,
    ConnectorRemove,
    ConnectorUpsert,
    EvseRemove,
    EvseStatusSet,
    EvseUpsert,
    LocationChange,
    LocationInput,
    LocationRemove,
    LocationUpsert,
    PartnerLocationChanged,
    PartnerLocationImport,
)
from shared.contracts.objects import ReceiverGet, ReceiverPatch, ReceiverPut, SenderGet, SenderList
from shared.contracts.partners import Party
from shared.errors import OcpiFailure, failure_reply
from shared.modules.receiver import PartnerRecord, PartnerVersion, Rule, receive, store_change
from shared.modules.sender import InputsOutcome, apply_inputs, sender_page
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.types import utc_now

RULES = LocationInputs()
WHOLE_LOCATION = LocationChange(ChangeScope.LOCATION)


def _get(location: Location | None, path: list[str]) -> Outcome:
    try:
        location_id, evse_uid, connector_id = ids_of(path)
        return Outcome(reply=ok(addressed(require(location, location_id), evse_uid, connector_id)))
    except OcpiFailure as exc:
        return Outcome(reply=failure_reply(exc))


# ---- CPO side: Sender interface and the company's inputs -----------------------------------------


async def handle_sender_list(msg: SenderList, repo: Repository) -> Outcome:
    """A page of our locations, oldest creation first, with the query of the next page if any."""
    return await sender_page(repo.own, msg)


async def handle_sender_get(msg: SenderGet, repo: Repository) -> Outcome:
    """One of our locations, or one EVSE or connector of it."""
    record = await repo.own.get(msg.path[0]) if msg.path else None
    return _get(None if record is None or record.removed else record.value, msg.path)


async def handle_location_inputs(inputs: Sequence[LocationInput], repo: Repository) -> InputsOutcome:
    """Apply a batch of inputs: one read of the locations not known yet, one write of those that change."""
    return await apply_inputs(repo.own, RULES, inputs)


async def handle_location_input(msg: LocationInput, repo: Repository) -> Outcome:
    """Apply one input, as a batch of one; Rejected when it can never apply."""
    outcome = await handle_location_inputs([msg], repo)
    if outcome.rejected:
        raise Rejected(outcome.rejected[0])
    return Outcome(events=outcome.events)


# ---- eMSP side: Receiver interface and re-sync imports -------------------------------------------


def partner_changed(
    after: PartnerRecord[Location], change: LocationChange = WHOLE_LOCATION
) -> PartnerLocationChanged:
    """The announcement of a stored partner location: its party, new state and version.

    Without a change named (the outbox's sweep: what changed is not known any more), the whole location.
    """
    return PartnerLocationChanged(
        country_code=after.party.country_code,
        party_id=after.party.party_id,
        location=after.value,
        version=after.version,
        change=change,
    )


def mark_of(event: Message) -> PartnerVersion | None:
    """Which stored version a published event announced (the outbox clears its mark)."""
    if isinstance(event, PartnerLocationChanged):
        return (event.country_code, event.party_id, event.location.id, event.version)
    return None


async def handle_receiver_get(msg: ReceiverGet, repo: Repository) -> Outcome:
    """A partner's location, EVSE or connector as we hold it."""
    record = await repo.partners.get(msg.party, msg.path[0]) if msg.path else None
    return _get(None if record is None else record.current, msg.path)


async def _receive(
    msg: ReceiverPut | ReceiverPatch, repo: Repository, rule: Rule[Location], change: LocationChange
) -> Outcome:
    _, evse_uid, connector_id = ids_of(msg.path)
    return await receive(
        repo.partners,
        msg.party,
        msg.path[0],
        rule,
        lambda after: partner_changed(after, change),
        is_new=lambda before: not holds(before, evse_uid, connector_id),
    )


async def handle_receiver_put(msg: ReceiverPut, repo: Repository) -> Outcome:
    """Store a pushed location, EVSE or connector unless ours is newer."""
    try:
        rule, change = put_rule(msg.path, msg.body)
    except OcpiFailure as exc:
        return Outcome(reply=failure_reply(exc))
    return await _receive(msg, repo, rule, change)


async def handle_receiver_patch(msg: ReceiverPatch, repo: Repository) -> Outcome:
    """Merge a partial update into a location, EVSE or connector we hold; unknown ones are 2003/404."""
    try:
        rule, change = patch_rule(msg.path, msg.body, utc_now())
    except OcpiFailure as exc:
        return Outcome(reply=failure_reply(exc))
    return await _receive(msg, repo, rule, change)


async def handle_partner_location_import(msg: PartnerLocationImport, repo: Repository) -> Outcome:
    """Store a location pulled from a partner during a re-sync, unless ours is newer.

    Raises one of UNSTORABLE when the location can never be stored (the caller dead-letters it).
    """
    location = msg.location

    def rule(stored: Location | None) -> Location | None:
        return put_location(stored, location, location.id)

    party = Party(msg.country_code, msg.party_id)
    _, after = await store_change(repo.partners, party, location.id, rule)
    return Outcome() if after is None else Outcome(events=[partner_changed(after)])


Handler = Callable[[Any, Repository], Awaitable[Outcome]]

# The generic requests the locations service answers (no ReceiverDelete: 2.1.1 never deletes them).
REQUESTS: dict[type[Message], Handler] = {
    SenderList: handle_sender_list,
    SenderGet: handle_sender_get,
    ReceiverGet: handle_receiver_get,
    ReceiverPut: handle_receiver_put,
    ReceiverPatch: handle_receiver_patch,
}

HANDLERS: dict[type[Message], Handler] = {
    **REQUESTS,
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
