"""The tariff price calculator: the spec's worked examples (2.1.1 and 2.2.1) and one case per rule.

Figures in the comments are worked by hand; costs exclude VAT (2.1.1 has no VAT).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.ocpi.v2_1_1.sessions import ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import TariffDimensionType
from shared.pricing import Priced, PricingError, price_session
from tests.support.pricing import at, component, element, period, tariff

D = Decimal
AMS = "Europe/Amsterdam"


def _indices(priced: Priced, kind: TariffDimensionType) -> list[int | None]:
    return [d.element_index for p in priced.periods for d in p.dimensions if d.type is kind]


# --- 2.1.1 ---------------------------------------------------------------------------------------

# mod_tariffs.md 3.1 "Complex Tariff example" (2.1.1 restricts by power in kW, not by current).
COMPLEX_211 = tariff(
    element(component("FLAT", 2.50, 1)),
    element(component("TIME", 1.00, 900), max_power=32.00),
    element(
        component("TIME", 2.00, 600),
        min_power=32.00,
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    element(component("TIME", 1.25, 600), min_power=32.00, day_of_week=["SATURDAY", "SUNDAY"]),
    element(
        component("PARKING_TIME", 5.00, 300),
        start_time="09:00",
        end_time="18:00",
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    element(
        component("PARKING_TIME", 6.00, 300), start_time="10:00", end_time="17:00", day_of_week=["SATURDAY"]
    ),
)


def test_211_cdr_example_two_euro_per_hour_in_five_minute_blocks() -> None:
    """mod_cdrs.md 3.1 example: 1.973 h at 2.00/h billed per 300 s is 24 blocks = 2 h = 4.00."""
    # 1.973 h = 7102.8 s -> ceil(7102.8 / 300) = 24 blocks = 7200 s = 2 h -> 2 h * 2.00 = 4.00
    priced = price_session(
        tariff(element(component("TIME", 2.00, 300))),
        at("2015-06-29T21:39:09"),
        at("2015-06-29T23:37:32"),
        [period("2015-06-29T21:39:09", time=1.973)],
    )
    assert priced.total_cost == D("4.00")
    assert priced.total_time_cost == D("4.00")
    # total_time is the session's duration: 7103 s = 1.97305... h (the CDR says 1.973)
    assert priced.total_time.quantize(D("0.001")) == D("1.973")


def test_211_complex_tariff_on_a_monday_morning() -> None:
    """2.2.1's first complex case on the 2.1.1 tariff: 2.50 + 165 min at 1.00/h + 45 min at 5.00/h = 9.00."""
    # Monday 2026-12-07 09:30 CET (08:30Z), 165 min at 11 kW (< 32 kW: element 1), then 42 min parked
    # from 12:15 local (weekday 09:00-18:00: element 4). FLAT 2.50; TIME 2.75 h * 1.00 = 2.75, not
    # rounded (parking follows); parking 42 min = 2520 s -> 9 blocks of 300 s = 45 min * 5.00/h = 3.75.
    priced = price_session(
        COMPLEX_211,
        at("2026-12-07T08:30"),
        at("2026-12-07T11:57"),
        [period("2026-12-07T08:30", energy=30.25, time=2.75), period("2026-12-07T11:15", parking=0.7)],
        AMS,
    )
    assert (priced.total_fixed_cost, priced.total_time_cost, priced.total_parking_cost) == (
        D("2.50"),
        D("2.75"),
        D("3.75"),
    )
    assert priced.total_cost == D("9.00")
    assert _indices(priced, TariffDimensionType.TIME) == [1]
    assert _indices(priced, TariffDimensionType.PARKING_TIME) == [4]


