"""The tokens service's CPO side on real RabbitMQ and MongoDB: the Receiver interface, imports, and
our chargers' authorizations with a fake dispatcher (answering, too slow, absent) and two replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from shared.contracts import objects
from shared.contracts.base import Message, Outcome, RpcReply, error, ok
from shared.contracts.partners import Party
from shared.contracts.tokens import (
    AuthorizationDecided,
    ChargerAuthorize,
    Decider,
    PartnerTokenChanged,
    PartnerTokenImport,
)
from shared.messaging.broker import Broker
from shared.ocpi.v2_1_1.codec import encode
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tokens import (
    Allowed,
    AuthorizationInfo,
    LocationReferences,
    Token,
    TokenType,
    WhitelistType,
)
from shared.storage import connect_mongo, service_database
from tests.support.module_service import WAIT, CommandCounter, ServiceClient, data, delete_namespace
from tests.support.tokens_cpo import FakeDispatcher, cpo_replica
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EMSP = Party("NL", "EMS")
CONNECTION = "emsp-conn"  # the partner id the eMSP's requests come through
HERE = LocationReferences(location_id="LOC1", evse_uids=["E1", "E2"])
NARROWED = LocationReferences(location_id="LOC1", evse_uids=["E2"])
EVENTS: list[type[Message]] = [PartnerTokenChanged, AuthorizationDecided]
DEADLINE = 0.5  # TOKENS_REALTIME_DEADLINE_SECONDS in these tests
SILENT = 2.0  # how long the fake dispatcher stays silent: well past the deadline


def token(uid: str, whitelist: WhitelistType, valid: bool = True, at: datetime = T0) -> Token:
    return Token(
        uid=uid, type=TokenType.RFID, auth_id=f"NL-EMS-{uid}", issuer="EMS", valid=valid,
        whitelist=whitelist, last_updated=at,
    )  # fmt: skip


def put(body: Any, uid: str, partner_id: str = CONNECTION) -> objects.ReceiverPut:
    raw = msgspec.Raw(encode(body))
    return objects.ReceiverPut(module="tokens", party=EMSP, path=[uid], body=raw, partner_id=partner_id)


def patch(body: Any, uid: str) -> objects.ReceiverPatch:
    raw = msgspec.Raw(encode(body))
    return objects.ReceiverPatch(module="tokens", party=EMSP, path=[uid], body=raw, partner_id=CONNECTION)


def authorize(uid: str, location: LocationReferences | None = HERE) -> ChargerAuthorize:
    return ChargerAuthorize(token_uid=uid, location=location)


def answer(allowed: Allowed, location: LocationReferences | None = None) -> RpcReply:
    return ok(AuthorizationInfo(allowed=allowed, location=location))


@contextlib.asynccontextmanager
async def service(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str, **overrides: Any
) -> AsyncIterator[ServiceClient]:
    overrides.setdefault("tokens_realtime_deadline", DEADLINE)
    async with cpo_replica(amqp_url, mongo_url, namespace, **overrides):
        yield await ServiceClient.start(broker, "tokens", EVENTS)
    await delete_namespace(broker, "tokens")


@pytest.fixture
async def client(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> AsyncIterator[ServiceClient]:
    async with service(broker, amqp_url, mongo_url, namespace) as running:
        yield running


@contextlib.asynccontextmanager
async def dispatcher(broker: Broker, answers: dict[str, RpcReply | float]) -> AsyncIterator[FakeDispatcher]:
    fake = FakeDispatcher(broker, answers)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def stored(client: ServiceClient, *tokens: Token) -> None:
    """PUT each token through the service and take its event."""
    for one in tokens:
        reply = await client.call(put(one, one.uid))
        assert reply.status_code == 1000, reply.status_message
    await client.take(len(tokens))


async def decided(client: ServiceClient, request: ChargerAuthorize) -> tuple[dict[str, Any], Any]:
    """The charger's answer and the AuthorizationDecided event that goes with it."""
    reply = await client.call(request)
    assert (reply.http_status, reply.status_code) == (200, 1000), reply.status_message
    (event,) = await client.take(1)
    assert isinstance(event, AuthorizationDecided) and event.token_uid == request.token_uid
    return data(reply), event


def answered(outcome: Outcome) -> Any:
    """The data of a handler's reply (a replica called directly)."""
    assert outcome.reply is not None
    return data(outcome.reply)


