"""Pure rules of the CPO side: how each input of the company's systems changes one of our locations.

`apply_input` returns the location to store, or None when the input changes nothing (older than
what is stored, identical, or removing what is not there).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from services.locations.domain import (
    find_connector,
    find_evse,
    is_stale,
    put_connector,
    put_evse,
    put_location,
    with_evse,
)
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
)
from shared.modules.sender import OwnRecord, Rejected, Removed
from shared.ocpi.v2_1_1.locations import Location, Status
from shared.ocpi.v2_1_1.types import to_utc

replace = msgspec.structs.replace
__all__ = ["LocationInputs", "Rejected", "apply_input", "change_of", "location_id_of"]


def location_id_of(msg: LocationInput) -> str:
    """The id of the location an input changes."""
    return msg.location.id if isinstance(msg, LocationUpsert) else msg.location_id


def change_of(msg: LocationInput) -> LocationChange:
    """What part of the location an input changes (the dispatcher picks PUT or PATCH from it)."""
    if isinstance(msg, LocationUpsert | LocationRemove):
        return LocationChange(ChangeScope.LOCATION)
    if isinstance(msg, EvseStatusSet):
        return LocationChange(ChangeScope.EVSE_STATUS, msg.evse_uid)
    if isinstance(msg, EvseUpsert):
        return LocationChange(ChangeScope.EVSE, msg.evse.uid)
    if isinstance(msg, EvseRemove):
        return LocationChange(ChangeScope.EVSE, msg.evse_uid)
    if isinstance(msg, ConnectorUpsert):
        return LocationChange(ChangeScope.CONNECTOR, msg.evse_uid, msg.connector.id)
    return LocationChange(ChangeScope.CONNECTOR, msg.evse_uid, msg.connector_id)


def _upsert_location(stored: Location | None, incoming: Location) -> Location | None:
    # 2.1.1 never deletes an EVSE: one the new version leaves out stays, with status REMOVED.
    if stored is not None and not is_stale(incoming.last_updated, stored.last_updated):
        kept = {evse.uid for evse in incoming.evses or []}
        dropped = [
            evse
            if evse.status == Status.REMOVED
            else replace(evse, status=Status.REMOVED, last_updated=incoming.last_updated)
            for evse in stored.evses or []
            if evse.uid not in kept
        ]
        if dropped:
            incoming = replace(incoming, evses=[*(incoming.evses or []), *dropped])
    return put_location(stored, incoming, incoming.id)


def _evse_status(stored: Location, evse_uid: str, status: Status, at: datetime) -> Location | None:
    evse = find_evse(stored, evse_uid)
    if evse is None:
        raise Rejected(f"unknown EVSE {stored.id}/{evse_uid}")
    if evse.status == status or is_stale(at, evse.last_updated):
        return None
    return with_evse(stored, replace(evse, status=status, last_updated=at))


def _remove_location(stored: Location, at: datetime) -> Location | None:
    evses = stored.evses or []
    if all(evse.status == Status.REMOVED for evse in evses) or is_stale(at, stored.last_updated):
        return None
    evses = [
        evse if evse.status == Status.REMOVED else replace(evse, status=Status.REMOVED, last_updated=at)
        for evse in evses
    ]
    return replace(stored, evses=evses, last_updated=max(stored.last_updated, at))


def _remove_connector(stored: Location, evse_uid: str, connector_id: str, at: datetime) -> Location | None:
    evse = find_evse(stored, evse_uid)
    connector = None if evse is None else find_connector(evse, connector_id)
    if evse is None or connector is None or is_stale(at, connector.last_updated):
        return None
    if len(evse.connectors) == 1:
        raise Rejected(f"EVSE {stored.id}/{evse_uid} needs a connector: remove the EVSE instead")
    connectors = [c for c in evse.connectors if c.id != connector_id]
    last_updated = max(evse.last_updated, at)
    return with_evse(stored, replace(evse, connectors=connectors, last_updated=last_updated))


def apply_input(msg: LocationInput, stored: Location | None) -> Location | None:
    """The location after an input, None when it changes nothing; Rejected when it can never apply.

    Removing what is not stored changes nothing (the wanted end state holds); changing an EVSE or
    connector of an unknown location or EVSE is rejected. An EVSE left out of a location upsert is
    kept with status REMOVED, since 2.1.1 partners only learn of removals that way.
    """
    if isinstance(msg, LocationUpsert):
        return _upsert_location(stored, msg.location)
    if stored is None:
        if isinstance(msg, LocationRemove | EvseRemove | ConnectorRemove):
            return None
        raise Rejected(f"unknown location {msg.location_id}")
    if isinstance(msg, LocationRemove):
        return _remove_location(stored, to_utc(msg.at))
    if isinstance(msg, EvseStatusSet):
        return _evse_status(stored, msg.evse_uid, msg.status, to_utc(msg.at))
    if isinstance(msg, EvseUpsert):
        return put_evse(stored, msg.evse, msg.evse.uid)
    if isinstance(msg, EvseRemove):
        evse = find_evse(stored, msg.evse_uid)
        return None if evse is None else _evse_status(stored, msg.evse_uid, Status.REMOVED, to_utc(msg.at))
    if isinstance(msg, ConnectorUpsert):
        if find_evse(stored, msg.evse_uid) is None:
            raise Rejected(f"unknown EVSE {stored.id}/{msg.evse_uid}")
        return put_connector(stored, msg.evse_uid, msg.connector, msg.connector.id)
    return _remove_connector(stored, msg.evse_uid, msg.connector_id, to_utc(msg.at))


class LocationInputs:
    """The input rules of the locations module, for the generic input loop (shared/modules/sender.py)."""

    def key_of(self, msg: LocationInput) -> str:
        """The id of the location an input changes."""
        return location_id_of(msg)

    def apply(
        self, msg: LocationInput, stored: Location | Removed[Location] | None
    ) -> Location | Removed[Location] | None:
        """The location after an input (locations are never removed as a whole in 2.1.1)."""
        return apply_input(msg, None if isinstance(stored, Removed) else stored)

    def part_of(self, msg: LocationInput) -> LocationChange:
        """What part of the location an input changes."""
        return change_of(msg)

    def changed(self, record: OwnRecord[Location], parts: list[LocationChange]) -> LocationChanged:
        """The announcement of a stored location and its changed parts."""
        return LocationChanged(location=record.value, version=record.version, changes=parts)
