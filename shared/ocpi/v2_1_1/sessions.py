"""OCPI 2.1.1 Sessions module objects (mod_sessions.md).

``AuthMethod``, ``ChargingPeriod``, ``CdrDimension`` and ``CdrDimensionType`` are defined in
mod_cdrs.md 4.x; they live here because Session uses them and cdrs.py imports them from this module.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.types import CurrencyCode, DateTime, OcpiStruct, String36, String255

__all__ = [
    "AuthMethod",
    "CdrDimension",
    "CdrDimensionType",
    "ChargingPeriod",
    "Session",
    "SessionPatch",
    "SessionStatus",
    "empty_period",
]


class AuthMethod(enum.StrEnum):
    """mod_cdrs.md 4.1 (2.1.1 has no COMMAND value)."""

    AUTH_REQUEST = "AUTH_REQUEST"
    WHITELIST = "WHITELIST"


class CdrDimensionType(enum.StrEnum):
    """mod_cdrs.md 4.3"""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


# A volume, an energy or an amount: never negative (mod_cdrs.md has no negative quantity), and
# bounded so that no infinity or absurd figure reaches pricing or storage.
Quantity = Annotated[float, msgspec.Meta(ge=0, le=1e9)]


class CdrDimension(OcpiStruct, kw_only=True):
    """mod_cdrs.md 4.2"""

    type: CdrDimensionType
    volume: Quantity


class ChargingPeriod(OcpiStruct, kw_only=True):
    """mod_cdrs.md 4.4"""

    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], msgspec.Meta(min_length=1)]


def empty_period(at: datetime) -> ChargingPeriod:
    """A charging period with nothing in it: what prices a session before its first meter value (its
    FLAT fee), and the one period of a CDR whose session stopped the instant it started."""
    return ChargingPeriod(
        start_date_time=at, dimensions=[CdrDimension(type=CdrDimensionType.ENERGY, volume=0.0)]
    )


class SessionStatus(enum.StrEnum):
    """4.1"""

    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"


class Session(OcpiStruct, kw_only=True):
    """3.1"""

    id: String36
    start_datetime: DateTime
    end_datetime: DateTime | None = None
    kwh: Quantity
    auth_id: String36
    auth_method: AuthMethod
    location: Location  # only the relevant EVSE and Connector
    meter_id: String255 | None = None
    currency: CurrencyCode
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Quantity | None = None  # excluding VAT; absent means "no price information"
    status: SessionStatus
    last_updated: DateTime


class SessionPatch(OcpiStruct, kw_only=True):
    """Partial Session (PATCH /sessions/{country_code}/{party_id}/{session_id}); see locations.py."""

    id: String36 | UnsetType = UNSET
    start_datetime: DateTime | UnsetType = UNSET
    end_datetime: DateTime | UnsetType | None = UNSET
    kwh: Quantity | UnsetType = UNSET
    auth_id: String36 | UnsetType = UNSET
    auth_method: AuthMethod | UnsetType = UNSET
    location: Location | UnsetType = UNSET
    meter_id: String255 | UnsetType | None = UNSET
    currency: CurrencyCode | UnsetType = UNSET
    charging_periods: list[ChargingPeriod] | UnsetType | None = UNSET
    total_cost: Quantity | UnsetType | None = UNSET
    status: SessionStatus | UnsetType = UNSET
    last_updated: DateTime | UnsetType = UNSET
