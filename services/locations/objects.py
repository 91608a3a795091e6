"""The generic `objects.*` gateway requests, answered with the locations handlers.

A bridge while the gateway moves from the locations-specific requests to the generic ones: each
generic request is translated to the request the handlers know and answered the same way.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.contracts import locations as old
from shared.contracts import objects
from shared.contracts.base import Message, Outcome
from shared.errors import InvalidInput, MethodNotAllowed, OcpiFailure, failure_reply
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.locations import EVSE, Connector, Location
from shared.ocpi.v2_1_1.modules import LOCATIONS


def _ids(path: list[str]) -> tuple[str, str | None, str | None]:
    if not 1 <= len(path) <= len(LOCATIONS.levels):
        raise InvalidInput("a locations path holds location_id, [evse_uid, [connector_id]]")
    padded = [*path, None, None]
    return path[0], padded[1], padded[2]


def translate(request: objects.ObjectRequest) -> Message:
    """The locations request of a generic one; OcpiFailure when it cannot be one."""
    if request.module != LOCATIONS.name:
        raise InvalidInput(f"the locations service does not serve module {request.module!r}")
    if isinstance(request, objects.SenderList):
        return old.SenderList(
            offset=request.offset,
            limit=request.limit,
            date_from=request.date_from,
            date_to=request.date_to,
            cursor=request.cursor,
        )
    if isinstance(request, objects.ReceiverDelete):
        raise MethodNotAllowed("locations cannot be deleted (OCPI 2.1.1)")
    location_id, evse_uid, connector_id = _ids(request.path)
    if isinstance(request, objects.SenderGet):
        return old.SenderGet(location_id=location_id, evse_uid=evse_uid, connector_id=connector_id)
    party = {"country_code": request.party.country_code, "party_id": request.party.party_id}
    where: dict[str, Any] = {**party, "location_id": location_id, "evse_uid": evse_uid}
    where["connector_id"] = connector_id
    if isinstance(request, objects.ReceiverGet):
        return old.ReceiverGet(**where)
    try:
        if isinstance(request, objects.ReceiverPatch):
            fields = msgspec.json.decode(request.body)
            if not isinstance(fields, dict):
                raise InvalidInput("a PATCH body is a JSON object")
            return old.ReceiverPatch(**where, patch=fields)
        if connector_id is not None:
            return old.ReceiverPut(**where, connector=decode(request.body, Connector))
        if evse_uid is not None:
            return old.ReceiverPut(**where, evse=decode(request.body, EVSE))
        return old.ReceiverPut(**where, location=decode(request.body, Location))
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"Invalid body: {exc}") from exc


def failure(exc: OcpiFailure) -> Outcome:
    """The answer to a generic request that cannot be translated."""
    return Outcome(reply=failure_reply(exc))
