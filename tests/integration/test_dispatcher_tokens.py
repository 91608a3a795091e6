"""Tokens through the dispatcher (real RabbitMQ and MongoDB, partners as real HTTP servers): pushes to
CPO partners (PATCH or PUT), a blocked card ahead of any backlog, the real-time authorization RPC,
and pulls of an eMSP partner's tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from services.dispatcher.push_plans import PUSH_PLANS
from services.dispatcher.pushes import PushQueue
from shared.contracts.base import RpcReply
from shared.contracts.partners import PullRequested
from shared.contracts.tokens import PartnerAuthorize, PartnerTokenImport, TokenChanged
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.tokens import LocationReferences, Token, TokenType, WhitelistType
from shared.service import ServiceContext
from shared.settings import Role
from shared.storage import connect_mongo, service_database
from tests.integration.test_dispatcher import (
    Collector,
    LocationModel,
    dispatcher,
    make_settings,
    make_tuning,
    register,
    running_dispatcher,
    started,
)
from tests.integration.test_dispatcher_partner_fake import TOKEN, FakePartner, Received
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
__all__ = ["dispatcher"]  # the fixture, used by name

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EVERY_FIELD = ["uid", "type", "auth_id", "issuer", "valid", "whitelist", "last_updated"]
BACKLOG = 2_000


def token(
    uid: str, valid: bool = True, whitelist: WhitelistType = WhitelistType.ALLOWED, at: int = 0
) -> Token:
    return Token(
        uid=uid,
        type=TokenType.RFID,
        auth_id=f"NL-TNM-{uid}",
        issuer="TheNewMotion",
        valid=valid,
        whitelist=whitelist,
        last_updated=T0 + timedelta(seconds=at),
    )


def cpo(name: str = "cpo") -> FakePartner:
    """A CPO partner with a tokens receiver (it also answers its versions URL, which we probe)."""
    partner = FakePartner(name)
    partner.role = "CPO"
    partner.modules = ("tokens",)
    return partner


def token_calls(partner: FakePartner) -> list[Received]:
    return [r for r in partner.received if "/cpo/2.1.1/tokens/" in r.path]


def uid_of(call: Received) -> str:
    return call.path.rsplit("/", 1)[1]


async def test_a_token_change_is_patched_when_only_its_status_changed_else_put(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """New token: PUT; valid/last_updated only: PATCH of those; PATCH of a token the CPO lacks: PUT."""
    partner = cpo()
    async with started(partner):
        await register(broker, dispatcher, partner, "cpo-1", role=Role.CPO, party=("BE", "CPO"))
        await broker.publish_event(TokenChanged(token=token("T1"), version=1, changed=EVERY_FIELD))
        await eventually(lambda: "T1" in partner.tokens, 5, "the PUT of T1")
        blocked = token("T1", valid=False, at=5)
        await broker.publish_event(TokenChanged(token=blocked, version=2, changed=["valid", "last_updated"]))
        await eventually(lambda: partner.tokens["T1"]["valid"] is False, 5, "the PATCH of T1")
        assert partner.tokens["T1"] == to_builtins(blocked)
        # T2 was never pushed: the CPO refuses the PATCH (404) and gets the whole token instead.
        never = token("T2", whitelist=WhitelistType.NEVER, at=7)
        await broker.publish_event(TokenChanged(token=never, version=4, changed=["whitelist"]))
        await eventually(lambda: "T2" in partner.tokens, 5, "the fallback PUT of T2")
        assert partner.tokens["T2"] == to_builtins(never)
    calls = [(r.method, r.path.split("/tokens/")[1], r.answered) for r in token_calls(partner)]
    assert calls == [
        ("PUT", "NL/ABC/T1", 200),
        ("PATCH", "NL/ABC/T1", 200),
        ("PATCH", "NL/ABC/T2", 404),
        ("PUT", "NL/ABC/T2", 200),
    ]
    assert token_calls(partner)[1].body == {"valid": False, "last_updated": "2024-05-01T12:00:05Z"}
    assert token_calls(partner)[0].headers["Authorization"] == f"Token {TOKEN}"


async def test_a_blocked_card_overtakes_a_backlog_of_token_and_location_pushes(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """With 2,000 token pushes pending for the CPO and 2,000 location events queued ahead of it for
    an eMSP, the PATCH blocking a card reaches the CPO before either backlog is done.

    The backlogs are laid down while no dispatcher runs, so that when one starts they are all
    there, ahead of the block: the order at the partners then shows what the dispatcher chose."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    tokens_cpo, emsp = cpo("cpo"), FakePartner("emsp")
    async with started(tokens_cpo, emsp):
        async with running_dispatcher(settings, make_tuning(settings)) as first:
            await register(broker, first, tokens_cpo, "cpo-1", role=Role.CPO, party=("BE", "CPO"))
            await register(broker, first, emsp, "emsp-1")
            # The CPO has the card already (so the block can be a PATCH).
            await broker.publish_event(TokenChanged(token=token("LOST"), version=1, changed=EVERY_FIELD))
            await eventually(lambda: "LOST" in tokens_cpo.tokens, 5, "the first PUT of the card")
        for i in range(BACKLOG):
            await broker.publish_event(LocationModel(f"L{i:04d}", ["E1"]).created())
        backlog = [
            TokenChanged(token=token(f"B{i:04d}"), version=1, changed=EVERY_FIELD) for i in range(BACKLOG)
        ]
        snapshots = [PUSH_PLANS[TokenChanged].snapshot(event, None) for event in backlog]
        mongo = connect_mongo(mongo_url)
        try:
            pushes = PushQueue(service_database(mongo, namespace, "dispatcher"))
            await pushes.enqueue_many([("cpo-1", False)], snapshots, datetime.now(UTC))
        finally:
            await mongo.close()
        blocked = token("LOST", valid=False, at=60)
        await broker.publish_event(TokenChanged(token=blocked, version=2, changed=["valid", "last_updated"]))

        def block_arrived() -> bool:
            return any(uid_of(r) == "LOST" and r.method == "PATCH" for r in token_calls(tokens_cpo))

        async with running_dispatcher(settings, make_tuning(settings)):
            await eventually(block_arrived, 120, "the PATCH blocking the card")
    block = next(r for r in token_calls(tokens_cpo) if r.method == "PATCH")
    assert block.body == {"valid": False, "last_updated": "2024-05-01T12:01:00Z"}
    token_backlog = [r for r in token_calls(tokens_cpo) if uid_of(r).startswith("B") and r.at < block.at]
    location_backlog = [r for r in emsp.pushes() if r.at < block.at]
    print(f"before the block: {len(token_backlog)} token and {len(location_backlog)} location pushes")
    assert len(token_backlog) < BACKLOG
    assert len(location_backlog) < BACKLOG


