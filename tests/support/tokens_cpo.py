"""The CPO side of the tokens service in the test process, without the eMSP side, and a fake dispatcher.

`cpo_replica` runs one replica: with `serve=True` the module service (RPC server, input queue,
outbox) around it, as services/tokens/app.py does; without, only the CPO side's own components
(a second replica whose handlers the test calls directly). `FakeDispatcher` is an RpcServer named
"dispatcher" in the test's namespace answering PartnerAuthorize by token uid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandListener

from services.tokens.cpo import CpoSide, build_cpo
from services.tokens.cpo_realtime import DISPATCHER
from services.tokens.cpo_rules import updated_of
from shared.contracts.base import Message, Outcome, RpcReply
from shared.contracts.tokens import PartnerAuthorize
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcServer
from shared.modules.memory import MemorySenderStore
from shared.modules.outbox import Announcer
from shared.modules.sender import OwnRecord
from shared.modules.service import InputHandler, module_service
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Token
from shared.service import Component, ServiceContext
from shared.settings import load_settings
from shared.storage import service_database


class NoOwnTokens:
    """Input rules of a service without the eMSP side: these tests send no TokenUpsert/Block/Expire."""

    def key_of(self, msg: Any) -> str:
        raise AssertionError(f"the CPO-side tests send no {type(msg).__name__}")

    def apply(self, msg: Any, stored: Any) -> Any:
        raise AssertionError(f"the CPO-side tests send no {type(msg).__name__}")

    def part_of(self, msg: Any) -> str:
        raise AssertionError(f"the CPO-side tests send no {type(msg).__name__}")

    def changed(self, record: OwnRecord[Token], parts: list[Any]) -> Message:
        raise AssertionError("the CPO-side tests store none of our tokens")


@contextlib.asynccontextmanager
async def cpo_replica(
    amqp_url: str, mongo_url: str, namespace: str, *, serve: bool = True,
    listeners: Sequence[CommandListener] = (), **overrides: Any,
) -> AsyncIterator[CpoSide]:  # fmt: skip
    """One replica of the tokens service's CPO side; the serving one drops the database when it stops."""
    settings = load_settings(namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url, **overrides)
    ctx = ServiceContext("tokens", settings)
    if listeners:
        await ctx.mongo.close()
        ctx.mongo = AsyncMongoClient(mongo_url, tz_aware=True, event_listeners=list(listeners))
        ctx.db = service_database(ctx.mongo, namespace, "tokens")
    await ctx.broker.connect()
    cpo = await build_cpo(ctx)
    components: list[Component] = list(cpo.components)
    if serve:
        publish = ctx.broker.publish_event
        announcer: Announcer[Token] = Announcer(cpo.store, publish, cpo.partner_event, cpo.mark_of)
        own: MemorySenderStore[Token] = MemorySenderStore(updated_of)
        inputs = InputHandler(TOKENS, own, NoOwnTokens(), cpo.import_one, publish, announcer)
        service = await module_service(
            ctx, TOKENS, announcer, cpo.object_requests, inputs, cpo.other_requests
        )
        components = [*service, *components]
    for component in components:
        await component.start()
    try:
        yield cpo
    finally:
        for component in reversed(components):
            await component.stop()
        if serve:
            await ctx.mongo.drop_database(ctx.db.name)
        await ctx.broker.close()
        await ctx.mongo.close()


class FakeDispatcher:
    """Answers PartnerAuthorize by token uid: an RpcReply, or a number of seconds to stay silent."""

    def __init__(self, broker: Broker, answers: dict[str, RpcReply | float]) -> None:
        self.requests: list[PartnerAuthorize] = []
        self._answers = answers
        self._decoder = msgspec.json.Decoder(PartnerAuthorize)
        self._server = RpcServer(broker, DISPATCHER, self._handle)

    async def _handle(self, body: bytes) -> Outcome:
        request = self._decoder.decode(body)
        self.requests.append(request)
        answer = self._answers[request.token_uid]
        if isinstance(answer, float):
            await asyncio.sleep(answer)  # past the caller's deadline: its reply is dropped
            return Outcome()
        return Outcome(reply=answer)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()
