"""Properties of price_session over generated tariffs and sessions (hypothesis, bounded for CI).

Prices are never negative here. Volumes are whole Wh (ENERGY) and thousandths of an hour (TIME,
PARKING_TIME), so that splitting one leaves parts whose decimal sum is exactly the whole.

Monotonicity is stated as far as the spec allows it: with 2.2.1's step rule the extra volume of the
rounding is billed at the LAST component's price, so more volume early at a cheaper price can lower
the total (test_pricing.py pins that case down). Without step sizes, and for the period that priced
a dimension last, more volume never lowers the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.ocpi.v2_1_1.sessions import CdrDimension, CdrDimensionType, ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import DayOfWeek, Tariff
from shared.pricing import Priced, price_session
from tests.support.pricing import at, tariff

BOUNDED = settings(max_examples=200, deadline=None)
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"]
STARTS = ["2026-03-28T20:00", "2026-10-24T21:00", "2026-06-05T06:00", "2026-12-31T22:00"]
TIME_OF_DAY = st.integers(0, 95).map(lambda q: f"{q // 4:02d}:{q % 4 * 15:02d}")
STEPS = {"ENERGY": [0, 1, 100, 500, 1000], "TIME": [0, 1, 60, 300, 900], "PARKING_TIME": [0, 60, 300, 900]}


def _sometimes() -> st.SearchStrategy[bool]:
    return st.integers(0, 3).map(lambda n: n == 0)


@st.composite
def restrictions(draw: st.DrawFn, energy_based: bool) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    r: dict[str, Any] = {}
    for name in ("start_time", "end_time"):
        if draw(_sometimes()):
            r[name] = draw(TIME_OF_DAY)
    if draw(_sometimes()):
        r["day_of_week"] = draw(
            st.lists(st.sampled_from(list(DayOfWeek)), min_size=1, max_size=6, unique=True)
        )
    for name in ("min_duration", "max_duration"):
        if draw(_sometimes()):
            r[name] = draw(st.integers(0, 6 * 3600))
    if energy_based:
        for name in ("min_kwh", "max_kwh", "min_power", "max_power"):
            if draw(_sometimes()):
                r[name] = float(draw(st.integers(0, 60)))
    return r


@st.composite
def tariffs(draw: st.DrawFn, energy_based: bool = True, steps: bool = True) -> Tariff:
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        kinds = draw(st.lists(st.sampled_from(["FLAT", *STEPS]), min_size=1, max_size=4, unique=True))
        components = [
            {
                "type": kind,
                "price": draw(st.integers(0, 1000)) / 100,
                "step_size": draw(st.sampled_from(STEPS.get(kind, [0, 1]))) if steps else 0,
            }
            for kind in kinds
        ]
        element: dict[str, Any] = {"price_components": components}
        r = draw(restrictions(energy_based))
        if r:
            element["restrictions"] = r
        elements.append(element)
    return tariff(*elements)


@dataclass
class Session:
    start: datetime
    stop: datetime
    # (start, energy Wh or None, TIME thousandths of an hour or None, PARKING_TIME thousandths or None)
    periods: list[tuple[datetime, int | None, int | None, int | None]]
    zone: str

    def charging_periods(self) -> list[ChargingPeriod]:
        out = []
        for begins, wh, time, parking in self.periods:
            dimensions = [
                CdrDimension(type=kind, volume=volume / 1000)
                for kind, volume in (
                    (CdrDimensionType.ENERGY, wh),
                    (CdrDimensionType.TIME, time),
                    (CdrDimensionType.PARKING_TIME, parking),
                )
                if volume is not None
            ]
            dimensions.append(CdrDimension(type=CdrDimensionType.MAX_CURRENT, volume=16.0))
            out.append(ChargingPeriod(start_date_time=begins, dimensions=dimensions))
        return out

    def price(self, t: Tariff) -> Priced:
        return price_session(t, self.start, self.stop, self.charging_periods(), self.zone)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    start = at(draw(st.sampled_from(STARTS))) + timedelta(minutes=draw(st.integers(0, 24 * 60)))
    begins = start
    periods = []
    for _ in range(draw(st.integers(1, 5))):
        minutes = draw(st.integers(0, 240))
        if draw(st.integers(0, 2)) < 2:  # charging: energy and charging time
            periods.append((begins, draw(st.integers(0, 50_000)), draw(st.integers(0, 4000)), None))
        else:
            periods.append((begins, None, None, draw(st.integers(0, 4000))))
        begins += timedelta(minutes=minutes)
    return Session(start, begins, periods, draw(st.sampled_from(ZONES)))


def _costs(p: Priced) -> tuple[Any, ...]:
    return (p.total_cost, p.total_fixed_cost, p.total_energy_cost, p.total_time_cost, p.total_parking_cost)


@BOUNDED
@given(tariffs(), sessions())
def test_cost_is_never_negative(t: Tariff, s: Session) -> None:
    """With non-negative prices no total, period cost or step extra is negative."""
    priced = s.price(t)
    assert min(_costs(priced)) >= 0
    assert all(d.cost >= 0 for p in priced.periods for d in p.dimensions)
    assert all(step.extra_cost >= 0 and step.billed_volume >= step.volume for step in priced.steps)


def _more(s: Session, i: int, slot: int, extra: int) -> Session:
    periods = list(s.periods)
    fields = list(periods[i])
    fields[slot] = (fields[slot] or 0) + extra
    periods[i] = (fields[0], fields[1], fields[2], fields[3])
    return Session(s.start, s.stop, periods, s.zone)


@BOUNDED
@given(tariffs(energy_based=False, steps=False), sessions(), st.data())
def test_more_volume_never_lowers_the_total_without_steps(t: Tariff, s: Session, data: st.DataObject) -> None:
    """More energy (no kWh or power restrictions), charging or parking time in any period costs no less."""
    i = data.draw(st.integers(0, len(s.periods) - 1))
    slot = data.draw(st.sampled_from([1, 2, 3]))
    more = _more(s, i, slot, data.draw(st.integers(1, 20_000)))
    assert more.price(t).total_cost >= s.price(t).total_cost


@BOUNDED
@given(tariffs(energy_based=False), sessions(), st.data())
def test_more_volume_where_a_dimension_was_priced_last_never_lowers_the_total(
    t: Tariff, s: Session, data: st.DataObject
) -> None:
    """With step sizes: more volume in the period whose component priced its dimension last costs no less."""
    slot = data.draw(st.sampled_from([1, 2, 3]))
    kind = {1: "ENERGY", 2: "TIME", 3: "PARKING_TIME"}[slot]
    priced = s.price(t)
    used = [
        i
        for i, p in enumerate(priced.periods)
        for d in p.dimensions
        if d.type.value == kind and d.element_index is not None and d.volume > 0
    ]
    assume(used)
    more = _more(s, used[-1], slot, data.draw(st.integers(1, 20_000)))
    assert more.price(t).total_cost >= priced.total_cost


@BOUNDED
@given(tariffs(), sessions(), st.data())
def test_splitting_a_period_where_nothing_changes_keeps_the_total(
    t: Tariff, s: Session, data: st.DataObject
) -> None:
    """A period cut in two, where every dimension keeps its element, costs the same in total."""
    i = data.draw(st.integers(0, len(s.periods) - 1))
    begins, wh, time, parking = s.periods[i]
    ends = s.periods[i + 1][0] if i + 1 < len(s.periods) else s.stop
    span = int((ends - begins).total_seconds())
    assume(span >= 2)
    share = data.draw(st.sampled_from([0.25, 0.5, 0.75]))
    cut = begins + timedelta(seconds=round(span * share))

    def part(v: int | None) -> tuple[int | None, int | None]:
        return (None, None) if v is None else (round(v * share), v - round(v * share))

    (wh1, wh2), (time1, time2), (parking1, parking2) = part(wh), part(time), part(parking)
    periods = [
        *s.periods[:i],
        (begins, wh1, time1, parking1),
        (cut, wh2, time2, parking2),
        *s.periods[i + 1 :],
    ]
    split = Session(s.start, s.stop, periods, s.zone)
    whole, halves = s.price(t), split.price(t)

    def chosen(p: Priced, j: int) -> list[tuple[str, int | None]]:
        return [(d.type.value, d.element_index) for d in p.periods[j].dimensions]

    assume(chosen(halves, i) == chosen(whole, i))
    assume(
        chosen(halves, i + 1) == [c for c in chosen(whole, i) if c[0] != "FLAT"]
    )  # no FLAT moved to the cut
    assert _costs(halves) == _costs(whole)
    assert (halves.total_energy, halves.total_time, halves.total_parking_time) == (
        whole.total_energy,
        whole.total_time,
        whole.total_parking_time,
    )


def test_generated_tariffs_decode_like_partner_input() -> None:
    """The builders make the same Tariff that decoding a partner's JSON would."""
    t = tariff({"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]})
    assert msgspec.json.decode(msgspec.json.encode(t), type=Tariff) == t