def encoded(location: LocationReferences) -> Any:
    return msgspec.json.decode(encode(location))


def verdict(answer_: dict[str, Any]) -> tuple[str, str, Any]:
    return answer_["allowed"], answer_["decider"], answer_.get("location")


# ---- the Receiver interface ------------------------------------------------------------------------


async def test_receiver_put_patch_get_and_an_older_change(client: ServiceClient) -> None:
    """PUT 201, GET, PATCH valid=false, an older PUT changes nothing; events carry the connection."""
    card = token("CARD1", WhitelistType.ALWAYS)
    created = await client.call(put(card, "CARD1"))
    assert (created.http_status, created.status_code) == (201, 1000)
    (event,) = await client.take(1)
    assert event == PartnerTokenChanged(
        country_code="NL", party_id="EMS", token=card, version=1, partner_id=CONNECTION
    )
    got = await client.call(objects.ReceiverGet(module="tokens", party=EMSP, path=["CARD1"]))
    assert data(got)["whitelist"] == "ALWAYS"
    later = T0 + timedelta(minutes=5)
    blocked = await client.call(patch({"valid": False, "last_updated": later}, "CARD1"))
    assert (blocked.http_status, blocked.status_code) == (200, 1000)
    (event,) = await client.take(1)
    assert (event.version, event.token.valid, event.partner_id) == (2, False, CONNECTION)
    older = await client.call(
        put(token("CARD1", WhitelistType.ALWAYS, at=T0 + timedelta(minutes=1)), "CARD1")
    )
    assert (older.http_status, older.status_code) == (200, 1000)
    await client.nothing_more()
    got = await client.call(objects.ReceiverGet(module="tokens", party=EMSP, path=["CARD1"]))
    assert data(got)["valid"] is False
    mismatch = await client.call(put(token("OTHER", WhitelistType.ALWAYS), "CARD1"))
    assert (mismatch.http_status, mismatch.status_code) == (400, 2001)
    deleted = await client.call(objects.ReceiverDelete(module="tokens", party=EMSP, path=["CARD1"]))
    assert deleted.http_status == 405  # tokens cannot be deleted (mod_tokens.md 2.1)


async def test_an_import_stores_the_connection_it_came_through(client: ServiceClient) -> None:
    """A re-sync import is stored like a PUT with its connection: events and authorizations name it."""
    card = token("HUBCARD", WhitelistType.ALWAYS)
    await client.publish(PartnerTokenImport(country_code="NL", party_id="EMS", token=card, partner_id="hub"))
    (event,) = await client.take(1)
    assert isinstance(event, PartnerTokenChanged) and event.partner_id == "hub"
    reply, decision = await decided(client, authorize("HUBCARD"))
    assert reply["partner_id"] == "hub" and reply["owner"] == {"country_code": "NL", "party_id": "EMS"}
    assert (decision.partner_id, decision.owner) == ("hub", EMSP)


# ---- charger authorizations ------------------------------------------------------------------------


async def test_whitelisted_tokens_are_decided_locally(client: ServiceClient) -> None:
    """ALWAYS and ALLOWED (real-time for ALLOWED off): the token decides, nobody is asked; a blocked
    card is BLOCKED; every decision is announced with owner, connection, decider and reason."""
    await stored(
        client,
        token("ALWAYS", WhitelistType.ALWAYS),
        token("ALLOWED", WhitelistType.ALLOWED),
        token("BLOCKED", WhitelistType.NEVER, valid=False),
    )
    async with dispatcher(client.broker, {}) as fake:
        for uid in ("ALWAYS", "ALLOWED"):
            reply, event = await decided(client, authorize(uid))
            assert verdict(reply) == ("ALLOWED", "LOCAL", {"location_id": "LOC1", "evse_uids": ["E1", "E2"]})
            assert reply["reason"] == f"whitelist {uid}"
            assert (event.allowed, event.decider, event.owner, event.partner_id) == (
                Allowed.ALLOWED, Decider.LOCAL, EMSP, CONNECTION,
            )  # fmt: skip
        reply, event = await decided(client, authorize("BLOCKED"))
        assert verdict(reply) == ("BLOCKED", "LOCAL", None) and event.reason == "token not valid"
        assert fake.requests == []


