"""Received CDRs for the eMSP-side tests: one session of 10 kWh in one hour at one connector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.tariffs import Tariff
from tests.support.objects import location

START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
STOP = START + timedelta(hours=1)
KWH = 10.0


def energy_tariff(
    tariff_id: str = "T1", price: float = 0.25, at: datetime = START - timedelta(days=30)
) -> Tariff:
    """`price` per kWh (step 1 Wh): 10 kWh cost 10 * price."""
    return msgspec.convert(
        {"id": tariff_id, "currency": "EUR", "last_updated": at,
         "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}]},
        Tariff,
    )  # fmt: skip


def cdr(
    cdr_id: str = "CDR-1",
    total_cost: float = 2.5,
    tariffs: list[Tariff] | None = None,
    connector_tariff: str | None = "T1",
    time_zone: str | None = "Europe/Amsterdam",
    **fields: Any,
) -> CDR:
    """A CDR of 10 kWh from START to STOP at location LOC1, EVSE E1, connector 1."""
    where = to_builtins(location("LOC1", ["E1"], at=START))
    where["time_zone"] = time_zone
    where["evses"][0]["connectors"][0]["tariff_id"] = connector_tariff
    document = {
        "id": cdr_id,
        "start_date_time": START,
        "stop_date_time": STOP,
        "auth_id": "DE-EMB-C00001",
        "auth_method": "WHITELIST",
        "location": where,
        "currency": "EUR",
        "tariffs": None if tariffs is None else [to_builtins(t) for t in tariffs],
        "charging_periods": [
            {
                "start_date_time": START,
                "dimensions": [{"type": "ENERGY", "volume": KWH}, {"type": "TIME", "volume": 1.0}],
            }
        ],
        "total_cost": total_cost,
        "total_energy": KWH,
        "total_time": 1.0,
        "last_updated": STOP,
        **fields,
    }
    return msgspec.convert(document, CDR)
