"""Tokens in both roles between two deployments: B (eMSP) issues and blocks cards, A (CPO) authorizes
them at its chargers, asking B in real time where the whitelist says so.

B's real-time decisions are delegated to the company's authorizer (a fake here, on B's broker):
it answers NO_CREDIT for the cards of these tests, so an answer that came from B in real time is
told apart from A's local answer (ALLOWED). "Slow" is the authorizer answering after A's real-time
deadline; "down" is B's gateway killed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from shared.contracts.locations import LocationUpsert
from shared.contracts.tokens import (
    ChargerAuthorization,
    ChargerAuthorize,
    TokenBlock,
    TokenUpsert,
)
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.tokens import Allowed, LocationReferences, Token
from tests.conftest import Connection
from tests.support import roaming
from tests.support.authorizer import Authorizer
from tests.support.http import partners, request
from tests.support.objects import event_id, location, now, publish
from tests.support.waiting import eventually

# A waits 1.5 s for B in real time (tests/conftest.py); B waits 2.5 s for its authorizer.
SLOW = 2.0  # past A's real-time deadline, within B's delegate deadline


@pytest.fixture(scope="module")
async def charger(connection: Connection, amqp_url: str) -> AsyncIterator[RpcClient]:
    """A's charger backend: asks A's tokens service whether a card may charge."""
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        client = RpcClient(broker, timeout=10.0)
        await client.start()
        yield client


@pytest.fixture(scope="module")
async def a_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        yield broker


def card(uid: str, whitelist: str = "ALWAYS", valid: bool = True, seconds_ago: int = 0) -> Token:
    return msgspec.convert(
        {
            "uid": uid,
            "type": "RFID",
            "auth_id": f"DE-EMB-{uid}"[:36],
            "issuer": "EMB Mobility",
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": now() - timedelta(seconds=seconds_ago),
        },
        Token,
    )


def new_uid() -> str:
    return uuid.uuid4().hex[:12].upper()


HERE = LocationReferences(location_id="LOC-1", evse_uids=["EVSE-1"])


async def ask(charger: RpcClient, uid: str) -> ChargerAuthorization:
    reply = await charger.call("tokens", ChargerAuthorize(token_uid=uid, location=HERE))
    assert reply.status_code == 1000, reply
    return msgspec.json.decode(reply.data, type=ChargerAuthorization)


async def issue(b_broker: Broker, token: Token) -> None:
    await publish(b_broker, TokenUpsert(event_id=event_id(), token=token))


async def known_at_a(charger: RpcClient, uid: str) -> None:
    async def known() -> bool:
        return (await ask(charger, uid)).reason != "unknown token"

    await eventually(known, 15, f"card {uid} at A")


async def test_a_card_issued_at_b_is_allowed_at_a_and_refused_once_blocked(
    connection: Connection, b_broker: Broker, charger: RpcClient
) -> None:
    """Issued at B → A allows it from its whitelist copy; blocked at B → A refuses it."""
    uid = new_uid()
    await issue(b_broker, card(uid, "ALWAYS", seconds_ago=5))

    async def allowed() -> bool:
        return (await ask(charger, uid)).allowed is Allowed.ALLOWED

    took = await eventually(allowed, 15, "the issued card allowed at A", pause=0.02)
    decision = await ask(charger, uid)
    # A knows whose card it is and which connection serves it: sessions and CDRs go there.
    assert decision.owner is not None and decision.owner.party_id == connection.pair.emsp.party_id
    # (The e2e package connects the same two deployments more than once: B's card may come through
    # any of B's connections at A.)
    emsp = connection.pair.emsp
    b_at_a = {
        p["id"]
        for p in (await partners(connection.pair.cpo)).values()
        if (p["country_code"], p["party_id"]) == (emsp.country_code, emsp.party_id)
    }
    assert decision.partner_id in b_at_a, (decision, b_at_a)

    await publish(b_broker, TokenBlock(event_id=event_id(), token_uid=uid, at=now()))

    async def refused() -> bool:
        return (await ask(charger, uid)).allowed is Allowed.BLOCKED

    blocked_after = await eventually(refused, 15, "the blocked card refused at A", pause=0.02)
    print(f"issued→allowed {took:.3f}s, blocked→refused {blocked_after:.3f}s")


# (whitelist, expected decision with B up, with B slow past A's deadline)
MATRIX = [
    ("ALWAYS", Allowed.ALLOWED, Allowed.ALLOWED),
    ("ALLOWED", Allowed.ALLOWED, Allowed.ALLOWED),
    ("ALLOWED_OFFLINE", Allowed.NO_CREDIT, Allowed.ALLOWED),
    ("NEVER", Allowed.NO_CREDIT, Allowed.NOT_ALLOWED),
]
DOWN = {
    "ALWAYS": Allowed.ALLOWED,
    "ALLOWED": Allowed.ALLOWED,
    "ALLOWED_OFFLINE": Allowed.ALLOWED,
    "NEVER": Allowed.NOT_ALLOWED,
}


@pytest.mark.parametrize(("whitelist", "when_up", "when_slow"), MATRIX)
async def test_each_whitelist_with_b_up_and_slow(
    connection: Connection,
    b_broker: Broker,
    charger: RpcClient,
    authorizer: Authorizer,
    whitelist: str,
    when_up: Allowed,
    when_slow: Allowed,
) -> None:
    """ALWAYS/ALLOWED: A's local answer; ALLOWED_OFFLINE: B's when it answers in time, else local;
    NEVER: B's, and refused when B is late."""
    fast, slow = new_uid(), new_uid()
    authorizer.delays[slow] = SLOW
    for uid in (fast, slow):
        await issue(b_broker, card(uid, whitelist, seconds_ago=5))
    for uid in (fast, slow):
        await known_at_a(charger, uid)

    up = await ask(charger, fast)
    assert up.allowed is when_up, up
    late = await ask(charger, slow)
    assert late.allowed is when_slow, late
    # Only the real-time whitelists ever reach B.
    assert (fast in authorizer.asked) == (whitelist in ("ALLOWED_OFFLINE", "NEVER"))