async def test_real_time_answers_are_final(client: ServiceClient) -> None:
    """ALLOWED_OFFLINE and NEVER are asked of the token's connection; the answer (narrowed location,
    a refusal, or not known there) is what the charger gets."""
    await stored(
        client,
        token("OFFLINE-OK", WhitelistType.ALLOWED_OFFLINE),
        token("NEVER-OK", WhitelistType.NEVER),
        token("NEVER-CREDIT", WhitelistType.NEVER),
        token("NEVER-404", WhitelistType.NEVER),
    )
    answers: dict[str, RpcReply | float] = {
        "OFFLINE-OK": answer(Allowed.ALLOWED, NARROWED),
        "NEVER-OK": answer(Allowed.ALLOWED, NARROWED),
        "NEVER-CREDIT": answer(Allowed.NO_CREDIT),
        "NEVER-404": error(OcpiStatus.CLIENT_ERROR, "Unknown Token", http_status=404),
    }
    async with dispatcher(client.broker, answers) as fake:
        for uid in ("OFFLINE-OK", "NEVER-OK"):
            reply, event = await decided(client, authorize(uid))
            assert verdict(reply) == ("ALLOWED", "REALTIME", {"location_id": "LOC1", "evse_uids": ["E2"]})
            assert event.location == NARROWED
        reply, _ = await decided(client, authorize("NEVER-CREDIT"))
        assert verdict(reply) == ("NO_CREDIT", "REALTIME", None)
        reply, _ = await decided(client, authorize("NEVER-404"))
        assert verdict(reply) == ("NOT_ALLOWED", "REALTIME", None)
        assert reply["reason"] == "the eMSP does not know the token"
    assert sorted((r.partner_id, r.token_uid) for r in fake.requests) == sorted(
        (CONNECTION, uid) for uid in answers
    )
    assert all(r.location == HERE for r in fake.requests)


async def test_without_an_answer_offline_tokens_fall_back_and_never_tokens_are_refused(
    client: ServiceClient,
) -> None:
    """Too slow (past the deadline), unreachable (3001), or no dispatcher at all: ALLOWED_OFFLINE is
    allowed by the token, NEVER refused; the charger is answered within the deadline and a bit."""
    await stored(client, token("OFFLINE", WhitelistType.ALLOWED_OFFLINE), token("NEVER", WhitelistType.NEVER))
    for uid in ("OFFLINE", "NEVER"):  # no dispatcher running
        reply, _ = await decided(client, authorize(uid))
        assert reply["decider"] == "FALLBACK" and "did not answer within 0.5s" in reply["reason"]
    unreachable = error(OcpiStatus.UNABLE_TO_USE_CLIENT_API, "partner unreachable")
    for behaviour in (SILENT, unreachable):
        async with dispatcher(client.broker, {"OFFLINE": behaviour, "NEVER": behaviour}):
            reply, _ = await decided(client, authorize("OFFLINE"))
            assert verdict(reply) == (
                "ALLOWED",
                "FALLBACK",
                {"location_id": "LOC1", "evse_uids": ["E1", "E2"]},
            )
            reply, event = await decided(client, authorize("NEVER"))
            assert verdict(reply) == ("NOT_ALLOWED", "FALLBACK", None)
            assert event.reason.startswith("whitelist NEVER, no real-time answer: ")


