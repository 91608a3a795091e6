"""One robust connection per process, a confirming publisher channel and the declared exchanges."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import aio_pika
import msgspec
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from shared.contracts.base import Message, routing_key
from shared.messaging.headers import REQUEST_ID, current_request_id
from shared.messaging.queues import declare_all
from shared.messaging.topology import Exchanges, Topology, declare_exchanges

_json = msgspec.json.Encoder()
log = structlog.get_logger(__name__)
# How long a publish may wait for the broker's confirm. Past it the publish fails (a transient
# failure: the message that caused it is held and tried again) instead of hanging its caller while
# the broker is blocked by an alarm or the connection is half-open or reconnecting.
PUBLISH_TIMEOUT = 10.0
# Seconds between reconnection attempts after the broker connection is lost (aio-pika's default is 5).
RECONNECT_INTERVAL = 2.0


class Broker:
    """Publishing side of RabbitMQ for one process; consumers open their own channels."""

    def __init__(self, url: str, topology: Topology, name: str = "client") -> None:
        self.url = url
        self.topology = topology
        # Shown by `rabbitmqctl list_connections name client_properties` and the management UI.
        self.connection_name = f"{topology.namespace}:{name}"
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: Exchanges | None = None

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.url,
            client_properties={"product": "ocpi", "connection_name": self.connection_name},
            reconnect_interval=RECONNECT_INTERVAL,
        )
        # aio-pika logs a lost connection at INFO under its own logger; operators need to see it.
        self._connection.close_callbacks.add(self._on_lost)
        self._connection.reconnect_callbacks.add(self._on_reconnected)
        # Publisher confirms are on by default in aio-pika: publish() returns once the broker has it.
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchanges = await declare_exchanges(self._channel, self.topology)
        await self._declare_work_queues(self._exchanges)

    async def _declare_work_queues(self, exchanges: Exchanges) -> None:
        """Every work queue, not only this process's: nothing published before a consumer's first
        start is dropped for want of a binding. On a channel of its own, so that a queue declared
        elsewhere with other arguments (another OCPI_QUEUE_TYPE, say) costs a warning here, not the
        publisher channel; the queue's own consumer still refuses to start on it."""
        channel = await self.connection.channel()
        try:
            await declare_all(channel, self.topology, exchanges)
        except aio_pika.exceptions.ChannelClosed as exc:
            log.warning("work_queues_not_declared", reason=str(exc))
        finally:
            if not channel.is_closed:
                await channel.close()

    def _on_lost(self, _: object, exc: BaseException | None = None) -> None:
        if self._connection is not None and not self._connection.close_called:
            log.warning("broker_connection_lost", connection=self.connection_name, reason=repr(exc))

    def _on_reconnected(self, _: object) -> None:
        log.info("broker_reconnected", connection=self.connection_name)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("broker not connected")
        return self._connection

    @property
    def exchanges(self) -> Exchanges:
        if self._exchanges is None:
            raise RuntimeError("broker not connected")
        return self._exchanges

    @property
    def default_exchange(self) -> AbstractExchange:
        if self._channel is None:
            raise RuntimeError("broker not connected")
        return self._channel.default_exchange

    @property
    def is_ready(self) -> bool:
        """Connected now: a robust connection is not "closed" while it reconnects, so ask `connected`."""
        return self._connection is not None and self._connection.connected.is_set()

    async def channel(self, prefetch: int = 32) -> AbstractChannel:
        """A new channel for a consumer, with its own prefetch window."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(
        self,
        exchange: AbstractExchange,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        persistent: bool = True,
        **properties: Any,
    ) -> None:
        """Publish and wait for the broker's confirm; carries the current request id."""
        all_headers: dict[str, Any] = dict(headers or {})
        request_id = current_request_id.get()
        if request_id and REQUEST_ID not in all_headers:
            all_headers[REQUEST_ID] = request_id
        message = aio_pika.Message(
            body,
            headers=all_headers,
            content_type="application/json",
            message_id=message_id or uuid.uuid4().hex,
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
            **properties,
        )
        await asyncio.wait_for(
            exchange.publish(message, routing_key=routing_key, mandatory=False), PUBLISH_TIMEOUT
        )

    async def publish_event(self, event: Message) -> None:
        """Publish a domain event on the events exchange, routed by its tag."""
        await self.publish(self.exchanges.events, routing_key(event), _json.encode(event))

    async def publish_internal(self, message: Message, message_id: str | None = None) -> None:
        """Publish on the internal exchange (what the company's systems do)."""
        await self.publish(
            self.exchanges.internal, routing_key(message), _json.encode(message), message_id=message_id
        )