def test_211_complex_tariff_on_a_saturday_afternoon() -> None:
    """2.2.1's second complex case: 2.50 + 114 min at 1.25/h + 75 min at 6.00/h = 12.375 -> 12.38.

    The spec's table says 2.28 for the charging time and 12.28 in total; 114 min at 1.25/h is 2.375.
    """
    # Saturday 2026-12-05 13:30 CET (12:30Z), 114 min at 50 kW (>= 32 kW, weekend: element 3), then 71
    # min parked from 15:24 local (Saturday 10:00-17:00: element 5): 4260 s -> 15 blocks = 75 min.
    priced = price_session(
        COMPLEX_211,
        at("2026-12-05T12:30"),
        at("2026-12-05T15:35"),
        [period("2026-12-05T12:30", energy=95.0, time=1.9), period("2026-12-05T14:24", parking=71 / 60)],
        AMS,
    )
    assert priced.total_time_cost == D("2.38")  # 2.375, half up
    assert priced.total_parking_cost == D("7.50")
    assert priced.total_cost == D("12.38")  # 2.50 + 2.375 + 7.50 = 12.375
    assert _indices(priced, TariffDimensionType.TIME) == [3]


# --- 2.2.1 mod_tariffs.asciidoc examples ------------------------------------------------------------


def test_221_energy_with_start_fee_and_parking() -> None:
    """tariff_10: 0.50 + 20 kWh at 0.25 + 40 min parking billed per 15 min (45 min at 2.00/h) = 7.00."""
    priced = price_session(
        tariff(
            element(
                component("FLAT", 0.50, 1), component("ENERGY", 0.25, 1), component("PARKING_TIME", 2.00, 900)
            )
        ),
        at("2026-06-01T10:00"),
        at("2026-06-01T12:40"),
        [period("2026-06-01T10:00", energy=20.0, time=2.0), period("2026-06-01T12:00", parking=40 / 60)],
    )
    # 0.50 + 5.00 + 0.75 h * 2.00 = 1.50 -> 7.00
    assert (priced.total_fixed_cost, priced.total_energy_cost, priced.total_parking_cost) == (
        D("0.50"),
        D("5.00"),
        D("1.50"),
    )
    assert priced.total_cost == D("7.00")


def test_221_simple_energy_and_start_fee() -> None:
    """tariff_8 and tariff_9: 20 kWh at 0.25 is 5.00; with a 0.50 start fee 5.50."""
    periods = [period("2026-06-01T10:00", energy=20.0)]
    start, stop = at("2026-06-01T10:00"), at("2026-06-01T12:00")
    plain = price_session(tariff(element(component("ENERGY", 0.25, 1))), start, stop, periods)
    fee = price_session(
        tariff(element(component("FLAT", 0.50, 1), component("ENERGY", 0.25, 1))), start, stop, periods
    )
    assert (plain.total_cost, fee.total_cost) == (D("5.00"), D("5.50"))


def test_221_two_euro_per_hour_charging_time_only() -> None:
    """tariff_1: 2.5 h at 2.00/h = 5.00; the parking that follows is free (no PARKING_TIME component)."""
    priced = price_session(
        tariff(element(component("TIME", 2.00, 60))),
        at("2026-06-01T10:00"),
        at("2026-06-01T13:00"),
        [period("2026-06-01T10:00", time=2.5), period("2026-06-01T12:30", parking=0.5)],
    )
    assert priced.total_cost == D("5.00")
    assert _indices(priced, TariffDimensionType.PARKING_TIME) == [None]


def test_221_three_euro_per_hour_five_euro_parking() -> None:
    """tariff_13: 150 min at 3.00/h = 7.50, 42 min parked billed as 45 at 5.00/h = 3.75: 11.25."""
    priced = price_session(
        tariff(element(component("TIME", 3.00, 60), component("PARKING_TIME", 5.00, 300))),
        at("2026-06-01T10:00"),
        at("2026-06-01T13:12"),
        [period("2026-06-01T10:00", time=2.5), period("2026-06-01T12:30", parking=0.7)],
    )
    assert priced.total_cost == D("11.25")


# --- 2.2.1 mod_cdrs.asciidoc "step_size" ---------------------------------------------------------------

TWO_ENERGY_PRICES = tariff(
    element(component("ENERGY", 0.20, 500), end_time="17:00"),
    element(component("ENERGY", 0.27, 500)),
)


