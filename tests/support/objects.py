"""OCPI objects and charger events for end-to-end tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.contracts.base import Message
from shared.messaging.broker import Broker
from shared.ocpi.v2_1_1.locations import EVSE, Location
from shared.ocpi.v2_1_1.tariffs import Tariff


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def evse(uid: str, status: str = "AVAILABLE", at: datetime | None = None) -> EVSE:
    stamp = at or now()
    return msgspec.convert(
        {
            "uid": uid,
            "evse_id": f"NL*CPA*E{uid}"[:48],
            "status": status,
            "connectors": [
                {
                    "id": "1",
                    "standard": "IEC_62196_T2",
                    "format": "SOCKET",
                    "power_type": "AC_3_PHASE",
                    "voltage": 230,
                    "amperage": 32,
                    "last_updated": stamp,
                }
            ],
            "last_updated": stamp,
        },
        EVSE,
    )


def location(location_id: str, evse_uids: list[str], at: datetime | None = None) -> Location:
    stamp = at or now()
    return msgspec.convert(
        {
            "id": location_id,
            "type": "ON_STREET",
            "name": f"Location {location_id}",
            "address": "Stationsplein 1",
            "city": "Utrecht",
            "postal_code": "3511CE",
            "country": "NLD",
            "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
            "evses": [evse(uid, at=stamp) for uid in evse_uids],
            "last_updated": stamp,
        },
        Location,
    )


def tariff(tariff_id: str, price: float = 0.25, at: datetime | None = None) -> Tariff:
    """A tariff of `price` EUR per kWh, billed per Wh."""
    return msgspec.convert(
        {
            "id": tariff_id,
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}],
            "last_updated": at or now(),
        },
        Tariff,
    )


async def publish(broker: Broker, message: Message) -> None:
    """What the company's systems do: publish on the internal exchange, event_id as message id."""
    event_id = getattr(message, "event_id", None) or uuid.uuid4().hex
    await broker.publish_internal(message, message_id=event_id)


def event_id() -> str:
    return uuid.uuid4().hex


def comparable(location: Any) -> Any:
    """A location as JSON builtins, EVSEs in a stable order (copies may order them differently)."""
    if location is None:
        return None
    copy = dict(location)
    copy["evses"] = sorted(copy.get("evses") or [], key=lambda e: e["uid"])
    return copy
