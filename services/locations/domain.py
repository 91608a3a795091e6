"""Pure rules of the locations module: the last_updated guard, navigation, PUT and PATCH merges.

Every function returns the location as it must be stored after the change, or None when the change
must change nothing (older than what is stored, or identical). Inputs are never mutated.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec import UNSET

from shared import errors
from shared.modules.receiver import is_stale, patch_time
from shared.ocpi.v2_1_1.locations import (
    EVSE,
    Connector,
    ConnectorPatch,
    EVSEPatch,
    Location,
    LocationPatch,
)
from shared.ocpi.v2_1_1.modules import LOCATIONS
from shared.ocpi.v2_1_1.types import apply_patch

replace = msgspec.structs.replace
__all__ = ["InvalidChange", "UnknownObject", "is_stale"]


class InvalidChange(errors.InvalidInput):
    """A PUT or PATCH body that contradicts its URL (OCPI 2001)."""


class UnknownObject(errors.UnknownObject):
    """The location, EVSE or connector addressed is not stored (OCPI 2003, HTTP 404)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"Unknown {kind}: {key}", LOCATIONS.unknown_status)


# ---- navigation -----------------------------------------------------------------------------------


def find_evse(location: Location, evse_uid: str) -> EVSE | None:
    """The EVSE of `location` with that uid, if any."""
    return next((evse for evse in location.evses or [] if evse.uid == evse_uid), None)


def find_connector(evse: EVSE, connector_id: str) -> Connector | None:
    """The connector of `evse` with that id, if any."""
    return next((c for c in evse.connectors if c.id == connector_id), None)


def require(location: Location | None, location_id: str) -> Location:
    """`location`, or UnknownObject when it is not stored."""
    if location is None:
        raise UnknownObject("location", location_id)
    return location


def addressed(
    location: Location, evse_uid: str | None, connector_id: str | None
) -> Location | EVSE | Connector:
    """The object a URL names below a stored location, or UnknownObject."""
    if evse_uid is None:
        return location
    evse = find_evse(location, evse_uid)
    if evse is None:
        raise UnknownObject("EVSE", f"{location.id}/{evse_uid}")
    if connector_id is None:
        return evse
    connector = find_connector(evse, connector_id)
    if connector is None:
        raise UnknownObject("connector", f"{location.id}/{evse_uid}/{connector_id}")
    return connector


def holds(location: Location | None, evse_uid: str | None, connector_id: str | None) -> bool:
    """Whether the object a URL names is stored."""
    if location is None:
        return False
    try:
        addressed(location, evse_uid, connector_id)
    except UnknownObject:
        return False
    return True


def with_evse(location: Location, evse: EVSE) -> Location:
    """`location` with `evse` replacing (or joining) the EVSE of that uid; its last_updated follows."""
    evses = [evse if e.uid == evse.uid else e for e in location.evses or []]
    if find_evse(location, evse.uid) is None:
        evses.append(evse)
    return replace(location, evses=evses, last_updated=max(location.last_updated, evse.last_updated))


def with_connector(location: Location, evse_uid: str, connector: Connector) -> Location:
    """`location` with `connector` replaced or added in one EVSE; EVSE and location last_updated follow."""
    evse = find_evse(location, evse_uid)
    if evse is None:
        raise UnknownObject("EVSE", f"{location.id}/{evse_uid}")
    connectors = [connector if c.id == connector.id else c for c in evse.connectors]
    if find_connector(evse, connector.id) is None:
        connectors.append(connector)
    last_updated = max(evse.last_updated, connector.last_updated)
    return with_evse(location, replace(evse, connectors=connectors, last_updated=last_updated))


# ---- receiver: PUT and PATCH of a partner's objects ------------------------------------------------


def _check_id(kind: str, in_body: object, in_url: str) -> None:
    # Not the generic check_id: the locations rules raise their own InvalidChange.
    if in_body is not UNSET and in_body != in_url:
        raise InvalidChange(f"{kind} {in_body!r} in the body differs from {in_url!r} in the URL")


def put_location(stored: Location | None, incoming: Location, location_id: str) -> Location | None:
    """A full location replaces the stored one unless it is older or identical."""
    _check_id("id", incoming.id, location_id)
    if stored is not None and (is_stale(incoming.last_updated, stored.last_updated) or incoming == stored):
        return None
    return incoming


def put_evse(stored: Location, incoming: EVSE, evse_uid: str) -> Location | None:
    """A full EVSE replaces (or joins) the stored one unless it is older or identical."""
    _check_id("uid", incoming.uid, evse_uid)
    current = find_evse(stored, evse_uid)
    if current is not None and (is_stale(incoming.last_updated, current.last_updated) or incoming == current):
        return None
    return with_evse(stored, incoming)


def put_connector(stored: Location, evse_uid: str, incoming: Connector, connector_id: str) -> Location | None:
    """A full connector replaces (or joins) the stored one unless it is older or identical."""
    _check_id("id", incoming.id, connector_id)
    evse = find_evse(stored, evse_uid)
    current = None if evse is None else find_connector(evse, connector_id)
    if current is not None and (is_stale(incoming.last_updated, current.last_updated) or incoming == current):
        return None
    return with_connector(stored, evse_uid, incoming)


def patch_location(stored: Location, patch: LocationPatch, now: datetime) -> Location | None:
    """Fields present in the PATCH replace the stored ones (a list field replaces the whole list)."""
    _check_id("id", patch.id, stored.id)
    at = patch_time(patch, stored.last_updated, now)
    return None if at is None else replace(apply_patch(stored, patch), last_updated=at)


def patch_evse(stored: Location, evse_uid: str, patch: EVSEPatch, now: datetime) -> Location | None:
    """PATCH one EVSE; the location's last_updated follows."""
    _check_id("uid", patch.uid, evse_uid)
    evse = addressed(stored, evse_uid, None)
    assert isinstance(evse, EVSE)
    at = patch_time(patch, evse.last_updated, now)
    return None if at is None else with_evse(stored, replace(apply_patch(evse, patch), last_updated=at))


def patch_connector(
    stored: Location, evse_uid: str, connector_id: str, patch: ConnectorPatch, now: datetime
) -> Location | None:
    """PATCH one connector; its EVSE's and location's last_updated follow."""
    _check_id("id", patch.id, connector_id)
    connector = addressed(stored, evse_uid, connector_id)
    assert isinstance(connector, Connector)
    at = patch_time(patch, connector.last_updated, now)
    if at is None:
        return None
    return with_connector(stored, evse_uid, replace(apply_patch(connector, patch), last_updated=at))
