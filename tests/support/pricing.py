"""Small builders for pricing tests: tariffs from dicts, charging periods from keyword volumes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.ocpi.v2_1_1.sessions import CdrDimension, CdrDimensionType, ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import Tariff

_VOLUME_TYPES = {
    "energy": CdrDimensionType.ENERGY,
    "time": CdrDimensionType.TIME,
    "parking": CdrDimensionType.PARKING_TIME,
    "max_current": CdrDimensionType.MAX_CURRENT,
}


def at(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DDThh:mm[:ss]' (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def component(kind: str, price: float, step_size: int = 0) -> dict[str, Any]:
    return {"type": kind, "price": price, "step_size": step_size}


def element(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        body["restrictions"] = restrictions
    return body


def tariff(*elements: dict[str, Any], currency: str = "EUR") -> Tariff:
    document = {
        "id": "T1",
        "currency": currency,
        "elements": list(elements),
        "last_updated": "2026-01-01T00:00:00Z",
    }
    return msgspec.convert(document, Tariff)


def period(start: str | datetime, **volumes: float) -> ChargingPeriod:
    """A charging period; volumes by keyword: energy (kWh), time and parking (hours), max_current (A)."""
    when = at(start) if isinstance(start, str) else start
    dimensions = [CdrDimension(type=_VOLUME_TYPES[name], volume=v) for name, v in volumes.items()]
    return ChargingPeriod(start_date_time=when, dimensions=dimensions)
