"""Charging periods of our sessions (CPO side), cut where the tariff's price may change.

Each meter reading starts a period that the next reading ends. The calculator evaluates a tariff's
restrictions at the start of each period (shared/pricing/README.md), so a period from 21:40 to
22:40 would be priced all day-rate under a 22:00 night tariff. The sessions service therefore also
cuts a period at every instant inside it where a restriction of the session's tariff can change:

- each start_time and end_time of an element, in the location's local time (so also at midnight,
  where start_date, end_date and day_of_week change, and on days when clocks change);
- the session's start plus each min_duration and max_duration;
- the instant the energy charged reaches each min_kwh and max_kwh.

The energy of a cut period is shared out in proportion to time (the meter says nothing finer), the
last part taking what rounding left, so that the parts add up to the meter's difference exactly.
Power restrictions (min/max_power: a period's average power) need no cut: a part has the average
power of the period it came from.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.contracts.sessions import MeterReading
from shared.ocpi.v2_1_1.sessions import CdrDimension, CdrDimensionType, ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import Tariff

# Volumes are written with this many decimals (hours: 3.6 ms); both sides price the written values.
VOLUME_DECIMALS = 6


def _times_of_day(tariff: Tariff) -> list[time]:
    """Every local time of day at which an element's restrictions may start or stop holding."""
    found: set[time] = set()
    for element in tariff.elements:
        r = element.restrictions
        if r is None:
            continue
        for text in (r.start_time, r.end_time):
            if text is not None:
                found.add(time(int(text[:2]), int(text[3:5])))
        # Midnight: dates and days change, and a start_time alone holds until midnight, an
        # end_time alone from midnight.
        if any(v is not None for v in (r.start_time, r.end_time, r.start_date, r.end_date, r.day_of_week)):
            found.add(time(0, 0))
    return sorted(found)


def _local_instants(times: list[time], zone: ZoneInfo, lo: datetime, hi: datetime) -> list[datetime]:
    """The instants in (lo, hi) at which the local clock shows one of `times`."""
    found: list[datetime] = []
    day: date = lo.astimezone(zone).date() - timedelta(days=1)
    last: date = hi.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for moment in times:
            for instant in _instants_of(day, moment, zone):
                if lo < instant < hi:
                    found.append(instant)
        day += timedelta(days=1)
    return found


def _instants_of(day: date, moment: time, zone: ZoneInfo) -> set[datetime]:
    """When the local clock reaches `moment` on `day`: twice when clocks go back over it, and at
    the jump when clocks go forward over it (the wall time never shows it; after the jump it is
    past it)."""
    first = datetime.combine(day, moment, zone).replace(fold=0).astimezone(UTC)
    second = datetime.combine(day, moment, zone).replace(fold=1).astimezone(UTC)
    real = {
        i for i in (first, second) if i.astimezone(zone).replace(tzinfo=None) == datetime.combine(day, moment)
    }
    if real:
        return real
    # In a gap: the first instant (to the second) whose wall time is at or past `moment`.
    early, late = min(first, second), max(first, second)
    while (late - early) > timedelta(seconds=1):
        middle = early + (late - early) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= datetime.combine(day, moment):
            late = middle
        else:
            early = middle
    # Clocks change on a whole second, and `late` is within a second after the change.
    return {late.replace(microsecond=0)}


def cut_points(
    tariff: Tariff, zone: ZoneInfo, session_start: datetime, here: MeterReading, after: MeterReading
) -> list[datetime]:
    """The instants strictly inside (here.at, after.at) where the tariff's price may change."""
    lo, hi = here.at, after.at
    points = set(_local_instants(_times_of_day(tariff), zone, lo, hi))
    energy = after.kwh - here.kwh
    for element in tariff.elements:
        r = element.restrictions
        if r is None:
            continue
        for seconds in (r.min_duration, r.max_duration):
            if seconds is not None:
                instant = session_start + timedelta(seconds=seconds)
                if lo < instant < hi:
                    points.add(instant)
        for kwh in (r.min_kwh, r.max_kwh):
            if kwh is not None and energy > 0 and here.kwh < kwh < after.kwh:
                points.add(lo + (hi - lo) * ((kwh - here.kwh) / energy))
    return sorted(points)


def _period(start: datetime, hours: float, energy: float, charging: bool) -> ChargingPeriod:
    time_type = CdrDimensionType.TIME if charging else CdrDimensionType.PARKING_TIME
    return ChargingPeriod(
        start_date_time=start,
        dimensions=[
            CdrDimension(type=CdrDimensionType.ENERGY, volume=energy),
            CdrDimension(type=time_type, volume=hours),
        ],
    )


def periods_of(readings: list[MeterReading], tariff: Tariff | None, zone: str) -> list[ChargingPeriod]:
    """The periods of a session's readings (in time order, the start first), cut for its tariff."""
    if not readings:
        return []
    where = ZoneInfo(zone)
    session_start = readings[0].at
    periods: list[ChargingPeriod] = []
    for here, after in itertools.pairwise(readings):
        cuts = [] if tariff is None else cut_points(tariff, where, session_start, here, after)
        edges = [here.at, *cuts, after.at]
        total = after.kwh - here.kwh
        span = (after.at - here.at).total_seconds()
        given = 0.0
        for index, (lo, hi) in enumerate(itertools.pairwise(edges)):
            seconds = (hi - lo).total_seconds()
            if index == len(edges) - 2:
                energy = round(total - given, VOLUME_DECIMALS)
            else:
                energy = round(total * seconds / span, VOLUME_DECIMALS)
                given += energy
            hours = round(seconds / 3600, VOLUME_DECIMALS)
            periods.append(_period(lo, hours, max(energy, 0.0), here.charging))
    return periods