async def test_allowed_tokens_ask_in_real_time_when_configured(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """TOKENS_REALTIME_FOR_ALLOWED: an answer in time wins; a late one leaves the local answer."""
    async with service(broker, amqp_url, mongo_url, namespace, tokens_realtime_for_allowed=True) as client:
        await stored(client, token("ANSWERED", WhitelistType.ALLOWED), token("LATE", WhitelistType.ALLOWED))
        async with dispatcher(broker, {"ANSWERED": answer(Allowed.NO_CREDIT), "LATE": SILENT}):
            reply, _ = await decided(client, authorize("ANSWERED"))
            assert verdict(reply) == ("NO_CREDIT", "REALTIME", None)
            reply, _ = await decided(client, authorize("LATE"))
            assert verdict(reply)[:2] == ("ALLOWED", "FALLBACK")


async def test_unknown_tokens_are_refused_and_found_once_pushed(client: ServiceClient) -> None:
    """An unknown uid is NOT_ALLOWED at once; pushed a moment later, it is found (no stale miss)."""
    async with dispatcher(client.broker, {}) as fake:
        reply, event = await decided(client, authorize("NEWCARD"))
        assert verdict(reply) == ("NOT_ALLOWED", "LOCAL", None) and reply["reason"] == "unknown token"
        assert (event.owner, event.partner_id) == (None, None)
        await stored(client, token("NEWCARD", WhitelistType.ALWAYS))
        reply, _ = await decided(client, authorize("NEWCARD"))
        assert verdict(reply)[:2] == ("ALLOWED", "LOCAL")
        assert fake.requests == []


async def test_unknown_tokens_are_asked_of_the_hub_when_configured(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """TOKENS_UNKNOWN_VIA=hub: the hub's answer is final; no answer is a refusal."""
    async with service(broker, amqp_url, mongo_url, namespace, tokens_unknown_via="hub") as client:
        answers: dict[str, RpcReply | float] = {"ROAMING": answer(Allowed.ALLOWED, NARROWED), "QUIET": SILENT}
        async with dispatcher(broker, answers) as fake:
            reply, event = await decided(client, authorize("ROAMING"))
            assert verdict(reply) == ("ALLOWED", "REALTIME", {"location_id": "LOC1", "evse_uids": ["E2"]})
            assert event.partner_id == "hub" and event.owner is None
            reply, _ = await decided(client, authorize("QUIET"))
            assert verdict(reply) == ("NOT_ALLOWED", "FALLBACK", None)
        assert [(r.partner_id, r.token_uid) for r in fake.requests] == [("hub", "ROAMING"), ("hub", "QUIET")]


class NoUid(msgspec.Struct, tag_field="type", tag="tokens.charger.authorize"):
    """A ChargerAuthorize without its token_uid, as a broken charger backend might send it."""

    token_type: str = "RFID"


async def test_bad_charger_requests_get_a_clear_error_and_change_nothing(
    client: ServiceClient, mongo_url: str, namespace: str
) -> None:
    """A uid too long or empty, or missing: 2001 naming token_uid; no decision announced, nothing stored."""
    for uid in ("X" * 37, ""):
        reply = await client.call(authorize(uid))
        assert (reply.http_status, reply.status_code) == (400, 2001)
        assert "token_uid" in (reply.status_message or "")
    async with asyncio.timeout(WAIT):
        missing = await client.rpc.call("tokens", NoUid())
    assert (missing.http_status, missing.status_code) == (400, 2001)
    assert "token_uid" in (missing.status_message or "")
    await client.nothing_more()
    mongo = connect_mongo(mongo_url)
    try:
        assert await service_database(mongo, namespace, "tokens")["partner_tokens"].count_documents({}) == 0
    finally:
        await mongo.close()


# ---- the cache across replicas ---------------------------------------------------------------------


async def test_a_revocation_reaches_every_replica_within_a_second(
    client: ServiceClient, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """Replica B answers a cached token without the database; once replica A stores valid=false, A
    refuses at once and B within a second."""
    await stored(client, token("CARD", WhitelistType.ALWAYS))
    counter = CommandCounter(f"{namespace}_tokens")
    async with cpo_replica(amqp_url, mongo_url, namespace, serve=False, listeners=[counter]) as replica_b:
        b = replica_b.other_requests[ChargerAuthorize]
        first = await b(authorize("CARD"))
        assert answered(first)["allowed"] == "ALLOWED"
        before = list(counter.commands)
        again = await b(authorize("CARD"))
        assert answered(again)["allowed"] == "ALLOWED"
        assert counter.commands == before, "a cached token costs no database command"
        reply, _ = await decided(client, authorize("CARD"))  # A caches it too
        assert reply["allowed"] == "ALLOWED"

        blocked = await client.call(patch({"valid": False, "last_updated": T0 + timedelta(hours=1)}, "CARD"))
        assert blocked.status_code == 1000
        (changed,) = await client.take(1)
        assert isinstance(changed, PartnerTokenChanged) and changed.token.valid is False
        reply, _ = await decided(client, authorize("CARD"))
        assert verdict(reply) == ("BLOCKED", "LOCAL", None)  # A, at once

        async def b_refuses() -> bool:
            outcome = await b(authorize("CARD"))
            return bool(answered(outcome)["allowed"] == "BLOCKED")

        took = await eventually(b_refuses, 1.0, "replica B refuses the revoked card", pause=0.01)
        assert took < 1.0
