"""Pricing throughput: one typical CDR priced again and again on one core, for a bounded time.

The CDR: four charging periods (charging, a cheaper evening rate from 18:00, then parking) of a session
in Europe/Amsterdam, under a tariff of two elements with time-of-day restrictions (ENERGY and TIME by
day, ENERGY, TIME and PARKING_TIME after 18:00) and a start fee. Each round is one whole
price_session call: every period's local time worked out, elements chosen, the steps rounded. Two
figures: the same tariff every time (its rules read once and reused, the usual case), and a
different tariff every time (its rules read on every call, the worst case).

    python -m bench.pricing [--seconds 5]

Prints CDRs per second and microseconds per CDR, then one JSON line (bench/common.py emit).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import msgspec

from bench.common import emit
from shared.ocpi.v2_1_1.sessions import ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.pricing import price_session

TARIFF = msgspec.convert(
    {
        "id": "BENCH-1",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "FLAT", "price": 0.50, "step_size": 1},
                    {"type": "ENERGY", "price": 0.35, "step_size": 100},
                    {"type": "TIME", "price": 1.20, "step_size": 60},
                ],
                "restrictions": {"start_time": "07:00", "end_time": "18:00"},
            },
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.25, "step_size": 100},
                    {"type": "TIME", "price": 0.80, "step_size": 60},
                    {"type": "PARKING_TIME", "price": 2.00, "step_size": 300},
                ],
                "restrictions": {"start_time": "18:00", "end_time": "07:00"},
            },
        ],
        "last_updated": "2026-12-01T00:00:00Z",
    },
    Tariff,
)
PERIODS = msgspec.convert(
    [
        {
            "start_date_time": "2026-12-02T15:10:00Z",
            "dimensions": [{"type": "ENERGY", "volume": 10.4}, {"type": "TIME", "volume": 0.8333}],
        },
        {
            "start_date_time": "2026-12-02T16:00:00Z",
            "dimensions": [
                {"type": "ENERGY", "volume": 12.0},
                {"type": "TIME", "volume": 1.0},
                {"type": "MAX_CURRENT", "volume": 32.0},
            ],
        },
        {
            "start_date_time": "2026-12-02T17:00:00Z",
            "dimensions": [{"type": "ENERGY", "volume": 5.55}, {"type": "TIME", "volume": 0.5}],
        },
        {"start_date_time": "2026-12-02T17:30:00Z", "dimensions": [{"type": "PARKING_TIME", "volume": 0.7}]},
    ],
    list[ChargingPeriod],
)
START = datetime(2026, 12, 2, 15, 10, tzinfo=UTC)
STOP = datetime(2026, 12, 2, 18, 12, tzinfo=UTC)
ZONE = "Europe/Amsterdam"


def _rate(seconds: float, tariffs: list[Tariff]) -> dict[str, float]:
    """Price the CDR in batches of 1000, cycling through `tariffs`, until `seconds` have passed.

    Rates per wall-clock second and per CPU second of this process: on a shared machine the second
    leaves out the time other processes had the core.
    """
    count = 0
    began, cpu_began = time.perf_counter(), time.process_time()
    deadline = began + seconds
    while (now := time.perf_counter()) < deadline:
        for i in range(1000):
            price_session(tariffs[i % len(tariffs)], START, STOP, PERIODS, ZONE)
        count += 1000
    elapsed, cpu = now - began, time.process_time() - cpu_began
    return {
        "cdrs": count,
        "seconds": round(elapsed, 3),
        "cdrs_per_s": round(count / elapsed),
        "us_per_cdr": round(elapsed / count * 1e6, 2),
        "cdrs_per_cpu_s": round(count / cpu),
        "cpu_us_per_cdr": round(cpu / count * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    seconds = parser.parse_args().seconds
    priced = price_session(TARIFF, START, STOP, PERIODS, ZONE)
    print(f"one CDR: total_cost {priced.total_cost} {priced.currency}", flush=True)
    # The usual case: many CDRs of one tariff, whose rules are read once and then reused.
    same = _rate(seconds, [TARIFF])
    # The worst case: a different tariff every time (1000 of them, more than are kept), read each call.
    many = [msgspec.structs.replace(TARIFF, id=f"BENCH-{i}") for i in range(1000)]
    fresh = _rate(seconds, many)
    for name, result in (("same tariff", same), ("a new tariff every CDR", fresh)):
        print(
            f"pricing, {name}: {result['cdrs_per_s']:,} CDRs/s, {result['us_per_cdr']} µs per CDR "
            f"({result['cdrs_per_cpu_s']:,} per CPU second, {result['cpu_us_per_cdr']} µs CPU)",
            flush=True,
        )
    common = {"periods": len(PERIODS), "elements": len(TARIFF.elements), "zone": ZONE}
    emit("pricing_same_tariff", **common, **same)
    emit("pricing_new_tariff_every_cdr", **common, **fresh)


if __name__ == "__main__":
    main()
