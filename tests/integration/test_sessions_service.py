"""The sessions service (CPO side) on the real broker and database, with fakes of the services it asks
at a start (locations, tariffs, tokens: real RPC servers on the broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from services.sessions.app import build
from shared.contracts.base import Outcome, error, ok
from shared.contracts.objects import SenderGet, SenderList
from shared.contracts.partners import Party
from shared.contracts.sessions import SessionChanged, SessionEnded, SessionMeter, SessionStart, SessionStop
from shared.contracts.tokens import TokenHolder, TokenLookup
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcServer
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.tokens import Token
from tests.support.module_service import ServiceClient, data, delete_namespace, module_service
from tests.support.objects import location

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
EMB = Party("DE", "EMB")
OTHER = Party("DE", "OTH")


def _tariff() -> Tariff:
    return msgspec.convert(
        {
            "id": "T1",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.4, "step_size": 1}]}],
            "last_updated": T0,
        },
        Tariff,
    )


def _site() -> Any:
    site = location("L1", ["E1"], T0)
    evse = (site.evses or [])[0]
    connector = msgspec.structs.replace(evse.connectors[0], tariff_id="T1")
    return msgspec.structs.replace(site, evses=[msgspec.structs.replace(evse, connectors=[connector])])


@dataclass
class Fakes:
    """The locations, tariffs and tokens services as a start asks them."""

    owners: dict[str, Party] = field(default_factory=lambda: {"CARD1": EMB, "CARD2": OTHER})
    tokens_asked: list[str] = field(default_factory=list)
    # The tokens service answers "unavailable" (3000) this many times first.
    unavailable: int = 0

    async def locations(self, body: bytes) -> Outcome:
        request = msgspec.json.decode(body, type=SenderGet)
        if request.path == ["L1"]:
            return Outcome(reply=ok(_site()))
        return Outcome(reply=error(2003, "Unknown Location", http_status=404))

    async def tariffs(self, body: bytes) -> Outcome:
        return Outcome(reply=ok(_tariff()))

    async def tokens(self, body: bytes) -> Outcome:
        request = msgspec.json.decode(body, type=TokenLookup)
        self.tokens_asked.append(request.token_uid)
        if len(self.tokens_asked) <= self.unavailable:
            return Outcome(
                reply=error(3000, "The tokens service cannot be reached right now", http_status=503)
            )
        owner = self.owners.get(request.token_uid)
        if owner is None:
            return Outcome(reply=error(2000, "no partner gave us this token", http_status=404))
        token = msgspec.convert(
            {
                "uid": request.token_uid,
                "type": "RFID",
                "auth_id": f"{owner.party_id}-{request.token_uid}",
                "issuer": owner.party_id,
                "valid": True,
                "whitelist": "ALWAYS",
                "last_updated": T0,
            },
            Token,
        )
        return Outcome(reply=ok(TokenHolder(owner=owner, partner_id=f"p-{owner.party_id}", token=token)))


async def _serve(broker: Broker, name: str, handle: Any) -> RpcServer:
    server = RpcServer(broker, name, handle)
    await server.start()
    return server


@pytest.fixture
async def service(broker: Broker, amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[Any]:
    fakes = Fakes()
    servers = [
        await _serve(broker, "locations", fakes.locations),
        await _serve(broker, "tariffs", fakes.tariffs),
    ]
    async with module_service("sessions", build, amqp_url, mongo_url, namespace):
        client = await ServiceClient.start(broker, "sessions", [SessionChanged, SessionEnded])
        yield client, fakes
    for server in servers:
        await server.stop()
    await delete_namespace(broker, "sessions")


def _start(session_id: str, uid: str = "CARD1", evse_uid: str = "E1") -> SessionStart:
    return SessionStart(
        event_id=f"start-{session_id}",
        session_id=session_id,
        token_uid=uid,
        location_id="L1",
        evse_uid=evse_uid,
        connector_id="1",
        at=T0,
    )


async def test_a_start_is_held_while_the_tokens_service_is_away_then_stored(
    service: Any, broker: Broker
) -> None:
    """Answering "unavailable" five times is an outage, not the message's fault: the start waits
    (a poison message would be dead-lettered after 3 tries) and goes in once the service answers."""
    client, fakes = service
    fakes.unavailable = 5
    tokens = await _serve(broker, "tokens", fakes.tokens)
    try:
        await client.publish(_start("S1"))
        [changed] = await client.take(1)
        assert isinstance(changed, SessionChanged)
        assert (changed.owner, changed.partner_id, changed.version) == (EMB, "p-EMB", 1)
        assert changed.session.auth_id == "EMB-CARD1" and changed.session.total_cost == 0.0
        assert len(fakes.tokens_asked) == 6
    finally:
        await tokens.stop()


@pytest.fixture
async def running(service: Any, broker: Broker) -> AsyncIterator[Any]:
    client, fakes = service
    tokens = await _serve(broker, "tokens", fakes.tokens)
    yield client
    await tokens.stop()


async def test_meter_values_and_the_stop_are_announced_and_a_redelivered_stop_changes_nothing(
    running: ServiceClient,
) -> None:
    client = running
    await client.publish(_start("S2"))
    await client.take(1)
    meter = SessionMeter(event_id="m1", session_id="S2", at=T0 + timedelta(minutes=30), kwh=5.0)
    await client.publish(meter)
    [changed] = await client.take(1)
    assert changed.session.kwh == 5.0 and changed.session.total_cost == 2.0
    stop = SessionStop(event_id="stop", session_id="S2", at=T0 + timedelta(hours=1), kwh=8.0)
    await client.publish(stop)
    final, ended = await client.take(2)
    assert isinstance(final, SessionChanged) and final.session.status == "COMPLETED"
    assert isinstance(ended, SessionEnded) and ended.charging.session.total_cost == 3.2
    assert ended.version == final.version == 3
    await client.publish(stop)  # the charger backend sends it again: nothing changes, announced again
    again, ended_again = await client.take(2)
    assert (again.version, ended_again.version) == (3, 3)


async def test_an_unknown_evse_is_dead_lettered_and_stores_nothing(running: ServiceClient) -> None:
    client = running
    await client.publish(_start("S3", evse_uid="NOPE"))
    [reason] = await client.dead_letter_reasons(1)
    assert "EVSE NOPE" in reason
    listed = await client.call(SenderList(module="sessions", limit=10, parties=[EMB]))
    assert [s["id"] for s in data(listed)] == []


async def test_a_partner_lists_only_the_sessions_of_its_own_tokens(running: ServiceClient) -> None:
    client = running
    await client.publish(_start("S4", "CARD1"))
    await client.publish(_start("S5", "CARD2"))
    await client.publish(_start("S6", "UNKNOWN"))
    await client.take(3)
    for parties, expected in (([EMB], ["S4"]), ([OTHER], ["S5"]), ([EMB, OTHER], ["S4", "S5"]), ([], [])):
        reply = await client.call(SenderList(module="sessions", limit=10, parties=parties))
        assert [s["id"] for s in data(reply)] == expected
        assert reply.total_count == len(expected)
