"""A module's service running in the test process, with a client's view of it (RPC, inputs, events).

Shared by the service tests of every module (locations, tariffs): start with `module_service`, talk
to it through a `ServiceClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from aio_pika.abc import AbstractIncomingMessage
from pymongo import AsyncMongoClient
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from shared.contracts.base import Message, RpcReply
from shared.messaging.broker import Broker
from shared.messaging.headers import ERROR
from shared.messaging.rpc import RpcClient
from shared.service import Build, ServiceContext
from shared.settings import load_settings
from shared.storage import service_database

WAIT = 10.0  # upper bound of every wait for the service
# The client's x-deadline header travels as a 32-bit float (pamqp), which is off by up to 64 s at
# today's epoch; a long client timeout keeps it in the future, and `call` bounds the wait.
RPC_DEADLINE = 300.0


@contextlib.asynccontextmanager
async def module_service(
    service: str, build: Build, amqp_url: str, mongo_url: str, namespace: str,
    listeners: Sequence[CommandListener] = (),
) -> AsyncIterator[None]:  # fmt: skip
    """The service running in this process; its database dropped when it stops.

    `listeners` see every command the service sends to MongoDB.
    """
    settings = load_settings(namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url)
    ctx = ServiceContext(service, settings)
    if listeners:
        await ctx.mongo.close()
        ctx.mongo = AsyncMongoClient(mongo_url, tz_aware=True, event_listeners=list(listeners))
        ctx.db = service_database(ctx.mongo, namespace, service)
    await ctx.broker.connect()
    components = await build(ctx)
    for component in components:
        await component.start()
    try:
        yield
    finally:
        for component in reversed(components):
            await component.stop()
        await ctx.mongo.drop_database(ctx.db.name)
        await ctx.broker.close()
        await ctx.mongo.close()


class ServiceClient:
    """A client's view of a running service: RPC calls, inputs, the events it publishes."""

    def __init__(self, broker: Broker, service: str, rpc: RpcClient, events: asyncio.Queue[Any]) -> None:
        self.broker = broker
        self.service = service
        self.rpc = rpc
        self.events = events

    @classmethod
    async def start(cls, broker: Broker, service: str, event_types: Sequence[type[Message]]) -> Any:
        """Listen to the service's events (`<service>.#`) and start an RPC client."""
        events: asyncio.Queue[Any] = asyncio.Queue()
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_union(event_types))

        async def on_event(message: AbstractIncomingMessage) -> None:
            events.put_nowait(decoder.decode(message.body))

        channel = await broker.channel()
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(broker.topology.events_exchange, f"{service}.#")
        await queue.consume(on_event, no_ack=True)
        rpc = RpcClient(broker, timeout=RPC_DEADLINE)
        await rpc.start()
        return cls(broker, service, rpc, events)

    async def call(self, request: Message) -> RpcReply:
        async with asyncio.timeout(WAIT):
            return await self.rpc.call(self.service, request)

    async def publish(self, message: Message, message_id: str | None = None) -> None:
        await self.broker.publish_internal(message, message_id=message_id)

    async def take(self, count: int) -> list[Any]:
        """The next `count` events, or fail after WAIT seconds."""
        async with asyncio.timeout(WAIT):
            return [await self.events.get() for _ in range(count)]

    async def nothing_more(self, pause: float = 0.5) -> None:
        """No further event arrives within `pause` seconds."""
        await asyncio.sleep(pause)
        assert self.events.empty(), self.events.get_nowait()

    async def dead_letter_reasons(self, count: int) -> list[str]:
        """The reasons of the next `count` dead letters, or fail after WAIT seconds."""
        channel = await self.broker.channel()
        dead = await channel.get_queue(self.broker.topology.dead_letter_queue)
        reasons: list[str] = []
        async with asyncio.timeout(WAIT):
            while len(reasons) < count:
                message = await dead.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                reasons.append(str((message.headers or {}).get(ERROR)))
        await channel.close()
        return reasons


def _union(types: Sequence[type[Message]]) -> Any:
    union: Any = types[0]
    for kind in types[1:]:
        union = union | kind
    return union


async def delete_namespace(broker: Broker, service: str) -> None:
    """Delete the service's queues and the namespace's exchanges."""
    channel = await broker.connection.channel()
    topology = broker.topology
    for queue in (topology.rpc_queue(service), topology.queue(service, "input"), topology.dead_letter_queue):
        await channel.queue_delete(queue)
    for exchange in (topology.rpc_exchange, topology.events_exchange, topology.internal_exchange,
                     topology.dead_letter_exchange):  # fmt: skip
        await channel.exchange_delete(exchange)
    await channel.close()


def data(reply: RpcReply) -> Any:
    """The OCPI data of a reply, as builtins."""
    return msgspec.json.decode(reply.data)


class CommandCounter(CommandListener):
    """Counts the commands a client sends to one database, by name."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.commands: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.commands.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass
