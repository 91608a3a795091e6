"""price_session: what a session costs under a tariff (the rules and their sources: README.md here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.ocpi.v2_1_1.sessions import CdrDimensionType, ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import Tariff, TariffDimensionType
from shared.pricing.priced import Priced, PricedDimension, PricedPeriod, PricingError, StepRounding
from shared.pricing.rules import Component, read_tariff

__all__ = ["price_session"]

# Volumes are kept per dimension in lists indexed by these.
ENERGY, TIME, PARKING = 0, 1, 2
_KINDS = (TariffDimensionType.ENERGY, TariffDimensionType.TIME, TariffDimensionType.PARKING_TIME)
_INDEX = {
    CdrDimensionType.ENERGY: ENERGY,
    CdrDimensionType.TIME: TIME,
    CdrDimensionType.PARKING_TIME: PARKING,
}
_UNIT = (Decimal(1000), Decimal(3600), Decimal(3600))  # step units per volume unit: Wh per kWh, s per hour
_FLAT = TariffDimensionType.FLAT
_ZERO = Decimal(0)
_ONE = Decimal(1)
_HOUR = Decimal(3600)
_CENT = Decimal("0.01")
_MICRO = Decimal("0.000001")  # float volumes carry noise far below this; steps are rounded from here
_ZONES: dict[str, ZoneInfo] = {}
Moment = tuple[int, int, int, Decimal, float, Decimal]


def _zone(zone: str | ZoneInfo) -> ZoneInfo:
    if isinstance(zone, ZoneInfo):
        return zone
    found = _ZONES.get(zone)
    if found is None:
        try:
            found = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise PricingError(f"unknown time zone {zone!r}") from exc
        _ZONES[zone] = found
    return found


def _seconds(delta: timedelta) -> Decimal:
    whole = Decimal(delta.days * 86_400 + delta.seconds)
    return whole + Decimal(delta.microseconds) / 1_000_000 if delta.microseconds else whole


def _check_session(start: datetime, stop: datetime, periods: Sequence[ChargingPeriod]) -> None:
    for name, value in (("start", start), ("stop", stop)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PricingError(
                f"session {name} {value.isoformat()} has no time zone (an aware datetime is needed)"
            )
    if stop < start:
        raise PricingError(f"session stop {stop.isoformat()} is before its start {start.isoformat()}")
    if not periods:
        raise PricingError("the session has no charging periods")


def _volumes(period: ChargingPeriod, i: int) -> list[Decimal | None]:
    """ENERGY (kWh), TIME and PARKING_TIME (hours) of a period; several of one type add up."""
    volumes: list[Decimal | None] = [None, None, None]
    for j, dimension in enumerate(period.dimensions):
        k = _INDEX.get(dimension.type)
        if k is None:
            continue  # MIN_CURRENT, MAX_CURRENT cost nothing; FLAT comes from the tariff
        value = dimension.volume
        if not (math.isfinite(value) and value >= 0):
            what = "is negative" if math.isfinite(value) else "is not a finite number"
            raise PricingError(
                f"charging_periods[{i}].dimensions[{j}] {dimension.type.value} volume {value!r} {what}"
            )
        volume = Decimal(repr(value))
        before = volumes[k]
        volumes[k] = volume if before is None else before + volume
    return volumes


def _first(components: tuple[Component, ...], memo: list[bool | None], moment: Moment) -> Component | None:
    """The first component whose element's restrictions hold; each element is tested once per period."""
    for c in components:
        restriction = c.restriction
        if restriction is None:
            return c
        holds = memo[c.index]
        if holds is None:
            holds = memo[c.index] = restriction.holds(*moment)
        if holds:
            return c
    return None


def _round_steps(
    volumes: list[Decimal], last: list[Component | None], last_at: list[int], costs: list[Decimal]
) -> tuple[StepRounding, ...]:
    """Round each dimension's priced session total up once, with its last used component (adds to costs)."""
    steps = []
    for k in (ENERGY, TIME, PARKING):
        c = last[k]
        if c is None or c.step_size == 0:
            continue
        if k == TIME and last_at[PARKING] >= last_at[TIME]:
            continue  # priced parking follows the charging time: the parking takes the step
        unit = _UNIT[k]
        used = volumes[k] * unit
        step = Decimal(c.step_size)
        # Blocks are counted on the volume to a millionth (2/3 h is 2400 s, not 2400.0000000000002 s), and
        # the extra is taken from the exact volume, so one price bills exactly billed * price (float noise
        # above a step boundary is not taken back).
        billed = (used.quantize(_MICRO) / step).to_integral_value(ROUND_CEILING) * step
        extra = max(billed - used, _ZERO) * c.price / unit
        costs[k] += extra
        steps.append(StepRounding(_KINDS[k], volumes[k], billed / unit, c.index, c.step_size, c.price, extra))
    return tuple(steps)


