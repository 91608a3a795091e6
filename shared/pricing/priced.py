"""What the calculator returns: a session's totals and how each charging period was priced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.ocpi.v2_1_1.tariffs import TariffDimensionType
from shared.ocpi.v2_1_1.types import format_datetime

__all__ = ["Priced", "PricedDimension", "PricedPeriod", "PricingError", "StepRounding"]


class PricingError(ValueError):
    """Input the calculator cannot price; the message names the value and says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class PricedDimension:
    """One dimension of one period: its volume (kWh, hours; 1 for FLAT) and what it cost before steps."""

    type: TariffDimensionType
    volume: Decimal
    element_index: int | None  # the tariff element whose component priced it; None: free
    price: Decimal | None  # per unit, as the component gives it
    step_size: int | None  # the component's step_size (Wh or seconds)
    cost: Decimal  # volume * price, unrounded, before the session's step rounding

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type.value,
            "volume": float(self.volume),
            "tariff_element": self.element_index,
            "price": None if self.price is None else float(self.price),
            "step_size": self.step_size,
            "cost": float(self.cost),
        }


@dataclass(frozen=True, slots=True)
class PricedPeriod:
    """A charging period: from its start to the next period's start (the last one to the session's stop)."""

    start_date_time: datetime
    end_date_time: datetime
    dimensions: tuple[PricedDimension, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "start_date_time": format_datetime(self.start_date_time),
            "end_date_time": format_datetime(self.end_date_time),
            "dimensions": [d.to_json() for d in self.dimensions],
        }


@dataclass(frozen=True, slots=True)
class StepRounding:
    """A dimension's session total rounded up to whole steps of its last used component."""

    type: TariffDimensionType
    volume: Decimal  # the priced volume of the session (kWh or hours); free periods do not count
    billed_volume: Decimal
    element_index: int
    step_size: int  # Wh for ENERGY, seconds for TIME and PARKING_TIME
    price: Decimal
    extra_cost: Decimal  # (billed_volume - volume) * price, unrounded

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type.value,
            "volume": float(self.volume),
            "billed_volume": float(self.billed_volume),
            "tariff_element": self.element_index,
            "step_size": self.step_size,
            "price": float(self.price),
            "extra_cost": float(self.extra_cost),
        }


@dataclass(frozen=True, slots=True)
class Priced:
    """A priced session, with the CDR's total_* figures; costs rounded to cents, half up, at the end."""

    currency: str
    total_cost: Decimal
    total_fixed_cost: Decimal
    total_energy_cost: Decimal
    total_time_cost: Decimal
    total_parking_cost: Decimal
    total_energy: Decimal  # kWh
    total_time: Decimal  # hours, stop - start
    total_parking_time: Decimal  # hours
    periods: tuple[PricedPeriod, ...]
    steps: tuple[StepRounding, ...] = ()

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: Decimals as numbers, DateTimes in OCPI form."""
        return {
            "currency": self.currency,
            "total_cost": float(self.total_cost),
            "total_fixed_cost": float(self.total_fixed_cost),
            "total_energy_cost": float(self.total_energy_cost),
            "total_time_cost": float(self.total_time_cost),
            "total_parking_cost": float(self.total_parking_cost),
            "total_energy": float(self.total_energy),
            "total_time": float(self.total_time),
            "total_parking_time": float(self.total_parking_time),
            "periods": [p.to_json() for p in self.periods],
            "step_rounding": [s.to_json() for s in self.steps],
        }
