"""Consuming with manual ack after the handler's work is committed, and dead-lettering poison."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from shared.messaging.broker import Broker
from shared.messaging.headers import ERROR, ORIGINAL_ROUTING_KEY, REQUEST_ID, current_request_id

log = structlog.get_logger(__name__)

# Pause before handing a failed message back, so a database outage does not become a hot loop.
RETRY_PAUSE = 0.5


class PoisonMessage(Exception):
    """The message can never be handled (undecodable, invalid): dead-letter it with the reason."""


@dataclass(frozen=True)
class Delivery:
    """What a handler sees of a message: no aio-pika types leak past this point."""

    body: bytes
    routing_key: str
    headers: dict[str, Any]
    message_id: str | None
    redelivered: bool
    reply_to: str | None = None
    correlation_id: str | None = None


Handler = Callable[[Delivery], Awaitable[None]]


def delivery_of(message: AbstractIncomingMessage, headers: dict[str, Any] | None = None) -> Delivery:
    """The handler's view of an incoming message."""
    return Delivery(
        body=message.body,
        routing_key=message.routing_key or "",
        headers=dict(message.headers or {}) if headers is None else headers,
        message_id=message.message_id,
        redelivered=bool(message.redelivered),
        reply_to=message.reply_to,
        correlation_id=message.correlation_id,
    )


async def dead_letter(
    broker: Broker, message: AbstractIncomingMessage, headers: dict[str, Any], reason: str
) -> None:
    """Publish a copy to the dead-letter exchange with the reason; the caller then acks the original."""
    headers = {**headers, ERROR: reason[:1000], ORIGINAL_ROUTING_KEY: message.routing_key or ""}
    await broker.publish(
        broker.exchanges.dead_letter,
        message.routing_key or "",
        message.body,
        headers=headers,
        message_id=message.message_id,
    )


class Consumer:
    """Runs a handler for every message of a queue; ack after success, retry or dead-letter otherwise."""

    def __init__(self, broker: Broker, queue: AbstractQueue, handler: Handler, name: str) -> None:
        self._broker = broker
        self._queue = queue
        self._handler = handler
        self._name = name
        self._tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages and wait (bounded) for the ones in flight to finish."""
        if self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("consumer_stop_timeout", consumer=self._name, in_flight=self._in_flight)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        headers = dict(message.headers or {})
        request_id = str(headers.get(REQUEST_ID) or message.message_id or "")
        token = current_request_id.set(request_id or None)
        structlog.contextvars.bind_contextvars(request_id=request_id, routing_key=message.routing_key)
        try:
            await self._handle(message, headers)
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "routing_key")
            current_request_id.reset(token)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage, headers: dict[str, Any]) -> None:
        delivery = delivery_of(message, headers)
        try:
            await self._handler(delivery)
        except PoisonMessage as exc:
            log.warning("message_dead_lettered", consumer=self._name, reason=str(exc))
            await dead_letter(self._broker, message, headers, str(exc))
            await message.ack()
        except asyncio.CancelledError:
            await message.nack(requeue=True)
            raise
        except Exception:
            log.exception("message_failed_will_retry", consumer=self._name)
            await asyncio.sleep(RETRY_PAUSE)
            # The quorum queue counts deliveries and dead-letters past its limit.
            await message.nack(requeue=True)
        else:
            await message.ack()
