"""Which domain rule an eMSP receiver PUT or PATCH applies, chosen by the URL's level (pure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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
from shared.contracts.locations import ChangeScope, ReceiverPatch, ReceiverPut
from shared.ocpi.v2_1_1.codec import convert
from shared.ocpi.v2_1_1.locations import ConnectorPatch, EVSEPatch, Location, LocationPatch

# stored copy (None when absent) -> the copy to store, or None when nothing changes
Rule = Callable[[Location | None], Location | None]

_STATUS_ONLY = {"status", "last_updated"}


def _check_level(msg: ReceiverPut | ReceiverPatch) -> None:
    if msg.connector_id is not None and msg.evse_uid is None:
        raise InvalidChange("a connector is addressed by location_id, evse_uid and connector_id")


def put_rule(msg: ReceiverPut) -> tuple[Rule, ChangeScope]:
    """The rule of a PUT: the body must be the object the URL names (a location, EVSE or connector)."""
    _check_level(msg)
    location_id, evse_uid, connector_id = msg.location_id, msg.evse_uid, msg.connector_id
    if evse_uid is not None and connector_id is not None:
        connector = msg.connector
        if connector is None or msg.location is not None or msg.evse is not None:
            raise InvalidChange("a PUT to a connector URL carries a Connector")
        return (
            lambda stored: put_connector(require(stored, location_id), evse_uid, connector, connector_id),
            ChangeScope.CONNECTOR,
        )
    if evse_uid is not None:
        evse = msg.evse
        if evse is None or msg.location is not None or msg.connector is not None:
            raise InvalidChange("a PUT to an EVSE URL carries an EVSE")
        return lambda stored: put_evse(require(stored, location_id), evse, evse_uid), ChangeScope.EVSE
    location = msg.location
    if location is None or msg.evse is not None or msg.connector is not None:
        raise InvalidChange("a PUT to a location URL carries a Location")
    return lambda stored: put_location(stored, location, location_id), ChangeScope.LOCATION


def patch_rule(msg: ReceiverPatch, now: datetime) -> tuple[Rule, ChangeScope]:
    """The rule of a PATCH; raises msgspec.ValidationError (naming the field) for a bad body."""
    _check_level(msg)
    location_id, evse_uid, connector_id = msg.location_id, msg.evse_uid, msg.connector_id
    if evse_uid is not None and connector_id is not None:
        connector_patch = convert(msg.patch, ConnectorPatch)

        def rule(stored: Location | None) -> Location | None:
            return patch_connector(require(stored, location_id), evse_uid, connector_id, connector_patch, now)

        return rule, ChangeScope.CONNECTOR
    if evse_uid is not None:
        evse_patch = convert(msg.patch, EVSEPatch)
        status_only = "status" in msg.patch and set(msg.patch) <= _STATUS_ONLY
        scope = ChangeScope.EVSE_STATUS if status_only else ChangeScope.EVSE
        return lambda stored: patch_evse(require(stored, location_id), evse_uid, evse_patch, now), scope
    location_patch = convert(msg.patch, LocationPatch)
    return (
        lambda stored: patch_location(require(stored, location_id), location_patch, now),
        ChangeScope.LOCATION,
    )