# ---- real-time authorization ------------------------------------------------------------------------


def emsp_with_tokens(name: str = "emsp") -> FakePartner:
    partner = FakePartner(name)
    partner.modules = ("tokens",)
    return partner


async def ask(broker: Broker, request: PartnerAuthorize, wait: float = 3.0) -> RpcReply:
    """What the tokens service gets back from the dispatcher's RPC."""
    client = RpcClient(broker, wait)
    await client.start()
    return await client.call("dispatcher", request, wait_for=wait)


async def test_authorize_relays_the_emsps_answer_or_says_why_there_is_none(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """ALLOWED (1000 with the AuthorizationInfo), 404 for an unknown token, 3001 for a partner that
    is not an eMSP we can ask, 504 for one slower than the caller's deadline, 502 for one that is down."""
    partner = emsp_with_tokens()
    partner.authorizations["T1"] = {"allowed": "ALLOWED", "location": {"location_id": "L1"}}
    where = LocationReferences(location_id="L1", evse_uids=["E1"])
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        allowed = await ask(broker, PartnerAuthorize(partner_id="emsp-1", token_uid="T1", location=where))
        assert (allowed.status_code, allowed.http_status) == (1000, 200)
        assert msgspec.json.decode(bytes(allowed.data)) == {
            "allowed": "ALLOWED",
            "location": {"location_id": "L1"},
        }
        (call,) = [r for r in partner.received if r.path.endswith("/authorize")]
        assert (call.method, call.path, call.query) == (
            "POST",
            "/ocpi/emsp/2.1.1/tokens/T1/authorize",
            {"type": "RFID"},
        )
        assert call.body == {"location_id": "L1", "evse_uids": ["E1"]}
        assert call.headers["Authorization"] == f"Token {TOKEN}"

        unknown = await ask(
            broker, PartnerAuthorize(partner_id="emsp-1", token_uid="T9", token_type=TokenType.OTHER)
        )
        assert (unknown.status_code, unknown.http_status) == (2000, 404)

        nobody = await ask(broker, PartnerAuthorize(partner_id="nobody", token_uid="T1"))
        assert (nobody.status_code, nobody.status_message) == (3001, "partner nobody is not registered")

        partner.pause = 4.0  # slower than the caller waits: we answer before its deadline
        slow = await ask(broker, PartnerAuthorize(partner_id="emsp-1", token_uid="T1"), wait=1.5)
        assert (slow.status_code, slow.http_status) == (3001, 504)
        partner.pause = 0.0
    # The eMSP's server is gone.
    down = await ask(broker, PartnerAuthorize(partner_id="emsp-1", token_uid="T1"))
    assert (down.status_code, down.http_status) == (3001, 502)


# ---- pulls ----------------------------------------------------------------------------------------------


async def test_an_emsp_partners_tokens_are_pulled_with_its_partner_id(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """On registration and on PullRequested(module="tokens"): one PartnerTokenImport per token, with
    the partner pulled from, under a message id of partner, uid and last_updated."""
    imports = await Collector.bind(
        broker, broker.exchanges.internal, PartnerTokenImport, "tokens.partner_token.import"
    )
    partner = emsp_with_tokens()
    tokens: list[Any] = [to_builtins(token("T1")), to_builtins(token("T2", at=3))]
    partner.emsp_tokens = tokens
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1", party=("DE", "EMP"))
        await eventually(lambda: len(imports.items) == 2, 10, "the first pull")
        assert [(t.partner_id, t.country_code, t.party_id, t.token.uid) for t in imports.items] == [
            ("emsp-1", "DE", "EMP", "T1"),
            ("emsp-1", "DE", "EMP", "T2"),
        ]
        assert imports.message_ids == ["emsp-1:T1:2024-05-01T12:00:00Z", "emsp-1:T2:2024-05-01T12:00:03Z"]
        await broker.publish_event(PullRequested(partner_id="emsp-1", module="tokens", full=True))
        await eventually(lambda: len(imports.items) == 4, 10, "the requested pull")


async def test_an_emsp_that_comes_back_has_its_tokens_pulled_since_the_last_pull(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """An eMSP whose pushes went OUT_OF_SYNC answers the probe again: a delta pull of its tokens."""
    imports = await Collector.bind(
        broker, broker.exchanges.internal, PartnerTokenImport, "tokens.partner_token.import"
    )
    partner = FakePartner("emsp")
    partner.modules = ("locations", "tokens")
    partner.emsp_tokens = [to_builtins(token("T1"))]
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        await eventually(lambda: len(imports.items) == 1, 10, "the first pull")
        partner.down = True
        await broker.publish_event(LocationModel("L1", ["E1"]).created())

        async def out_of_sync() -> bool:
            doc = await dispatcher.db["partners"].find_one({"_id": "emsp-1"})
            return doc is not None and doc["sync_state"] == "OUT_OF_SYNC"

        await eventually(out_of_sync, 20, "emsp-1 out of sync")
        partner.down = False
        await eventually(lambda: len(imports.items) == 2, 20, "the pull after it came back")
    pulls = [r for r in partner.received if r.path.endswith("/emsp/2.1.1/tokens")]
    assert "date_from" not in pulls[0].query
    assert "date_from" in pulls[1].query  # since the start of the last successful pull
