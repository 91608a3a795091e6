"""A Tariff read once into what pricing needs: Decimal prices, times of day in seconds, dates as ordinals."""

from __future__ import annotations

import datetime as _dt
import math
from decimal import Decimal

import msgspec

from shared.ocpi.v2_1_1.tariffs import DayOfWeek, Tariff, TariffDimensionType, TariffRestrictions
from shared.pricing.priced import PricingError

__all__ = ["Component", "Restriction", "TariffRules", "decimal_of", "read_tariff"]

_WEEKDAYS = {day: number for number, day in enumerate(DayOfWeek)}  # MONDAY = 0, as date.weekday()
_DAY_SECONDS = 86_400


def decimal_of(value: float, what: str) -> Decimal:
    """An OCPI number as the Decimal of its shortest text (0.1 is 0.1, not 0.1000000000000000055...)."""
    if not math.isfinite(value):
        raise PricingError(f"{what} {value!r} is not a finite number")
    return Decimal(repr(value))


def _second_of_day(text: str, what: str) -> int:
    try:
        hours, minutes = text.split(":")
        second = int(hours) * 3600 + int(minutes) * 60
    except ValueError:
        second = -1
    if not (0 <= second < _DAY_SECONDS) or len(text) != 5:
        raise PricingError(f"{what} {text!r} is not a time of day (hh:mm)")
    return second


def _ordinal(text: str, what: str) -> int:
    try:
        if len(text) != 10:  # date.fromisoformat also reads 20151224
            raise ValueError(text)
        return _dt.date.fromisoformat(text).toordinal()
    except ValueError:
        raise PricingError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


class Restriction:
    """TariffRestrictions ready to test: start_* and min_* inclusive, end_* and max_* exclusive."""

    __slots__ = (
        "days",
        "first_day",
        "last_day",
        "max_duration",
        "max_kwh",
        "max_power",
        "min_duration",
        "min_kwh",
        "min_power",
        "needs_local",
        "needs_power",
        "window",
        "wraps",
    )

    def __init__(self, r: TariffRestrictions, where: str) -> None:
        start = None if r.start_time is None else _second_of_day(r.start_time, f"{where}.start_time")
        end = None if r.end_time is None else _second_of_day(r.end_time, f"{where}.end_time")
        # An end_time not after the start_time wraps past midnight (22:00-06:00; 10:00-10:00 is all day).
        self.wraps = start is not None and end is not None and end <= start
        # An end_time of 00:00 with no start_time is the end of the day (2.2.1 writes midnight so),
        # not an empty window.
        if start is None and end == 0:
            end = _DAY_SECONDS
        self.window = (
            None if start is None and end is None else (start or 0, _DAY_SECONDS if end is None else end)
        )
        self.first_day = None if r.start_date is None else _ordinal(r.start_date, f"{where}.start_date")
        self.last_day = None if r.end_date is None else _ordinal(r.end_date, f"{where}.end_date")
        self.days = None if r.day_of_week is None else frozenset(_WEEKDAYS[d] for d in r.day_of_week)
        self.min_kwh = None if r.min_kwh is None else decimal_of(r.min_kwh, f"{where}.min_kwh")
        self.max_kwh = None if r.max_kwh is None else decimal_of(r.max_kwh, f"{where}.max_kwh")
        self.min_power = None if r.min_power is None else decimal_of(r.min_power, f"{where}.min_power")
        self.max_power = None if r.max_power is None else decimal_of(r.max_power, f"{where}.max_power")
        self.min_duration = r.min_duration
        self.max_duration = r.max_duration
        self.needs_local = self.window is not None or self.first_day is not None or self.last_day is not None
        self.needs_local = self.needs_local or self.days is not None
        self.needs_power = self.min_power is not None or self.max_power is not None

    def holds(
        self, second: int, day: int, weekday: int, kwh: Decimal, duration: float, power: Decimal
    ) -> bool:
        """Whether the element applies at a period's start (local second of day, day ordinal, weekday)."""
        if self.window is not None:
            start, end = self.window
            if self.wraps:
                if end <= second < start:
                    return False
            elif not start <= second < end:
                return False
        if self.days is not None and weekday not in self.days:
            return False
        if (self.first_day is not None and day < self.first_day) or (
            self.last_day is not None and day >= self.last_day
        ):
            return False
        if (self.min_kwh is not None and kwh < self.min_kwh) or (
            self.max_kwh is not None and kwh >= self.max_kwh
        ):
            return False
        if (self.min_duration is not None and duration < self.min_duration) or (
            self.max_duration is not None and duration >= self.max_duration
        ):
            return False
        return not (
            (self.min_power is not None and power < self.min_power)
            or (self.max_power is not None and power >= self.max_power)
        )


class Component:
    """A PriceComponent with its element's index and restriction (None: always applies)."""

    __slots__ = ("index", "price", "restriction", "step_size")

    def __init__(self, index: int, restriction: Restriction | None, price: Decimal, step_size: int) -> None:
        self.index = index
        self.restriction = restriction
        self.price = price
        self.step_size = step_size


class TariffRules:
    """Per dimension, the components that may price it, in element order."""

    __slots__ = ("currency", "elements", "energy", "flat", "needs_local", "needs_power", "parking", "time")

    def __init__(self, tariff: Tariff) -> None:
        self.currency = tariff.currency
        self.elements = len(tariff.elements)
        by_type: dict[TariffDimensionType, list[Component]] = {t: [] for t in TariffDimensionType}
        restrictions: list[Restriction] = []
        for index, element in enumerate(tariff.elements):
            where = f"tariff elements[{index}]"
            r = element.restrictions
            restriction = None if r is None else Restriction(r, f"{where}.restrictions")
            if restriction is not None:
                restrictions.append(restriction)
            seen: set[TariffDimensionType] = set()
            for number, pc in enumerate(element.price_components):
                if pc.type in seen:  # one component per dimension in an element: the first one counts
                    continue
                seen.add(pc.type)
                if pc.step_size < 0:
                    raise PricingError(
                        f"{where}.price_components[{number}].step_size {pc.step_size} is negative"
                    )
                price = decimal_of(pc.price, f"{where}.price_components[{number}].price")
                by_type[pc.type].append(Component(index, restriction, price, pc.step_size))
        self.flat = tuple(by_type[TariffDimensionType.FLAT])
        self.energy = tuple(by_type[TariffDimensionType.ENERGY])
        self.time = tuple(by_type[TariffDimensionType.TIME])
        self.parking = tuple(by_type[TariffDimensionType.PARKING_TIME])
        self.needs_local = any(r.needs_local for r in restrictions)
        self.needs_power = any(r.needs_power for r in restrictions)


# Rules of recently priced tariffs, keyed by the tariff's JSON: encoding takes about a microsecond (a
# deep copy to compare with would take 80), and a tariff changed in place, even under the same id and
# last_updated, is read again.
_RECENT: dict[bytes, TariffRules] = {}
_RECENT_MAX = 256
_encoder = msgspec.json.Encoder()


def read_tariff(tariff: Tariff) -> TariffRules:
    """The tariff's rules, checked: a malformed time, date or number raises PricingError naming it."""
    key = _encoder.encode(tariff)
    rules = _RECENT.get(key)
    if rules is None:
        rules = TariffRules(tariff)
        if len(_RECENT) >= _RECENT_MAX:
            _RECENT.pop(next(iter(_RECENT)), None)  # the oldest entry
        _RECENT[key] = rules
    return rules
