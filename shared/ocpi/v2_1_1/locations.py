"""OCPI 2.1.1 Locations module objects (mod_locations.md).

Cardinality mapping used throughout the package: ``1`` -> required field, ``?`` -> ``X | None = None``,
``*`` -> ``list[X] | None = None`` (absent and ``null`` are tolerated; an empty list round-trips as
``[]``), ``+`` -> required ``list[X]`` with at least one element.

The ``*Patch`` Structs are PATCH bodies (transport_and_format.md, "PATCH"): every field defaults to
``msgspec.UNSET`` so an absent field can be told from a present one. Fields that are optional in the
full object also accept ``null`` (``None``); required ones do not. The 2.1.1 spec does not require
``last_updated`` in a PATCH body, so it is optional there (but required in the full objects).
"""

from __future__ import annotations

import enum
from typing import Annotated, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from shared.ocpi.v2_1_1.types import (
    URL,
    BusinessDetails,
    DateTime,
    DisplayText,
    Image,
    ImageCategory,
    NonNegativeInt,
    OcpiStruct,
    String3,
    String4,
    String10,
    String16,
    String36,
    String39,
    String45,
    String48,
    String64,
    String255,
    TimeOfDay,
)

__all__ = [
    "EVSE",
    "AdditionalGeoLocation",
    "BusinessDetails",
    "Capability",
    "Connector",
    "ConnectorFormat",
    "ConnectorPatch",
    "ConnectorType",
    "EVSEPatch",
    "EnergyMix",
    "EnergySource",
    "EnergySourceCategory",
    "EnvironmentalImpact",
    "EnvironmentalImpactCategory",
    "ExceptionalPeriod",
    "Facility",
    "GeoLocation",
    "Hours",
    "Image",
    "ImageCategory",
    "Latitude",
    "Location",
    "LocationPatch",
    "LocationType",
    "Longitude",
    "ParkingRestriction",
    "PowerType",
    "RegularHours",
    "Status",
    "StatusSchedule",
]

# --- enums ---------------------------------------------------------------------------------------


class Capability(enum.StrEnum):
    """4.2"""

    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorFormat(enum.StrEnum):
    """4.3"""

    SOCKET = "SOCKET"
    CABLE = "CABLE"


