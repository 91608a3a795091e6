"""Which domain rule an eMSP receiver PUT or PATCH applies, chosen by the URL's level (pure).

`path` holds location_id, [evse_uid, [connector_id]]; the body is the partner's JSON, validated at the
gateway against the level's type and decoded here once more into it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from services.locations.domain import (
    InvalidChange,
    patch_connector,
    patch_evse,
    patch_location,
    put_connector,
    put_evse,
    put_location,
    require,
)
from shared.contracts.locations import ChangeScope, LocationChange
from shared.modules.receiver import Rule
from shared.ocpi.v2_1_1.codec import convert, decode
from shared.ocpi.v2_1_1.locations import EVSE, Connector, ConnectorPatch, EVSEPatch, Location, LocationPatch

_STATUS_ONLY = {"status", "last_updated"}


def ids_of(path: list[str]) -> tuple[str, str | None, str | None]:
    """(location_id, evse_uid, connector_id) of a URL path below {country_code}/{party_id}."""
    if not 1 <= len(path) <= 3 or not all(path):
        raise InvalidChange("a location is addressed by location_id, [evse_uid, [connector_id]]")
    evse_uid, connector_id = (*path[1:], None, None)[:2]
    return path[0], evse_uid, connector_id


def _body(body: bytes, type_: type[Any]) -> Any:
    try:
        return decode(body, type_)
    except msgspec.DecodeError as exc:
        raise InvalidChange(f"Invalid {type_.__name__}: {exc}") from exc


def put_rule(path: list[str], body: bytes) -> tuple[Rule[Location], LocationChange]:
    """The rule of a PUT: the body must be the object the URL names (a location, EVSE or connector)."""
    location_id, evse_uid, connector_id = ids_of(path)
    if evse_uid is not None and connector_id is not None:
        connector: Connector = _body(body, Connector)
        return (
            lambda stored: put_connector(require(stored, location_id), evse_uid, connector, connector_id),
            LocationChange(ChangeScope.CONNECTOR, evse_uid, connector_id),
        )
    if evse_uid is not None:
        evse: EVSE = _body(body, EVSE)
        return (
            lambda stored: put_evse(require(stored, location_id), evse, evse_uid),
            LocationChange(ChangeScope.EVSE, evse_uid),
        )
    location: Location = _body(body, Location)
    return lambda stored: put_location(stored, location, location_id), LocationChange(ChangeScope.LOCATION)


def patch_rule(path: list[str], body: bytes, now: datetime) -> tuple[Rule[Location], LocationChange]:
    """The rule of a PATCH; raises InvalidChange (naming the field) for a bad body."""
    location_id, evse_uid, connector_id = ids_of(path)
    fields = _body(body, dict)
    try:
        if evse_uid is not None and connector_id is not None:
            connector_patch = convert(fields, ConnectorPatch)

            def rule(stored: Location | None) -> Location | None:
                return patch_connector(
                    require(stored, location_id), evse_uid, connector_id, connector_patch, now
                )

            return rule, LocationChange(ChangeScope.CONNECTOR, evse_uid, connector_id)
        if evse_uid is not None:
            evse_patch = convert(fields, EVSEPatch)
            status_only = "status" in fields and set(fields) <= _STATUS_ONLY
            scope = ChangeScope.EVSE_STATUS if status_only else ChangeScope.EVSE
            return (
                lambda stored: patch_evse(require(stored, location_id), evse_uid, evse_patch, now),
                LocationChange(scope, evse_uid),
            )
        location_patch = convert(fields, LocationPatch)
    except msgspec.ValidationError as exc:
        raise InvalidChange(f"Invalid PATCH: {exc}") from exc
    return (
        lambda stored: patch_location(require(stored, location_id), location_patch, now),
        LocationChange(ChangeScope.LOCATION),
    )