def test_221_step_energy_rounds_the_session_total_at_the_last_price() -> None:
    """4.3 kWh before 17:00 + 1.1 kWh after = 5.4 kWh, rounded up to 5.5 once, the 0.1 at 0.27."""
    priced = price_session(
        TWO_ENERGY_PRICES,
        at("2026-06-01T15:00"),
        at("2026-06-01T18:00"),
        [period("2026-06-01T15:00", energy=4.3), period("2026-06-01T17:00", energy=1.1)],
    )
    # 4.3 * 0.20 = 0.86; 1.1 * 0.27 = 0.297; 0.1 * 0.27 = 0.027 -> 1.184 -> 1.18
    assert priced.total_energy_cost == D("1.18")
    (step,) = priced.steps
    assert (step.volume, step.billed_volume, step.element_index) == (D("5.4"), D("5.5"), 1)


def test_221_step_time_rounds_the_session_total_at_the_last_price() -> None:
    """6 min at 5/h before 17:00 + 22 min at 7/h after: 28 min rounded to 30, so 24 min billed after."""
    priced = price_session(
        tariff(element(component("TIME", 5.0, 600), end_time="17:00"), element(component("TIME", 7.0, 600))),
        at("2026-06-01T16:54"),
        at("2026-06-01T17:22"),
        [period("2026-06-01T16:54", time=0.1), period("2026-06-01T17:00", time=22 / 60)],
    )
    # 0.1 h * 5 = 0.50; 24 min * 7/h = 2.80 -> 3.30 (not 0.50 + 30 min * 7/h = 4.00)
    assert priced.total_cost == D("3.30")


def test_221_step_parking_rounded_charging_time_not() -> None:
    """21 min charging at 1/h, 16 min parked at 2/h, both per 10 min: parking 20 min, charging 21 min."""
    priced = price_session(
        tariff(element(component("TIME", 1.0, 600), component("PARKING_TIME", 2.0, 600))),
        at("2026-06-01T10:00"),
        at("2026-06-01T10:37"),
        [period("2026-06-01T10:00", time=0.35), period("2026-06-01T10:21", parking=16 / 60)],
    )
    # TIME 0.35 h * 1 = 0.35; parking 20 min * 2/h = 0.6667 -> 1.0167 -> 1.02
    assert priced.total_time_cost == D("0.35")
    assert priced.total_parking_cost == D("0.67")
    assert priced.total_cost == D("1.02")


def test_221_step_five_minutes_21_min_charging_7_parking() -> None:
    """Charging billed on 21 min (not 25), parking on 10 min (both step 300 s)."""
    priced = price_session(
        tariff(element(component("TIME", 6.0, 300), component("PARKING_TIME", 6.0, 300))),
        at("2026-06-01T10:00"),
        at("2026-06-01T10:28"),
        [period("2026-06-01T10:00", time=0.35), period("2026-06-01T10:21", parking=7 / 60)],
    )
    # 21 min * 6/h = 2.10; 10 min * 6/h = 1.00
    assert (priced.total_time_cost, priced.total_parking_cost) == (D("2.10"), D("1.00"))


# --- our rules -------------------------------------------------------------------------------------

NIGHT = tariff(
    element(component("TIME", 1.0), start_time="22:00", end_time="06:00"), element(component("TIME", 2.0))
)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2026-06-01T23:00", 0),
        ("2026-06-02T05:59", 0),
        ("2026-06-02T06:00", 1),
        ("2026-06-01T21:59", 1),
        ("2026-06-01T22:00", 0),
        ("2026-06-02T00:00", 0),
    ],
)
def test_end_time_before_start_time_wraps_past_midnight(start: str, expected: int) -> None:
    """22:00-06:00 holds from 22:00 (inclusive) to 06:00 the next morning (exclusive)."""
    priced = price_session(NIGHT, at(start), at("2026-06-02T23:00"), [period(start, time=0.5)])
    assert _indices(priced, TariffDimensionType.TIME) == [expected]


