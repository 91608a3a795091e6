"""Every exchange and queue name, derived from the namespace in one place.

Two deployments can share one broker because every name starts with the namespace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, FieldValue

# A message redelivered this many times is dead-lettered instead of looping forever.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Topology:
    """Names of the exchanges and queues of one deployment."""

    namespace: str
    # Quorum queues in production; OCPI_QUEUE_TYPE=classic where a broker hosts many short-lived
    # namespaces (the test suite), since every quorum queue is a Raft group of its own.
    queue_type: str = field(default_factory=lambda: os.environ.get("OCPI_QUEUE_TYPE", "quorum"))

    @property
    def rpc_exchange(self) -> str:
        """Direct exchange: gateway requests, routed by service name."""
        return f"{self.namespace}.rpc"

    @property
    def events_exchange(self) -> str:
        """Topic exchange: domain events published after committed changes."""
        return f"{self.namespace}.events"

    @property
    def internal_exchange(self) -> str:
        """Topic exchange: input from the company's own systems (charger backend, apps)."""
        return f"{self.namespace}.internal"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead-letter"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead-letters"

    def rpc_queue(self, service: str) -> str:
        return f"{self.namespace}.{service}.rpc"

    def queue(self, service: str, purpose: str) -> str:
        """A durable work queue owned by one service, shared by its replicas."""
        return f"{self.namespace}.{service}.{purpose}"


@dataclass(frozen=True)
class Exchanges:
    rpc: AbstractExchange
    events: AbstractExchange
    internal: AbstractExchange
    dead_letter: AbstractExchange


async def declare_exchanges(channel: AbstractChannel, topology: Topology) -> Exchanges:
    """Declare the deployment's exchanges and the dead-letter queue (idempotent)."""
    rpc = await channel.declare_exchange(topology.rpc_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    internal = await channel.declare_exchange(
        topology.internal_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        topology.dead_letter_queue, durable=True, arguments={"x-queue-type": topology.queue_type}
    )
    await dlq.bind(dead)
    return Exchanges(rpc=rpc, events=events, internal=internal, dead_letter=dead)


async def declare_work_queue(
    channel: AbstractChannel,
    topology: Topology,
    name: str,
    bindings: list[tuple[AbstractExchange, str]],
    dead_letter: bool = True,
) -> AbstractQueue:
    """A durable quorum queue with a delivery limit and, unless told otherwise, dead-lettering.

    RPC request queues pass dead_letter=False: a request that expired because nobody answered
    in time is worth nothing to anyone, and must not fill the dead-letter queue.
    """
    arguments: dict[str, FieldValue] = {"x-queue-type": topology.queue_type}
    if topology.queue_type == "quorum":
        arguments["x-delivery-limit"] = DELIVERY_LIMIT
    if dead_letter:
        arguments["x-dead-letter-exchange"] = topology.dead_letter_exchange
    queue = await channel.declare_queue(name, durable=True, arguments=arguments)
    for exchange, routing_key in bindings:
        await queue.bind(exchange, routing_key)
    return queue


async def declare_broadcast_queue(
    channel: AbstractChannel, bindings: list[tuple[AbstractExchange, str]]
) -> AbstractQueue:
    """A private, auto-deleted queue: every replica gets its own copy (cache invalidation)."""
    queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
    for exchange, routing_key in bindings:
        await queue.bind(exchange, routing_key)
    return queue