async def test_each_whitelist_with_b_down(
    connection: Connection, b_broker: Broker, charger: RpcClient, authorizer: Authorizer
) -> None:
    """B's gateway is gone: A answers ALWAYS/ALLOWED/ALLOWED_OFFLINE from its copy, refuses NEVER."""
    uids = {whitelist: new_uid() for whitelist in DOWN}
    for whitelist, uid in uids.items():
        await issue(b_broker, card(uid, whitelist, seconds_ago=5))
    for uid in uids.values():
        await known_at_a(charger, uid)
    stack = connection.pair.emsp_stack
    stack.kill("gateway")
    try:
        for whitelist, uid in uids.items():
            decision = await ask(charger, uid)
            assert decision.allowed is DOWN[whitelist], (whitelist, decision)
    finally:
        stack.start_one("gateway")
        await asyncio.to_thread(stack.wait_ready, 60, ("gateway",))


async def _authorize_at_b(connection: Connection, uid: str, body: Any = None, query: str = "") -> Any:
    url = f"{connection.pair.emsp.public_url}/ocpi/emsp/2.1.1/tokens/{uid}/authorize{query}"
    return await request("POST", url, token=connection.cpo_to_emsp_token, json=body)


async def test_real_time_authorize_at_b_with_and_without_location(
    connection: Connection, b_broker: Broker, authorizer: Authorizer
) -> None:
    """A's POST /authorize at B: B's authorizer decides; the location comes back with ALLOWED only
    (mod_tokens.md 3.1: the location where the driver may charge)."""
    allowed, refused = new_uid(), new_uid()
    authorizer.allows.add(allowed)
    for uid in (allowed, refused):
        await issue(b_broker, card(uid, "NEVER", seconds_ago=5))

    async def issued() -> bool:
        return (await _authorize_at_b(connection, allowed)).status != 404 and (
            await _authorize_at_b(connection, refused)
        ).status != 404

    await eventually(issued, 15, "the cards known at B")
    with_location = await _authorize_at_b(connection, allowed, to_builtins(HERE), "?type=RFID")
    assert with_location.status_code == 1000, with_location
    assert with_location.data == {"allowed": "ALLOWED", "location": to_builtins(HERE)}
    without = await _authorize_at_b(connection, allowed)
    assert without.status_code == 1000, without
    assert without.data == {"allowed": "ALLOWED"}
    no_credit = await _authorize_at_b(connection, refused, to_builtins(HERE))
    assert no_credit.data == {"allowed": "NO_CREDIT"}, no_credit