def test_start_time_equal_to_end_time_is_the_whole_day() -> None:
    """A window from 10:00 to 10:00 wraps all the way round: it holds at any time of day."""
    whole_day = tariff(element(component("TIME", 1.0), start_time="10:00", end_time="10:00"))
    priced = price_session(
        whole_day, at("2026-06-01T03:00"), at("2026-06-01T04:00"), [period("2026-06-01T03:00", time=1)]
    )
    assert priced.total_cost == D("1.00")


def test_dst_spring_forward_amsterdam() -> None:
    """On 2026-03-29 01:00Z is 03:00 CEST (not 02:00): a 03:00 start_time holds from then on."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.50), start_time="03:00"), element(component("ENERGY", 0.30))),
        at("2026-03-29T00:30"),
        at("2026-03-29T02:00"),
        [
            period("2026-03-29T00:30", energy=1.0),
            period("2026-03-29T00:59", energy=1.0),
            period("2026-03-29T01:00", energy=1.0),
        ],
        AMS,
    )
    assert _indices(priced, TariffDimensionType.ENERGY) == [1, 1, 0]  # 01:30 CET, 01:59 CET, 03:00 CEST
    assert priced.total_cost == D("1.10")


def test_dst_fall_back_amsterdam() -> None:
    """On 2026-10-25 the hour 02:00-03:00 happens twice (00:00-01:00Z and 01:00-02:00Z): both match."""
    priced = price_session(
        tariff(
            element(component("ENERGY", 0.50), start_time="02:00", end_time="03:00"),
            element(component("ENERGY", 0.30)),
        ),
        at("2026-10-24T23:30"),
        at("2026-10-25T02:30"),
        [
            period("2026-10-24T23:30", energy=1.0),
            period("2026-10-25T00:30", energy=1.0),
            period("2026-10-25T01:30", energy=1.0),
            period("2026-10-25T02:00", energy=1.0),
        ],
        AMS,
    )
    # 01:30 CEST, 02:30 CEST, 02:30 CET, 03:00 CET
    assert _indices(priced, TariffDimensionType.ENERGY) == [1, 0, 0, 1]


def test_day_of_week_is_the_local_day() -> None:
    """Saturday 2026-10-24 22:30Z is already Sunday 00:30 in Amsterdam."""
    sunday = tariff(
        element(component("ENERGY", 0.50), day_of_week=["SUNDAY"]), element(component("ENERGY", 0.30))
    )
    periods = [period("2026-10-24T22:30", energy=1.0)]
    local = price_session(sunday, at("2026-10-24T22:30"), at("2026-10-24T23:00"), periods, AMS)
    utc = price_session(sunday, at("2026-10-24T22:30"), at("2026-10-24T23:00"), periods, "UTC")
    assert (_indices(local, TariffDimensionType.ENERGY), _indices(utc, TariffDimensionType.ENERGY)) == (
        [0],
        [1],
    )


def test_start_date_inclusive_end_date_exclusive_in_local_time() -> None:
    """2026-12-31 23:30Z is 2027-01-01 00:30 in Amsterdam: from start_date 2027-01-01, not before end_date."""
    new_year = tariff(
        element(component("ENERGY", 0.50), start_date="2027-01-01"), element(component("ENERGY", 0.30))
    )
    old_year = tariff(
        element(component("ENERGY", 0.50), end_date="2027-01-01"), element(component("ENERGY", 0.30))
    )
    args = (at("2026-12-31T23:30"), at("2026-12-31T23:45"), [period("2026-12-31T23:30", energy=1.0)])
    assert _indices(price_session(new_year, *args, AMS), TariffDimensionType.ENERGY) == [0]
    assert _indices(price_session(old_year, *args, AMS), TariffDimensionType.ENERGY) == [1]
    assert _indices(price_session(new_year, *args, "UTC"), TariffDimensionType.ENERGY) == [1]


def test_kwh_switch_uses_the_energy_charged_before_the_period() -> None:
    """max_kwh 10 stops holding once 10 kWh are charged (exclusive); min_kwh 10 holds from there."""
    priced = price_session(
        tariff(
            element(component("ENERGY", 0.30), max_kwh=10.0), element(component("ENERGY", 0.20), min_kwh=10.0)
        ),
        at("2026-06-01T10:00"),
        at("2026-06-01T12:00"),
        [period("2026-06-01T10:00", energy=10.0), period("2026-06-01T11:00", energy=5.0)],
    )
    assert _indices(priced, TariffDimensionType.ENERGY) == [0, 1]
    assert priced.total_cost == D("4.00")  # 10 * 0.30 + 5 * 0.20


def test_power_switch_on_average_power() -> None:
    """min_power is inclusive, max_power exclusive, on the period's kWh per hour."""
    fast = tariff(
        element(component("TIME", 2.0), min_power=22.0),
        element(component("TIME", 1.0), max_power=11.0),
        element(component("TIME", 0.5)),
    )
    priced = price_session(
        fast,
        at("2026-06-01T10:00"),
        at("2026-06-01T14:00"),
        [
            period("2026-06-01T10:00", energy=22.0, time=1.0),
            period("2026-06-01T11:00", energy=21.99, time=1.0),
            period("2026-06-01T12:00", energy=11.0, time=1.0),
            period("2026-06-01T13:00", energy=10.99, time=1.0),
        ],
    )
    assert _indices(priced, TariffDimensionType.TIME) == [0, 2, 2, 1]


