"""Consuming with manual ack after the handler's work is committed, and dead-lettering poison."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelInvalidStateError

from shared.messaging.broker import Broker
from shared.messaging.headers import ERROR, ORIGINAL_ROUTING_KEY, REQUEST_ID, current_request_id
from shared.messaging.transient import Backoff, is_transient

log = structlog.get_logger(__name__)

# Pause between two tries of a message that failed on its own.
RETRY_PAUSE = 0.5
# A message that fails on its own (not for want of the database or the broker) this many times in a
# row is dead-lettered with its reason. Counted here, not by the broker: RabbitMQ 4.3 no longer counts
# a nack towards a quorum queue's delivery limit, and classic queues have none.
POISON_ATTEMPTS = 3


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


def channel_open(message: AbstractIncomingMessage) -> bool:
    """Whether `message` can still be settled: after its channel closed (the connection dropped) the
    broker hands it out again by itself, on the restored channel."""
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


def failure_reason(exc: BaseException, attempts: int) -> str:
    return f"failed {attempts} times: {type(exc).__name__}: {exc}"


class Consumer:
    """Runs a handler for every message of a queue; ack after success, hold or dead-letter otherwise.

    A message whose handler fails because the database or the broker is away is held (unacked, not
    counted) and tried again with growing pauses until it goes through; one that fails on its own
    POISON_ATTEMPTS times is dead-lettered with its reason. Either way no other message waits on it.
    """

    def __init__(self, broker: Broker, queue: AbstractQueue, handler: Handler, name: str) -> None:
        self._broker = broker
        self._queue = queue
        self._handler = handler
        self._name = name
        self._tag: str | None = None
        self._in_flight = 0
        self._holding = 0
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._stopping = False
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages and wait (bounded) for the ones in flight to finish."""
        self._stopping = True
        if self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:
                # The broker is away: its messages come back to the queue when the connection ends.
                log.warning("consumer_cancel_failed", consumer=self._name, reason=repr(exc))
            self._tag = None
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("consumer_stop_timeout", consumer=self._name, in_flight=self._in_flight)

    async def ready(self) -> bool:
        """Consuming, on an open channel, and not holding messages for a dependency to come back."""
        return self._holding == 0 and await consuming(self._broker, self._queue, self._tag)

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
        failures = 0
        backoff = Backoff()
        while True:
            try:
                await self._handler(delivery)
                await message.ack()
                return
            except PoisonMessage as exc:
                if await self._dead_letter(message, headers, str(exc)):
                    return
            except asyncio.CancelledError:
                await hand_back(message)
                raise
            except Exception as exc:
                if is_transient(exc):
                    await self._hold(exc, backoff)
                else:
                    failures += 1
                    log.exception("message_failed", consumer=self._name, attempt=failures)
                    if failures >= POISON_ATTEMPTS and await self._dead_letter(
                        message, headers, failure_reason(exc, failures)
                    ):
                        return
                    await asyncio.sleep(RETRY_PAUSE)
            if not channel_open(message):
                return
            if self._stopping:
                await hand_back(message)
                return

    async def _dead_letter(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], reason: str
    ) -> bool:
        """Dead-letter and ack; False when that could not be done (the message is tried again)."""
        try:
            await dead_letter(self._broker, message, headers, reason)
            await message.ack()
        except Exception as exc:
            log.warning("message_not_dead_lettered", consumer=self._name, reason=repr(exc))
            await asyncio.sleep(RETRY_PAUSE)
            return False
        log.warning("message_dead_lettered", consumer=self._name, reason=reason)
        return True

    async def _hold(self, exc: BaseException, backoff: Backoff) -> None:
        pause = backoff.next()
        log.warning("message_held_dependency_away", consumer=self._name, reason=repr(exc), retry_in=pause)
        self._holding += 1
        try:
            await asyncio.sleep(pause)
        finally:
            self._holding -= 1


async def consuming(broker: Broker, queue: AbstractQueue, tag: str | None) -> bool:
    """Whether the broker delivers `queue` to consumer `tag` right now (its channel knows the tag)."""
    if tag is None or not broker.is_ready:
        return False
    try:
        # Bounded: a robust channel's underlay waits for the connection to come back.
        underlay = await asyncio.wait_for(queue.channel.get_underlay_channel(), 1.0)
    except Exception:
        return False
    consumers: dict[str, object] = getattr(underlay, "consumers", {})
    return not underlay.is_closed and tag in consumers


async def hand_back(message: AbstractIncomingMessage) -> None:
    """Return a message to the queue; if its channel is gone the broker does that by itself."""
    if message.processed:
        return  # already acked (or dead-lettered and acked): nothing to hand back
    try:
        await message.nack(requeue=True)
    except Exception:
        log.warning("message_not_handed_back", message_id=message.message_id)
