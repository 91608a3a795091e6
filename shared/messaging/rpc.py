"""Gateway-to-service request/response over RabbitMQ, using the direct reply-to pseudo-queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
import msgspec
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustChannel, FieldValue
from aiormq.exceptions import ChannelInvalidStateError

from shared.contracts.base import Message, Outcome, RpcReply
from shared.messaging.broker import Broker
from shared.messaging.consumer import Consumer, Delivery, PoisonMessage
from shared.messaging.headers import DEADLINE, REQUEST_ID, current_deadline, current_request_id
from shared.messaging.topology import declare_work_queue
from shared.messaging.transient import DependencyAway

log = structlog.get_logger(__name__)
_encoder = msgspec.json.Encoder()
_reply_decoder = msgspec.json.Decoder(RpcReply)
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class RpcTimeout(DependencyAway):
    """The service did not answer in time (down, overloaded or killed mid-request)."""


class RpcUnavailable(RpcTimeout):
    """No answer can come: the broker connection is down or the reply consumer is not running."""


class RpcClient:
    """Sends requests to a service's queue and waits for the reply on the direct reply-to queue.

    The reply consumer is the client's own: aio-pika reopens a robust channel after a reconnect (or
    after the broker closed the channel) but restores only consumers of queues it declared, and the
    direct reply-to pseudo-queue cannot be declared. So the client consumes again every time its
    channel reopens, and fails the calls in flight at once when the channel or connection goes:
    their replies can no longer arrive, and a caller told now beats one told at its deadline.
    """

    def __init__(self, broker: Broker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consuming = False
        self._pending: dict[str, asyncio.Future[RpcReply]] = {}

    async def start(self) -> None:
        # Direct reply-to requires consuming and publishing on the same channel, with no-ack.
        channel = await self._broker.connection.channel(publisher_confirms=False)
        assert isinstance(channel, AbstractRobustChannel)
        self._channel = channel
        channel.close_callbacks.add(self._on_lost)
        channel.reopen_callbacks.add(self._on_reopened)
        self._broker.connection.close_callbacks.add(self._on_lost)
        await self._consume()

    async def _consume(self) -> None:
        if self._channel is None:
            raise RuntimeError("rpc client not started")
        queue = await self._channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await queue.consume(self._on_reply, no_ack=True)
        self._exchange = await self._channel.get_exchange(self._broker.topology.rpc_exchange, ensure=False)
        self._consuming = True

    def _on_lost(self, _: object, exc: BaseException | None = None) -> None:
        self._consuming = False
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(RpcUnavailable("the broker connection was lost"))
        if pending:
            log.warning("rpc_calls_failed_connection_lost", calls=len(pending), reason=repr(exc))

    async def _on_reopened(self, _: object) -> None:
        try:
            await self._consume()
        except Exception:
            # The channel closes again and the next reopen tries again; readiness shows the gap.
            log.exception("rpc_reply_consumer_not_restored")
        else:
            log.info("rpc_reply_consumer_restored")

    @property
    def ready(self) -> bool:
        """Replies can arrive: connected, and the reply consumer runs on the current channel."""
        return self._consuming and self._broker.is_ready

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is None or future.done():
            return  # the caller already gave up; a late answer is dropped
        try:
            future.set_result(_reply_decoder.decode(message.body))
        except msgspec.ValidationError as exc:
            future.set_exception(exc)

    async def call(self, service: str, request: msgspec.Struct, wait_for: float | None = None) -> RpcReply:
        """Send `request` to `service` and wait for its reply, or raise RpcTimeout."""
        if self._channel is None:
            raise RuntimeError("rpc client not started")
        if not self.ready or self._exchange is None:
            raise RpcUnavailable(f"{service} cannot be asked: the broker connection is not ready")
        wait = self._timeout if wait_for is None else wait_for
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[RpcReply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        headers: dict[str, FieldValue] = {
            # Milliseconds as an int: AMQP tables carry Python floats as float32, off by a minute.
            DEADLINE: int((time.time() + wait) * 1000),
            REQUEST_ID: current_request_id.get() or correlation_id,
        }
        message = aio_pika.Message(
            _encoder.encode(request),
            headers=headers,
            correlation_id=correlation_id,
            reply_to=DIRECT_REPLY_TO,
            content_type="application/json",
            # Requests are only worth answering while someone waits for them.
            expiration=wait,
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        )
        try:
            # The publish counts against the deadline too: a blocked broker must not hang the caller.
            return await asyncio.wait_for(self._send_and_wait(message, service, future), wait)
        except TimeoutError as exc:
            raise RpcTimeout(f"{service} did not answer within {wait:.1f}s") from exc
        except (ConnectionError, ChannelInvalidStateError) as exc:
            raise RpcUnavailable(f"{service} cannot be asked: {type(exc).__name__}") from exc
        finally:
            self._pending.pop(correlation_id, None)

    async def _send_and_wait(
        self, message: aio_pika.Message, service: str, future: asyncio.Future[RpcReply]
    ) -> RpcReply:
        assert self._exchange is not None
        await self._exchange.publish(message, routing_key=service)
        return await future


RequestHandler = Callable[[bytes], Awaitable[Outcome]]
# Told which events went out, once the broker confirmed them (an outbox clears its marks).
PublishedHook = Callable[[list[Message]], None]


class RpcServer:
    """Consumes a service's request queue: handle, publish events, reply, then ack."""

    def __init__(
        self,
        broker: Broker,
        service: str,
        handle: RequestHandler,
        prefetch: int = 16,
        on_published: PublishedHook | None = None,
    ) -> None:
        self._broker = broker
        self._service = service
        self._handle = handle
        self._prefetch = prefetch
        self._on_published = on_published
        self._consumer: Consumer | None = None

    async def start(self) -> None:
        topology = self._broker.topology
        channel = await self._broker.channel(self._prefetch)
        queue = await declare_work_queue(
            channel,
            topology,
            topology.rpc_queue(self._service),
            [(await channel.get_exchange(topology.rpc_exchange), self._service)],
            dead_letter=False,
        )
        self._consumer = Consumer(self._broker, queue, self._on_request, f"{self._service}.rpc")
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def ready(self) -> bool:
        return self._consumer is not None and await self._consumer.ready()

    async def _on_request(self, delivery: Delivery) -> None:
        deadline = delivery.headers.get(DEADLINE)
        if isinstance(deadline, int) and time.time() * 1000 > deadline:
            # Nobody waits for this answer any more; acting on it now would surprise the caller.
            log.info("rpc_request_expired")
            return
        token = current_deadline.set(deadline / 1000 if isinstance(deadline, int) else None)
        try:
            outcome = await self._handle(delivery.body)
        except msgspec.DecodeError as exc:
            raise PoisonMessage(f"invalid request: {exc}") from exc
        finally:
            current_deadline.reset(token)
        for event in outcome.events:
            await self._broker.publish_event(event)
        if self._on_published is not None and outcome.events:
            self._on_published(outcome.events)
        if outcome.reply is not None and delivery.reply_to:
            await self._broker.publish(
                self._broker.default_exchange,
                delivery.reply_to,
                _encoder.encode(outcome.reply),
                correlation_id=delivery.correlation_id,
                persistent=False,
            )


class RpcClientReadiness:
    """The RPC client as a component: started when built (requests may come before the components
    start), ready while its replies can arrive."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass  # its channel closes with the service's broker connection

    async def ready(self) -> bool:
        return self._rpc.ready