def test_power_is_zero_without_energy_or_duration() -> None:
    """A period with no ENERGY dimension, or of zero duration, has power 0: max_power holds, min_power not."""
    slow = tariff(element(component("TIME", 1.0), max_power=1.0), element(component("TIME", 2.0)))
    priced = price_session(
        slow,
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [
            period("2026-06-01T10:00", time=0.5, energy=50.0),
            period("2026-06-01T10:00", time=0.5),
            period("2026-06-01T10:30", time=0.5),
        ],
    )
    assert _indices(priced, TariffDimensionType.TIME) == [0, 0, 0]


def test_duration_switch_first_half_hour_free() -> None:
    """max_duration 1800 holds before 30 minutes (exclusive); min_duration 1800 from then (inclusive)."""
    priced = price_session(
        tariff(
            element(component("TIME", 0.0), max_duration=1800),
            element(component("TIME", 3.0), min_duration=1800),
        ),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", time=0.5), period("2026-06-01T10:30", time=0.5)],
    )
    assert _indices(priced, TariffDimensionType.TIME) == [0, 1]
    assert priced.total_cost == D("1.50")


def test_each_dimension_takes_the_first_element_that_prices_it() -> None:
    """An element without an ENERGY component does not stop a later one from pricing energy."""
    priced = price_session(
        tariff(
            element(component("TIME", 2.0)),
            element(component("ENERGY", 0.50), day_of_week=["SUNDAY"]),
            element(component("ENERGY", 0.25), component("TIME", 9.0)),
        ),
        at("2026-06-01T10:00"),  # a Monday
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", energy=10.0, time=1.0)],
    )
    assert _indices(priced, TariffDimensionType.ENERGY) == [2]
    assert _indices(priced, TariffDimensionType.TIME) == [0]
    assert priced.total_cost == D("4.50")  # 10 * 0.25 + 1 h * 2.0


def test_step_size_of_the_last_component_across_an_element_switch() -> None:
    """50 min per 15 min then 7 min per 1 min: 57 min, rounded with 60 s, so not rounded at all."""
    args = (
        at("2026-06-01T16:10"),
        at("2026-06-01T17:07"),
        [period("2026-06-01T16:10", time=50 / 60), period("2026-06-01T17:00", time=7 / 60)],
    )
    coarse_then_fine = tariff(
        element(component("TIME", 6.0, 900), end_time="17:00"), element(component("TIME", 6.0, 60))
    )
    fine_then_coarse = tariff(
        element(component("TIME", 6.0, 60), end_time="17:00"), element(component("TIME", 6.0, 900))
    )
    assert price_session(coarse_then_fine, *args).total_cost == D("5.70")  # 57 min * 6/h
    assert price_session(fine_then_coarse, *args).total_cost == D("6.00")  # 60 min * 6/h


