"""The billing chain's test setup, shared by the end-to-end and fault tests: a site at A whose
connector has a tariff (known at B), a card of B known at A, charger sessions, and B's copies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from shared.contracts.locations import LocationUpsert
from shared.contracts.sessions import SessionMeter, SessionStart, SessionStop
from shared.contracts.tariffs import TariffUpsert
from shared.contracts.tokens import ChargerAuthorize, TokenUpsert
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.tokens import Token
from tests.conftest import Connection
from tests.support.http import request
from tests.support.objects import event_id, location, now, publish
from tests.support.waiting import eventually


@dataclass(frozen=True)
class Site:
    location_id: str
    uid: str  # B's card
    tariff: Tariff


def billing_tariff(tariff_id: str, at: datetime) -> Tariff:
    """2 elements with time restrictions (day and night energy prices), a start fee and parking."""
    return msgspec.convert(
        {
            "id": tariff_id,
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [{"type": "FLAT", "price": 0.5, "step_size": 1}],
                },
                {
                    "price_components": [
                        {"type": "ENERGY", "price": 0.31, "step_size": 1},
                        {"type": "PARKING_TIME", "price": 2.0, "step_size": 300},
                    ],
                    "restrictions": {"start_time": "07:00", "end_time": "22:00"},
                },
                {
                    "price_components": [{"type": "ENERGY", "price": 0.23, "step_size": 1}],
                    "restrictions": {"start_time": "22:00", "end_time": "07:00"},
                },
            ],
            "last_updated": at,
        },
        Tariff,
    )


def card(uid: str, at: datetime) -> Token:
    return msgspec.convert(
        {
            "uid": uid,
            "type": "RFID",
            "auth_id": f"DE-EMB-{uid}",
            "issuer": "EMB Mobility",
            "valid": True,
            "whitelist": "ALWAYS",
            "last_updated": at,
        },
        Token,
    )


def site_location(location_id: str, tariff_id: str, at: datetime) -> Location:
    site = location(location_id, ["E1"], at)
    evse = (site.evses or [])[0]
    connector = msgspec.structs.replace(evse.connectors[0], tariff_id=tariff_id)
    evse = msgspec.structs.replace(evse, connectors=[connector])
    return msgspec.structs.replace(site, evses=[evse], time_zone="Europe/Amsterdam")


async def at_b(connection: Connection, module: str, object_id: str) -> Any:
    pair = connection.pair
    party = f"{pair.cpo.country_code}/{pair.cpo.party_id}"
    url = f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/{module}/{party}/{object_id}"
    reply = await request("GET", url, token=connection.cpo_to_emsp_token)
    return reply.data if reply.status_code == 1000 else None


async def a_list(connection: Connection, module: str, token: str | None = None) -> list[Any]:
    """A's list of `module` as B (or the partner of `token`) sees it: its own tokens' only."""
    url = f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/{module}?date_from=2000-01-01T00:00:00Z"
    reply = await request("GET", url, token=token or connection.emsp_to_cpo_token)
    assert reply.status_code == 1000, reply
    data: list[Any] = reply.data
    return data


def start_message(session_id: str, location_id: str, uid: str, at: datetime) -> SessionStart:
    return SessionStart(
        event_id=event_id(),
        session_id=session_id,
        token_uid=uid,
        location_id=location_id,
        evse_uid="E1",
        connector_id="1",
        at=at,
    )


async def prepare_site(
    connection: Connection, a_broker: Broker, b_broker: Broker, charger: RpcClient
) -> Site:
    """A location whose connector has a tariff, the tariff at B, and a card of B known at A."""
    suffix = uuid.uuid4().hex[:8].upper()
    location_id, tariff_id, uid = f"BIL-{suffix}", f"TAR-{suffix}", f"CARD{suffix}"
    at = now() - timedelta(minutes=5)
    tariff = billing_tariff(tariff_id, at)
    await publish(a_broker, TariffUpsert(event_id=event_id(), tariff=tariff))
    await publish(
        a_broker, LocationUpsert(event_id=event_id(), location=site_location(location_id, tariff_id, at))
    )
    await publish(b_broker, TokenUpsert(event_id=event_id(), token=card(uid, at)))

    async def ready() -> bool:
        reply = await charger.call("tokens", ChargerAuthorize(token_uid=uid))
        known = msgspec.json.decode(reply.data).get("owner") is not None
        return known and await at_b(connection, "tariffs", tariff_id) is not None

    await eventually(ready, 30, "B's card at A and A's tariff at B")
    return Site(location_id, uid, tariff)


async def charge(
    a_broker: Broker, session_id: str, location_id: str, uid: str, began: datetime, hours: int, kwh: float
) -> None:
    """A session of `hours` with a meter value every hour, `kwh` each, then the stop."""
    await publish(a_broker, start_message(session_id, location_id, uid, began))
    for hour in range(1, hours):
        at = began + timedelta(hours=hour)
        await publish(
            a_broker, SessionMeter(event_id=event_id(), session_id=session_id, at=at, kwh=hour * kwh)
        )
    stop = SessionStop(
        event_id=event_id(), session_id=session_id, at=began + timedelta(hours=hours), kwh=hours * kwh
    )
    await publish(a_broker, stop)


async def cdr_at_b(connection: Connection, session_id: str) -> CDR:
    async def billed() -> bool:
        return await at_b(connection, "cdrs", session_id) is not None

    await eventually(billed, 20, f"the CDR of {session_id} at B")
    return msgspec.convert(await at_b(connection, "cdrs", session_id), CDR)