async def test_real_time_authorize_of_an_unknown_card_is_a_404(connection: Connection) -> None:
    """2.1.1 has no 'unknown token' status: the token's resource does not exist, HTTP 404."""
    reply = await _authorize_at_b(connection, new_uid(), to_builtins(HERE))
    assert reply.status == 404, reply
    assert reply.status_code == 2000, reply
    other_type = await _authorize_at_b(connection, new_uid(), None, "?type=OTHER")
    assert other_type.status == 404, other_type


async def test_a_delegated_decision_that_times_out_gets_the_configured_answer(
    connection: Connection, b_broker: Broker, authorizer: Authorizer
) -> None:
    """B's authorizer answers after B's own deadline: B answers TOKENS_AUTHORIZE_FALLBACK."""
    uid = new_uid()
    await issue(b_broker, card(uid, "NEVER", seconds_ago=5))

    async def issued() -> bool:
        return (await _authorize_at_b(connection, uid)).status != 404

    await eventually(issued, 15, "the card known at B")
    # Past B's deadline of 2.5 s (tests/conftest.py), within its gateway's 3 s.
    authorizer.delays[uid] = 2.8
    reply = await _authorize_at_b(connection, uid, to_builtins(HERE))
    assert reply.status_code == 1000, reply
    assert reply.data["allowed"] == "NOT_ALLOWED"


async def test_b_cannot_push_a_card_under_another_party_to_a(
    connection: Connection, charger: RpcClient
) -> None:
    """A's receiver takes B's cards only under B's own party; nothing is stored otherwise."""
    uid = new_uid()
    url = f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/tokens/NL/XYZ/{uid}"
    reply = await request("PUT", url, token=connection.emsp_to_cpo_token, json=to_builtins(card(uid)))
    assert reply.status in (403, 404), reply
    assert (await ask(charger, uid)).reason == "unknown token"


async def test_an_unknown_card_is_refused_at_a(charger: RpcClient) -> None:
    decision = await ask(charger, new_uid())
    assert decision.allowed is Allowed.NOT_ALLOWED
    assert decision.owner is None


async def test_a_blocked_card_overtakes_a_backlog_of_two_thousand_location_pushes(
    connection: Connection, b_broker: Broker, a_broker: Broker, charger: RpcClient
) -> None:
    """A's dispatcher has 2,000 location pushes for B pending; a card blocked at B is refused at A
    while that backlog is still being worked off. Last in the module: the backlog outlives it."""
    uid = new_uid()
    await issue(b_broker, card(uid, "ALWAYS", seconds_ago=5))
    await known_at_a(charger, uid)

    location_ids = [f"BKL-{uuid.uuid4().hex[:6]}-{i}" for i in range(2000)]
    stamp = now() - timedelta(seconds=2)
    await asyncio.gather(
        *(
            publish(a_broker, LocationUpsert(event_id=event_id(), location=location(lid, ["1"], stamp)))
            for lid in location_ids
        )
    )
    # The backlog is there: B does not hold the last location yet.
    assert await roaming.stored_at_b(connection, location_ids[-1]) == 0

    await publish(b_broker, TokenBlock(event_id=event_id(), token_uid=uid, at=now()))

    async def refused() -> bool:
        return (await ask(charger, uid)).allowed is Allowed.BLOCKED

    took = await eventually(refused, 30, "the blocked card refused at A", pause=0.02)
    held = sum([await roaming.stored_at_b(connection, lid) for lid in location_ids[-100:]])
    print(f"blocked→refused {took:.3f}s behind the backlog; {held}/100 of the last locations at B by then")
    # The card did not wait for the backlog: the last of the 2,000 were not all at B yet.
    assert held < 100
    # The backlog drains at the test database's pace (minutes on SecantusDB for 2,000 whole-location
    # PUTs): this test is the module's last, and the pair stops after the package.
