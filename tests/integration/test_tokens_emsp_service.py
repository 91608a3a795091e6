"""Our tokens (eMSP side of the tokens service) in-process on real RabbitMQ and MongoDB: inputs and
their events, the list, and real-time authorization with a fake delegate (a real RpcServer).

The service is composed here from build_emsp alone (no CPO side): what app.py wires, minus the
partners' tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from services.tokens.emsp import build_emsp
from services.tokens.emsp_rules import TOKEN_FIELDS
from shared.contracts.base import Message, Outcome, RpcReply, error, ok
from shared.contracts.tokens import (
    AuthorizationDecided,
    Decider,
    DelegatedAuthorize,
    RealtimeAuthorize,
    TokenBlock,
    TokenChanged,
    TokenExpire,
    TokenUpsert,
)
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcServer
from shared.modules.memory import MemoryReceiverStore
from shared.modules.outbox import Announcer
from shared.modules.service import InputHandler, module_service
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Allowed, AuthorizationInfo, LocationReferences
from shared.service import Component, ServiceContext
from tests.support.module_service import ServiceClient, data, delete_namespace
from tests.support.module_service import module_service as running_service
from tests.support.object_requests import sender_list
from tests.unit.test_tokens_emsp_rules import T0, token

pytestmark = pytest.mark.integration

EVENTS = [TokenChanged, AuthorizationDecided]
DELEGATE = "authorizer"
DEADLINE = 0.5
HERE = LocationReferences(location_id="LOC1", evse_uids=["E1", "E2"])


def emsp_only(**settings: Any) -> Any:
    """A build of the tokens service with the eMSP side alone, under these settings."""

    async def build(ctx: ServiceContext) -> list[Component]:
        ctx.settings = msgspec.structs.replace(ctx.settings, **settings)
        emsp = await build_emsp(ctx)
        unused: MemoryReceiverStore[Any] = MemoryReceiverStore()
        announcer: Announcer[Any] = Announcer(unused, ctx.broker.publish_event, lambda r: r, lambda e: None)

        async def no_imports(msg: Message) -> Outcome:
            raise AssertionError(f"no imports in these tests: {msg}")

        inputs = InputHandler(TOKENS, emsp.store, emsp.rules, no_imports, ctx.broker.publish_event, announcer)
        return await module_service(ctx, TOKENS, announcer, emsp.object_requests, inputs, emsp.other_requests)

    return build


@pytest.fixture
async def client(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> AsyncIterator[ServiceClient]:
    build = emsp_only()
    async with running_service("tokens", build, amqp_url, mongo_url, namespace):
        yield await ServiceClient.start(broker, "tokens", EVENTS)
    await delete_namespace(broker, "tokens")


async def test_inputs_announce_each_version_with_its_changed_fields(client: ServiceClient) -> None:
    """Upsert, block and a redelivered block: versions 1 and 2, changed fields, the list shows valid=false."""
    await client.publish(TokenUpsert(event_id="u1", token=token("T1")))
    (created,) = await client.take(1)
    assert (created.version, created.changed) == (1, list(TOKEN_FIELDS))
    block = TokenBlock(event_id="b1", token_uid="T1", at=T0 + timedelta(minutes=1))
    await client.publish(block, message_id="b1")
    (blocked,) = await client.take(1)
    assert (blocked.version, blocked.changed, blocked.token.valid) == (2, ["valid", "last_updated"], False)
    await client.publish(block, message_id="b1")
    (again,) = await client.take(1)
    assert again == blocked
    await client.publish(TokenExpire(event_id="x1", token_uid="UNKNOWN", at=T0))
    await client.nothing_more()
    reply = await client.call(sender_list("tokens", limit=10))
    assert reply.status_code == 1000 and reply.total_count == 1
    (listed,) = data(reply)
    assert listed["valid"] is False and "invalid_as" not in listed and "issued" not in listed


async def authorize(client: ServiceClient, uid: str, location: LocationReferences | None = HERE) -> RpcReply:
    return await client.call(RealtimeAuthorize(token_uid=uid, location=location, partner_id="cpo-1"))


def info(reply: RpcReply) -> AuthorizationInfo:
    assert reply.status_code == 1000, reply
    return msgspec.json.decode(reply.data, type=AuthorizationInfo)


async def test_authorization_without_delegate(client: ServiceClient) -> None:
    """Valid: ALLOWED where asked; blocked: BLOCKED; unknown: 404/2000; each answer an event."""
    await client.publish(TokenUpsert(event_id="u1", token=token("OK")))
    await client.publish(TokenUpsert(event_id="u2", token=token("LOST")))
    await client.publish(TokenBlock(event_id="b", token_uid="LOST", at=T0 + timedelta(1)))
    await client.take(2)
    assert info(await authorize(client, "OK")) == AuthorizationInfo(allowed=Allowed.ALLOWED, location=HERE)
    assert info(await authorize(client, "LOST")) == AuthorizationInfo(allowed=Allowed.BLOCKED)
    unknown = await authorize(client, "NOPE")
    assert (unknown.http_status, unknown.status_code) == (404, 2000)
    decided = await client.take(2)
    assert [(e.token_uid, e.allowed, e.decider) for e in decided] == [
        ("OK", Allowed.ALLOWED, Decider.LOCAL),
        ("LOST", Allowed.BLOCKED, Decider.LOCAL),
    ]
    assert decided[0].partner_id == "cpo-1"
    await client.nothing_more()


class FakeAuthorizer:
    """The company's authorizer: answers DelegatedAuthorize by the token's uid."""

    def __init__(self) -> None:
        self.asked: list[DelegatedAuthorize] = []

    async def handle(self, body: bytes) -> Outcome:
        request = msgspec.json.decode(body, type=DelegatedAuthorize)
        self.asked.append(request)
        uid = request.token.uid
        if uid == "SLOW":
            await asyncio.sleep(DEADLINE * 3)
        if uid == "WHERE":
            return Outcome(reply=error(2002, "the authorizer needs a location"))
        location = LocationReferences(location_id="LOC1", evse_uids=["E2", "E7"])
        return Outcome(reply=ok(AuthorizationInfo(allowed=Allowed.ALLOWED, location=location)))


@pytest.fixture
async def delegated(broker: Broker, amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[Any]:
    authorizer = FakeAuthorizer()
    server = RpcServer(broker, DELEGATE, authorizer.handle)
    await server.start()
    build = emsp_only(
        tokens_authorize_delegate=DELEGATE,
        tokens_authorize_deadline=DEADLINE,
        tokens_authorize_fallback="ALLOWED",
    )
    async with running_service("tokens", build, amqp_url, mongo_url, namespace):
        client = await ServiceClient.start(broker, "tokens", EVENTS)
        for uid in ("FAST", "SLOW", "WHERE"):
            await client.publish(TokenUpsert(event_id=uid, token=token(uid)))
        await client.take(3)
        yield client, authorizer
    await server.stop()
    await delete_namespace(broker, "tokens")


async def test_the_delegate_decides_narrowed_answers_2002_or_times_out(delegated: Any) -> None:
    """Answer narrowed to the EVSEs asked; its 2002 passed on; no answer in time: the fallback."""
    client, authorizer = delegated
    answered = info(await authorize(client, "FAST"))
    assert answered == AuthorizationInfo(
        allowed=Allowed.ALLOWED, location=LocationReferences(location_id="LOC1", evse_uids=["E2"])
    )
    assert authorizer.asked[0].token.uid == "FAST" and authorizer.asked[0].partner_id == "cpo-1"
    needs = await authorize(client, "WHERE", None)
    assert needs.status_code == 2002
    loop = asyncio.get_running_loop()
    started = loop.time()
    fallback = info(await authorize(client, "SLOW"))
    assert fallback == AuthorizationInfo(allowed=Allowed.ALLOWED, location=HERE)
    assert DEADLINE <= loop.time() - started < DEADLINE + 2
    decided = await client.take(2)
    assert [(e.token_uid, e.decider) for e in decided] == [
        ("FAST", Decider.DELEGATE),
        ("SLOW", Decider.FALLBACK),
    ]