def test_time_is_rounded_when_no_priced_parking_follows() -> None:
    """Parking at a free time (no PARKING_TIME element matches) does not stop TIME from being rounded."""
    day_parking = tariff(
        element(component("TIME", 6.0, 600)),
        element(component("PARKING_TIME", 6.0, 600), start_time="09:00", end_time="18:00"),
    )
    args = (
        at("2026-06-01T20:00"),
        at("2026-06-01T20:28"),
        [period("2026-06-01T20:00", time=0.35), period("2026-06-01T20:21", parking=7 / 60)],
    )
    priced = price_session(day_parking, *args)
    assert priced.total_time_cost == D("3.00")  # 21 min -> 30 min * 6/h
    assert priced.total_parking_cost == D("0.00")


def test_charging_again_after_parking_rounds_both() -> None:
    """Charge, park, charge: the last time-based period is TIME, so TIME is rounded and parking too."""
    priced = price_session(
        tariff(element(component("TIME", 6.0, 600), component("PARKING_TIME", 6.0, 600))),
        at("2026-06-01T10:00"),
        at("2026-06-01T10:33"),
        [
            period("2026-06-01T10:00", time=0.2),
            period("2026-06-01T10:12", parking=0.1),
            period("2026-06-01T10:18", time=0.25),
        ],
    )
    # TIME 27 min -> 30 min = 3.00; parking 6 min -> 10 min = 1.00
    assert (priced.total_time_cost, priced.total_parking_cost) == (D("3.00"), D("1.00"))


def test_free_periods_do_not_count_for_the_step() -> None:
    """Only the priced 2.5 kWh is rounded (to 3 kWh); the 3 kWh charged after 17:00 is free."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.30, 1000), end_time="17:00")),
        at("2026-06-01T16:00"),
        at("2026-06-01T18:00"),
        [period("2026-06-01T16:00", energy=2.5), period("2026-06-01T17:00", energy=3.0)],
    )
    assert _indices(priced, TariffDimensionType.ENERGY) == [0, None]
    assert priced.total_energy_cost == D("0.90")
    assert priced.total_energy == D("5.5")


def test_flat_is_charged_once() -> None:
    """A FLAT component is charged once per session, however many periods match it."""
    priced = price_session(
        tariff(element(component("FLAT", 1.0), component("ENERGY", 0.25))),
        at("2026-06-01T10:00"),
        at("2026-06-01T13:00"),
        [
            period("2026-06-01T10:00", energy=1.0),
            period("2026-06-01T11:00", energy=1.0),
            period("2026-06-01T12:00", energy=2.0),
        ],
    )
    assert priced.total_fixed_cost == D("1.00")
    assert priced.total_cost == D("2.00")


def test_flat_charged_at_the_first_period_where_one_matches() -> None:
    """No FLAT holds at 09:00; from 10:00 one does: it is charged there, once."""
    priced = price_session(
        tariff(element(component("FLAT", 1.0), start_time="10:00"), element(component("ENERGY", 0.25))),
        at("2026-06-01T09:00"),
        at("2026-06-01T12:00"),
        [
            period("2026-06-01T09:00", energy=1.0),
            period("2026-06-01T10:30", energy=1.0),
            period("2026-06-01T11:00", energy=1.0),
        ],
    )
    assert _indices(priced, TariffDimensionType.FLAT) == [0]
    assert next(d.type for d in priced.periods[1].dimensions) is TariffDimensionType.FLAT
    assert priced.total_cost == D("1.75")


def test_step_size_zero_means_no_rounding() -> None:
    """step_size 0: the volume is billed exactly."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.30, 0))),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", energy=1.234)],
    )
    assert priced.total_energy_cost == D("0.37")  # 0.3702
    assert priced.steps == ()


