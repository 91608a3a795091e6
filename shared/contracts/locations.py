"""Locations messages: input from the company's systems, re-sync imports, domain events.

The gateway's requests are the generic ones of every object module (shared/contracts/objects.py).

Input messages carry an `event_id`, the idempotency key: a redelivered message changes nothing twice.
Schema evolution follows msgspec's rules: new fields always get defaults, so version 1 consumers and
producers keep working; a breaking change gets a new tag.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from shared.contracts.base import Message
from shared.ocpi.v2_1_1.locations import EVSE, Connector, Location, Status
from shared.ocpi.v2_1_1.types import NonNegativeInt64

# ---- input from the company's systems (internal exchange), CPO side ---------------------------


class LocationUpsert(Message, frozen=True, kw_only=True, tag="locations.location.upsert"):
    """A location of ours was created or replaced as a whole."""

    event_id: str
    location: Location


class LocationRemove(Message, frozen=True, kw_only=True, tag="locations.location.remove"):
    """A location of ours was taken out of service: every EVSE becomes REMOVED (2.1.1 has no delete)."""

    event_id: str
    location_id: str
    at: datetime


class EvseStatusSet(Message, frozen=True, kw_only=True, tag="locations.evse.set_status"):
    """A charger reported a new status for one EVSE."""

    event_id: str
    location_id: str
    evse_uid: str
    status: Status
    at: datetime


class EvseUpsert(Message, frozen=True, kw_only=True, tag="locations.evse.upsert"):
    """An EVSE was added to a location or changed."""

    event_id: str
    location_id: str
    evse: EVSE


class EvseRemove(Message, frozen=True, kw_only=True, tag="locations.evse.remove"):
    """An EVSE was removed: it stays with status REMOVED, as 2.1.1 asks."""

    event_id: str
    location_id: str
    evse_uid: str
    at: datetime


class ConnectorUpsert(Message, frozen=True, kw_only=True, tag="locations.connector.upsert"):
    """A connector was added to an EVSE or changed."""

    event_id: str
    location_id: str
    evse_uid: str
    connector: Connector


class ConnectorRemove(Message, frozen=True, kw_only=True, tag="locations.connector.remove"):
    """A connector was removed from an EVSE."""

    event_id: str
    location_id: str
    evse_uid: str
    connector_id: str
    at: datetime


LocationInput = (
    LocationUpsert
    | LocationRemove
    | EvseStatusSet
    | EvseUpsert
    | EvseRemove
    | ConnectorUpsert
    | ConnectorRemove
)


class PartnerLocationImport(Message, frozen=True, kw_only=True, tag="locations.partner_location.import"):
    """A location pulled from a partner during a re-sync (eMSP side)."""

    country_code: str
    party_id: str
    location: Location


# ---- domain events (events exchange) ------------------------------------------------------------


class ChangeScope(enum.Enum):
    LOCATION = "LOCATION"
    EVSE = "EVSE"
    EVSE_STATUS = "EVSE_STATUS"
    CONNECTOR = "CONNECTOR"


class LocationChange(msgspec.Struct, frozen=True):
    """What part of a location changed; the dispatcher picks PUT or PATCH from it."""

    scope: ChangeScope
    evse_uid: str | None = None
    connector_id: str | None = None


class LocationChanged(Message, frozen=True, kw_only=True, tag="locations.location.changed"):
    """One of our locations changed: the full state after the changes and its version (CPO side).

    `changes` lists each changed part once; inputs applied together in one write share one event.
    """

    location: Location
    version: NonNegativeInt64
    changes: list[LocationChange]


class PartnerLocationChanged(Message, frozen=True, kw_only=True, tag="locations.partner_location.changed"):
    """A partner's location changed in our copy (eMSP side), for internal consumers.

    `version` grows by one per stored change of the location: a consumer that sees a version at or
    below one it has seen holds that state already. An event can come twice (after a crash).
    """

    country_code: str
    party_id: str
    location: Location
    version: NonNegativeInt64
    change: LocationChange
