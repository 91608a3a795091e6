"""Charging periods of our sessions, cut where the tariff's price may change (cpo_periods.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from services.sessions.cpo_periods import periods_of
from shared.contracts.sessions import MeterReading
from shared.ocpi.v2_1_1.sessions import CdrDimensionType, ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.pricing import price_session

AMS = "Europe/Amsterdam"


def _tariff(*restrictions: dict[str, Any]) -> Tariff:
    elements = [
        {"price_components": [{"type": "ENERGY", "price": 0.30 + i / 10, "step_size": 1}], "restrictions": r}
        for i, r in enumerate(restrictions)
    ]
    elements.append({"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]})
    return msgspec.convert(
        {"id": "T", "currency": "EUR", "elements": elements, "last_updated": "2026-01-01T00:00:00Z"}, Tariff
    )


def _readings(*points: tuple[str, float]) -> list[MeterReading]:
    return [MeterReading(at=datetime.fromisoformat(at), kwh=kwh, charging=True) for at, kwh in points]


def _starts(periods: list[ChargingPeriod]) -> list[str]:
    return [p.start_date_time.astimezone(UTC).strftime("%H:%M") for p in periods]


def _energy(periods: list[ChargingPeriod]) -> list[float]:
    return [d.volume for p in periods for d in p.dimensions if d.type is CdrDimensionType.ENERGY]


def test_a_period_is_cut_at_a_local_time_boundary_and_its_energy_shared_by_time() -> None:
    """21:40-22:40 CET with a 22:00 boundary: 20 and 40 minutes, 3 and 6 kWh of 9."""
    tariff = _tariff({"start_time": "22:00", "end_time": "07:00"})
    readings = _readings(("2026-12-01T20:40:00+00:00", 0.0), ("2026-12-01T21:40:00+00:00", 9.0))
    periods = periods_of(readings, tariff, AMS)
    assert _starts(periods) == ["20:40", "21:00"]
    assert _energy(periods) == [3.0, 6.0]
    # The night part is priced at night: 3 x 0.25 + 6 x 0.30.
    cost = price_session(tariff, readings[0].at, readings[-1].at, periods, AMS).total_cost
    assert cost == Decimal("2.55")


def test_without_a_tariff_or_a_boundary_inside_a_period_stays_whole() -> None:
    readings = _readings(("2026-12-01T10:00:00+00:00", 0.0), ("2026-12-01T11:00:00+00:00", 7.0))
    assert len(periods_of(readings, None, AMS)) == 1
    assert len(periods_of(readings, _tariff({"start_time": "22:00"}), AMS)) == 1


def test_cuts_at_durations_and_energy_thresholds_add_up_to_the_meter_exactly() -> None:
    """min_duration 1800 s from the start, max_kwh 10: cut at 00:30 and where 10 kWh is reached."""
    tariff = _tariff({"min_duration": 1800}, {"max_kwh": 10})
    readings = _readings(("2026-12-01T10:00:00+00:00", 0.0), ("2026-12-01T11:00:00+00:00", 20.0))
    periods = periods_of(readings, tariff, "UTC")
    assert _starts(periods) == ["10:00", "10:30"]  # 10 kWh is reached at 10:30 too
    readings = _readings(("2026-12-01T10:00:00+00:00", 0.0), ("2026-12-01T11:00:00+00:00", 7.0))
    three = periods_of(readings, _tariff({"min_duration": 600}, {"max_kwh": 3.5}), "UTC")
    assert _starts(three) == ["10:00", "10:10", "10:30"]
    assert sum(Decimal(repr(v)) for v in _energy(three)) == Decimal("7")


def test_a_local_time_that_happens_twice_cuts_at_both_instants() -> None:
    """On 25 October 2026 Amsterdam's 02:30 happens at 00:30 UTC (summer) and 01:30 UTC (winter)."""
    tariff = _tariff({"start_time": "02:30", "end_time": "05:00"})
    readings = _readings(("2026-10-25T00:00:00+00:00", 0.0), ("2026-10-25T02:00:00+00:00", 8.0))
    assert _starts(periods_of(readings, tariff, AMS)) == ["00:00", "00:30", "01:30"]


def test_a_local_time_that_never_happens_cuts_once() -> None:
    """On 29 March 2026 Amsterdam skips 02:00-03:00: a 02:30 boundary falls on the jump (01:00 UTC)."""
    tariff = _tariff({"start_time": "02:30"})
    readings = _readings(("2026-03-29T00:00:00+00:00", 0.0), ("2026-03-29T02:00:00+00:00", 8.0))
    assert len(periods_of(readings, tariff, AMS)) == 2


def test_a_one_sided_time_window_cuts_at_midnight() -> None:
    """start_time 22:00 alone holds until midnight: 23:30-00:30 UTC is cut at 00:00."""
    tariff = _tariff({"start_time": "22:00"})
    readings = _readings(("2026-12-01T23:30:00+00:00", 0.0), ("2026-12-02T00:30:00+00:00", 10.0))
    periods = periods_of(readings, tariff, "UTC")
    assert _starts(periods) == ["23:30", "00:00"]
    # 5 kWh at the 22:00-24:00 price, 5 at the rest.
    cost = price_session(tariff, readings[0].at, readings[-1].at, periods, "UTC").total_cost
    assert cost == Decimal("2.75")


def test_an_end_time_of_midnight_alone_is_the_end_of_the_day() -> None:
    tariff = _tariff({"end_time": "00:00"})
    readings = _readings(("2026-12-01T10:00:00+00:00", 0.0), ("2026-12-01T11:00:00+00:00", 10.0))
    periods = periods_of(readings, tariff, "UTC")
    assert price_session(tariff, readings[0].at, readings[-1].at, periods, "UTC").total_cost == Decimal(
        "3.00"
    )


def test_a_negative_price_is_refused_by_the_tariff_model() -> None:
    import pytest

    with pytest.raises(msgspec.ValidationError, match="price"):
        msgspec.convert(
            {
                "id": "T",
                "currency": "EUR",
                "elements": [{"price_components": [{"type": "ENERGY", "price": -0.1, "step_size": 1}]}],
                "last_updated": "2026-01-01T00:00:00Z",
            },
            Tariff,
        )