def test_current_dimensions_cost_nothing() -> None:
    """MAX_CURRENT is carried in periods but never priced."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.30))),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", energy=1.0, max_current=32.0)],
    )
    assert priced.total_cost == D("0.30")
    assert [d.type for d in priced.periods[0].dimensions] == [TariffDimensionType.ENERGY]


def test_float_prices_are_read_as_their_decimal_text() -> None:
    """0.1 * 3 is 0.3 exactly, not 0.30000000000000004; rounding is half up and only at the end."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.1), component("TIME", 0.125))),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", energy=3.0, time=0.04)],
    )
    assert priced.periods[0].dimensions[0].cost == D("0.3")
    # TIME: 0.04 * 0.125 = 0.005 -> 0.01 half up; total 0.305 -> 0.31
    assert (priced.total_time_cost, priced.total_cost) == (D("0.01"), D("0.31"))


def test_total_is_rounded_from_the_unrounded_sum() -> None:
    """0.004 of energy and 0.004 of time: each rounds to 0.00, the total 0.008 to 0.01."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.004), component("TIME", 0.004))),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", energy=1.0, time=1.0)],
    )
    assert (priced.total_energy_cost, priced.total_time_cost, priced.total_cost) == (
        D("0.00"),
        D("0.00"),
        D("0.01"),
    )


def test_totals_and_period_ends() -> None:
    """Volumes come from the dimensions, total_time is stop - start, a period ends where the next starts."""
    priced = price_session(
        tariff(element(component("ENERGY", 0.30))),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:30"),
        [period("2026-06-01T10:00", energy=4.0, time=0.5), period("2026-06-01T10:30", parking=1.0)],
    )
    assert (priced.total_energy, priced.total_time, priced.total_parking_time) == (
        D("4.0"),
        D("1.5"),
        D("1.0"),
    )
    assert [p.end_date_time for p in priced.periods] == [at("2026-06-01T10:30"), at("2026-06-01T11:30")]
    assert priced.currency == "EUR"


def test_to_json_is_plain_json() -> None:
    """to_json gives numbers and strings only, under the CDR's total_* names."""
    priced = price_session(
        tariff(element(component("FLAT", 1.0), component("ENERGY", 0.30, 100))),
        at("2026-06-01T10:00"),
        at("2026-06-01T11:00"),
        [period("2026-06-01T10:00", energy=4.05)],
    )
    body = priced.to_json()
    assert {
        "total_cost",
        "total_energy",
        "total_time",
        "total_parking_time",
        "total_fixed_cost",
        "total_energy_cost",
        "total_time_cost",
        "total_parking_cost",
        "currency",
        "periods",
    } <= set(body)
    assert body["total_cost"] == 2.23  # 1.00 + 4.1 kWh * 0.30 = 2.23
    assert body["periods"] == [
        {
            "start_date_time": "2026-06-01T10:00:00Z",
            "end_date_time": "2026-06-01T11:00:00Z",
            "dimensions": [
                {
                    "type": "FLAT",
                    "volume": 1.0,
                    "tariff_element": 0,
                    "price": 1.0,
                    "step_size": 0,
                    "cost": 1.0,
                },
                {
                    "type": "ENERGY",
                    "volume": 4.05,
                    "tariff_element": 0,
                    "price": 0.3,
                    "step_size": 100,
                    "cost": 1.215,
                },
            ],
        }
    ]


# --- invalid input -----------------------------------------------------------------------------------

_TARIFF = tariff(element(component("ENERGY", 0.30)))