def price_session(
    tariff: Tariff,
    start: datetime,
    stop: datetime,
    periods: Sequence[ChargingPeriod],
    zone: str | ZoneInfo = "UTC",
) -> Priced:
    """Price a session's charging periods under a tariff, restrictions read in the location's zone."""
    tz = _zone(zone)
    _check_session(start, stop, periods)
    rules = read_tariff(tariff)
    candidates = (rules.energy, rules.time, rules.parking)
    flat_due = bool(rules.flat)
    fixed = _ZERO
    totals = [_ZERO, _ZERO, _ZERO]  # every volume, for the CDR's totals
    priced = [_ZERO, _ZERO, _ZERO]  # volumes a component priced, for the steps
    costs = [_ZERO, _ZERO, _ZERO]
    last: list[Component | None] = [None, None, None]
    last_at = [-1, -1, -1]
    kwh_before = _ZERO
    out = []
    count = len(periods)
    previous = start
    for i in range(count):
        period = periods[i]
        begins = period.start_date_time
        if begins.tzinfo is None:
            raise PricingError(f"charging_periods[{i}].start_date_time {begins.isoformat()} has no time zone")
        if begins < previous:
            ahead = "the session start" if i == 0 else "the one ahead of it"
            raise PricingError(f"charging_periods[{i}] starts at {begins.isoformat()}, before {ahead}")
        if begins > stop:
            raise PricingError(
                f"charging_periods[{i}] starts at {begins.isoformat()}, after the session stop"
            )
        ends = periods[i + 1].start_date_time if i + 1 < count else stop
        volumes = _volumes(period, i)
        energy = volumes[ENERGY]
        second = day = weekday = 0
        if rules.needs_local:
            local = begins.astimezone(tz)
            second = local.hour * 3600 + local.minute * 60 + local.second
            day = local.toordinal()
            weekday = local.weekday()
        power = _ZERO
        if rules.needs_power and energy:
            span = (ends - begins).total_seconds()
            if span > 0:
                power = energy * _HOUR / Decimal(repr(span))
        moment = (second, day, weekday, kwh_before, (begins - start).total_seconds(), power)
        memo: list[bool | None] = [None] * rules.elements
        dimensions = []
        if flat_due:
            c = _first(rules.flat, memo, moment)
            if c is not None:
                flat_due = False
                fixed = c.price
                dimensions.append(PricedDimension(_FLAT, _ONE, c.index, c.price, c.step_size, c.price))
        for k in (ENERGY, TIME, PARKING):
            volume = volumes[k]
            if volume is None:
                continue
            totals[k] += volume
            c = _first(candidates[k], memo, moment)
            if c is None:
                dimensions.append(PricedDimension(_KINDS[k], volume, None, None, None, _ZERO))
                continue
            cost = volume * c.price
            costs[k] += cost
            if volume:  # a zero volume does not make its component the 'last used' one
                priced[k] += volume
                last[k] = c
                last_at[k] = i
            dimensions.append(PricedDimension(_KINDS[k], volume, c.index, c.price, c.step_size, cost))
        if energy is not None:
            kwh_before += energy
        out.append(PricedPeriod(begins, ends, tuple(dimensions)))
        previous = begins
    steps = _round_steps(priced, last, last_at, costs)
    return Priced(
        currency=rules.currency,
        total_cost=(fixed + costs[ENERGY] + costs[TIME] + costs[PARKING]).quantize(_CENT, ROUND_HALF_UP),
        total_fixed_cost=fixed.quantize(_CENT, ROUND_HALF_UP),
        total_energy_cost=costs[ENERGY].quantize(_CENT, ROUND_HALF_UP),
        total_time_cost=costs[TIME].quantize(_CENT, ROUND_HALF_UP),
        total_parking_cost=costs[PARKING].quantize(_CENT, ROUND_HALF_UP),
        total_energy=totals[ENERGY],
        total_time=_seconds(stop - start) / _HOUR,
        total_parking_time=totals[PARKING],
        periods=tuple(out),
        steps=steps,
    )