class ConnectorType(enum.StrEnum):
    """4.4"""

    CHADEMO = "CHADEMO"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class EnergySourceCategory(enum.StrEnum):
    """4.7"""

    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnvironmentalImpactCategory(enum.StrEnum):
    """4.9"""

    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class Facility(enum.StrEnum):
    """4.11"""

    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class LocationType(enum.StrEnum):
    """4.16"""

    ON_STREET = "ON_STREET"
    PARKING_GARAGE = "PARKING_GARAGE"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class ParkingRestriction(enum.StrEnum):
    """4.17"""

    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class PowerType(enum.StrEnum):
    """4.18"""

    AC_1_PHASE = "AC_1_PHASE"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class Status(enum.StrEnum):
    """4.20: the status of an EVSE."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


# --- classes -------------------------------------------------------------------------------------

#: Latitude in decimal degrees, string(10), regex -?[0-9]{1,2}\.[0-9]{6}
Latitude: TypeAlias = Annotated[str, msgspec.Meta(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{6}$")]
#: Longitude in decimal degrees, string(11), regex -?[0-9]{1,3}\.[0-9]{6}
Longitude: TypeAlias = Annotated[str, msgspec.Meta(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{6}$")]


class GeoLocation(OcpiStruct, kw_only=True):
    """4.12"""

    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiStruct, kw_only=True):
    """4.1 AdditionalGeoLocation"""

    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class EnergySource(OcpiStruct, kw_only=True):
    """4.6"""

    source: EnergySourceCategory
    percentage: float  # number, 0-100


class EnvironmentalImpact(OcpiStruct, kw_only=True):
    """4.8"""

    source: EnvironmentalImpactCategory
    amount: float  # number, g/kWh


class EnergyMix(OcpiStruct, kw_only=True):
    """4.5"""

    is_green_energy: bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String64 | None = None
    energy_product_name: String64 | None = None


class RegularHours(OcpiStruct, kw_only=True):
    """4.19"""

    weekday: Annotated[int, msgspec.Meta(ge=1, le=7)]  # Monday (1) till Sunday (7)
    period_begin: TimeOfDay
    period_end: TimeOfDay


class ExceptionalPeriod(OcpiStruct, kw_only=True):
    """4.10"""

    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiStruct, kw_only=True):
    """4.13. A choice of ``regular_hours`` or ``twentyfourseven`` plus exceptions.

    Both branches are modelled as optional (the ``regular_hours`` branch has card. ``*``, so it may
    legitimately be empty); the spec's own example sends both.
    """

    regular_hours: list[RegularHours] | None = None
    twentyfourseven: bool | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class StatusSchedule(OcpiStruct, kw_only=True):
    """4.21"""

    period_begin: DateTime
    period_end: DateTime | None = None
    status: Status


class Connector(OcpiStruct, kw_only=True):
    """3.3"""

    id: String36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    voltage: NonNegativeInt
    amperage: NonNegativeInt
    tariff_id: String36 | None = None
    terms_and_conditions: URL | None = None
    last_updated: DateTime


class EVSE(OcpiStruct, kw_only=True):
    """3.2"""

    uid: String39
    evse_id: String48 | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], msgspec.Meta(min_length=1)]
    floor_level: String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: DateTime


class Location(OcpiStruct, kw_only=True):
    """3.1"""

    id: String39
    type: LocationType
    name: String255 | None = None
    address: String45
    city: String45
    postal_code: String10
    country: String3  # ISO 3166-1 alpha-3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String255 | None = None
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None  # spec default: true
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


# --- PATCH bodies --------------------------------------------------------------------------------


class ConnectorPatch(OcpiStruct, kw_only=True):
    """Partial Connector (PATCH .../{location_id}/{evse_uid}/{connector_id})."""

    id: String36 | UnsetType = UNSET
    standard: ConnectorType | UnsetType = UNSET
    format: ConnectorFormat | UnsetType = UNSET
    power_type: PowerType | UnsetType = UNSET
    voltage: NonNegativeInt | UnsetType = UNSET
    amperage: NonNegativeInt | UnsetType = UNSET
    tariff_id: String36 | UnsetType | None = UNSET
    terms_and_conditions: URL | UnsetType | None = UNSET
    last_updated: DateTime | UnsetType = UNSET


class EVSEPatch(OcpiStruct, kw_only=True):
    """Partial EVSE (PATCH .../{location_id}/{evse_uid})."""

    uid: String39 | UnsetType = UNSET
    evse_id: String48 | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET
    status_schedule: list[StatusSchedule] | UnsetType | None = UNSET
    capabilities: list[Capability] | UnsetType | None = UNSET
    connectors: Annotated[list[Connector], msgspec.Meta(min_length=1)] | UnsetType = UNSET
    floor_level: String4 | UnsetType | None = UNSET
    coordinates: GeoLocation | UnsetType | None = UNSET
    physical_reference: String16 | UnsetType | None = UNSET
    directions: list[DisplayText] | UnsetType | None = UNSET
    parking_restrictions: list[ParkingRestriction] | UnsetType | None = UNSET
    images: list[Image] | UnsetType | None = UNSET
    last_updated: DateTime | UnsetType = UNSET


class LocationPatch(OcpiStruct, kw_only=True):
    """Partial Location (PATCH .../{location_id})."""

    id: String39 | UnsetType = UNSET
    type: LocationType | UnsetType = UNSET
    name: String255 | UnsetType | None = UNSET
    address: String45 | UnsetType = UNSET
    city: String45 | UnsetType = UNSET
    postal_code: String10 | UnsetType = UNSET
    country: String3 | UnsetType = UNSET
    coordinates: GeoLocation | UnsetType = UNSET
    related_locations: list[AdditionalGeoLocation] | UnsetType | None = UNSET
    evses: list[EVSE] | UnsetType | None = UNSET
    directions: list[DisplayText] | UnsetType | None = UNSET
    operator: BusinessDetails | UnsetType | None = UNSET
    suboperator: BusinessDetails | UnsetType | None = UNSET
    owner: BusinessDetails | UnsetType | None = UNSET
    facilities: list[Facility] | UnsetType | None = UNSET
    time_zone: String255 | UnsetType | None = UNSET
    opening_times: Hours | UnsetType | None = UNSET
    charging_when_closed: bool | UnsetType | None = UNSET
    images: list[Image] | UnsetType | None = UNSET
    energy_mix: EnergyMix | UnsetType | None = UNSET
    last_updated: DateTime | UnsetType = UNSET
