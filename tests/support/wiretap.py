"""What crosses the broker and what is stored, for tests that look for secrets (review M5).

`BrokerTap` binds private queues to every exchange of a deployment (events and internal: every
routing key; rpc: every service's key; dead letters: all) and keeps each message's body and headers.
`stored_documents` reads every document of every database of a deployment as text.
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from bson import json_util
from pymongo import AsyncMongoClient

from deploy.local_stack import SERVICES, Deployment
from shared.contracts.partners import GATEWAY_SERVICE
from shared.messaging.topology import Topology

# The routing keys of the rpc exchange (direct): each service, and the gateway's requests.
RPC_KEYS = (*SERVICES, GATEWAY_SERVICE)


class BrokerTap:
    """Copies of every message published on a deployment's exchanges while the tap is open."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._connection: AbstractRobustConnection | None = None

    async def open(self, amqp_url: str, *deployments: Deployment) -> None:
        self._connection = await aio_pika.connect_robust(amqp_url)
        channel = await self._connection.channel()
        for deployment in deployments:
            topology = Topology(deployment.namespace)
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for name in (topology.events_exchange, topology.internal_exchange):
                await queue.bind(await channel.get_exchange(name), "#")
            rpc = await channel.get_exchange(topology.rpc_exchange)
            for key in RPC_KEYS:
                await queue.bind(rpc, key)
            await queue.bind(await channel.get_exchange(topology.dead_letter_exchange), "")
            await queue.consume(self._keep, no_ack=True)

    async def _keep(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(
            f"{message.routing_key} {message.headers!r} {message.body.decode(errors='replace')}"
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def stored_documents(mongo_url: str, deployment: Deployment) -> list[str]:
    """Every document of every database the deployment owns, as extended JSON."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        found: list[str] = []
        for name in await client.list_database_names():
            if not name.startswith(f"{deployment.namespace}_"):
                continue
            db = client[name]
            for collection in await db.list_collection_names():
                async for doc in db[collection].find():
                    found.append(f"{name}.{collection} {json_util.dumps(doc)}")
        return found
    finally:
        await client.close()
