"""OCPI 2.1.1 Tariffs module objects (mod_tariffs.md).

Prices and restriction amounts are OCPI ``number`` values, modelled as ``float`` (see types.py).
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from shared.ocpi.v2_1_1.locations import EnergyMix
from shared.ocpi.v2_1_1.types import (
    URL,
    CurrencyCode,
    DateTime,
    DisplayText,
    NonNegativeInt,
    OcpiStruct,
    String10,
    String36,
    TimeOfDay,
)

__all__ = [
    "DayOfWeek",
    "PriceComponent",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffPatch",
    "TariffRestrictions",
]


class DayOfWeek(enum.StrEnum):
    """4.1"""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class TariffDimensionType(enum.StrEnum):
    """4.4"""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class PriceComponent(OcpiStruct, kw_only=True):
    """4.2"""

    type: TariffDimensionType
    # Per unit, excluding VAT. Never negative: a negative price would make negative session and CDR
    # totals, which no partner's system takes (their totals are never negative either, cdrs.py).
    price: Annotated[float, msgspec.Meta(ge=0, le=1e9)]
    step_size: NonNegativeInt


class TariffRestrictions(OcpiStruct, kw_only=True):
    """4.5"""

    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: String10 | None = None  # e.g. 2015-12-24
    end_date: String10 | None = None
    min_kwh: float | None = None
    max_kwh: float | None = None
    min_power: float | None = None
    max_power: float | None = None
    min_duration: NonNegativeInt | None = None  # seconds
    max_duration: NonNegativeInt | None = None
    day_of_week: list[DayOfWeek] | None = None


class TariffElement(OcpiStruct, kw_only=True):
    """4.3"""

    price_components: Annotated[list[PriceComponent], msgspec.Meta(min_length=1)]
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiStruct, kw_only=True):
    """3.1"""

    id: String36
    currency: CurrencyCode
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: URL | None = None
    elements: Annotated[list[TariffElement], msgspec.Meta(min_length=1)]
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


class TariffPatch(OcpiStruct, kw_only=True):
    """Partial Tariff (PATCH /tariffs/{country_code}/{party_id}/{tariff_id}); see locations.py."""

    id: String36 | UnsetType = UNSET
    currency: CurrencyCode | UnsetType = UNSET
    tariff_alt_text: list[DisplayText] | UnsetType | None = UNSET
    tariff_alt_url: URL | UnsetType | None = UNSET
    elements: Annotated[list[TariffElement], msgspec.Meta(min_length=1)] | UnsetType = UNSET
    energy_mix: EnergyMix | UnsetType | None = UNSET
    last_updated: DateTime | UnsetType = UNSET