@pytest.mark.parametrize(
    ("start", "stop", "periods", "zone", "message"),
    [
        (
            "2026-06-01T10:00",
            "2026-06-01T11:00",
            [period("2026-06-01T10:30", energy=1), period("2026-06-01T10:10", energy=1)],
            "UTC",
            "before the one ahead of it",
        ),
        (
            "2026-06-01T10:00",
            "2026-06-01T11:00",
            [period("2026-06-01T09:59", energy=1)],
            "UTC",
            "before the session start",
        ),
        (
            "2026-06-01T10:00",
            "2026-06-01T11:00",
            [period("2026-06-01T11:01", energy=1)],
            "UTC",
            "after the session stop",
        ),
        ("2026-06-01T10:00", "2026-06-01T11:00", [period("2026-06-01T10:00", energy=-1)], "UTC", "negative"),
        (
            "2026-06-01T10:00",
            "2026-06-01T11:00",
            [period("2026-06-01T10:00", time=float("nan"))],
            "UTC",
            "not a finite number",
        ),
        (
            "2026-06-01T10:00",
            "2026-06-01T11:00",
            [period("2026-06-01T10:00", energy=1)],
            "Mars/Olympus",
            "time zone",
        ),
        ("2026-06-01T11:00", "2026-06-01T10:00", [period("2026-06-01T10:00", energy=1)], "UTC", "stop"),
        ("2026-06-01T10:00", "2026-06-01T11:00", [], "UTC", "no charging periods"),
    ],
)
def test_invalid_input_raises_pricing_error(
    start: str, stop: str, periods: list[ChargingPeriod], zone: str, message: str
) -> None:
    """Input the calculator cannot price is refused with a message that says what is wrong."""
    with pytest.raises(PricingError, match=message):
        price_session(_TARIFF, at(start), at(stop), periods, zone)


def test_naive_datetimes_are_refused() -> None:
    """A naive start or stop is ambiguous for local-time restrictions: refused."""
    with pytest.raises(PricingError, match="time zone"):
        price_session(
            _TARIFF,
            at("2026-06-01T10:00").replace(tzinfo=None),
            at("2026-06-01T11:00"),
            [period("2026-06-01T10:00", energy=1)],
        )


def test_bad_restriction_dates_name_the_element() -> None:
    """A start_date that is not YYYY-MM-DD is refused, naming the element."""
    bad = tariff(element(component("ENERGY", 0.30), start_date="2026-13-01"))
    with pytest.raises(PricingError, match=r"elements\[0\].*start_date"):
        price_session(
            bad, at("2026-06-01T10:00"), at("2026-06-01T11:00"), [period("2026-06-01T10:00", energy=1)]
        )


def test_pricing_error_is_a_value_error() -> None:
    """Callers that catch ValueError catch PricingError too."""
    assert issubclass(PricingError, ValueError)


def test_step_rule_bills_the_rounding_at_the_last_price_even_if_earlier_time_was_cheaper() -> None:
    """2.2.1's rule is followed as written: a minute more at the cheap rate can lower the total.

    6 min at 1/h then 22 min at 7/h, step 600 s: 28 -> 30 min, 2 min extra at 7/h; total 2.90.
    7 min at 1/h then 22 min at 7/h: 29 -> 30 min, 1 min extra at 7/h; total 2.80.
    """
    evening = tariff(
        element(component("TIME", 1.0, 600), end_time="17:00"), element(component("TIME", 7.0, 600))
    )

    def total(first_minutes: int) -> Decimal:
        periods = [
            period("2026-06-01T16:50", time=first_minutes / 60),
            period("2026-06-01T17:00", time=22 / 60),
        ]
        return price_session(evening, at("2026-06-01T16:50"), at("2026-06-01T17:22"), periods).total_cost

    assert (total(6), total(7)) == (D("2.90"), D("2.80"))


def test_a_tariff_changed_after_pricing_is_read_again() -> None:
    """Rules are reused only for an equal tariff, not for the same id and last_updated alone."""
    t = tariff(element(component("ENERGY", 0.30)))
    args = (at("2026-06-01T10:00"), at("2026-06-01T11:00"), [period("2026-06-01T10:00", energy=10.0)])
    assert price_session(t, *args).total_cost == D("3.00")
    t.elements[0].price_components[0].price = 0.40
    assert price_session(t, *args).total_cost == D("4.00")
