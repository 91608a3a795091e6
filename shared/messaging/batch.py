"""Consuming in batches: whatever arrived while the previous batch was being handled is one batch.

A handler that writes to the database once per batch instead of once per message keeps up with
far higher rates (one bulk write, one read of every object the batch touches). Batches form by
themselves: at a low rate every batch is one message and nothing waits; under load, the messages
that queued up during one batch make the next. A single task handles batches one after another,
so the queue's order holds within a replica. Every message is acked after its batch's work is
committed; a poison message is dead-lettered with its reason; if the batch fails, all of it is
handed back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from shared.messaging.broker import Broker
from shared.messaging.consumer import RETRY_PAUSE, Delivery, dead_letter, delivery_of

log = structlog.get_logger(__name__)

# Per delivery of a batch: None when handled, else why it can never be handled (dead-lettered).
Verdicts = Sequence[str | None]
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Verdicts]]


class BatchConsumer:
    """Runs a batch handler over the messages of a queue, at most `max_batch` messages at a time.

    Give the channel a prefetch of twice `max_batch`: the next batch then arrives while one is
    handled, instead of trickling in as the acks of the last one reach the broker.
    """

    def __init__(
        self, broker: Broker, queue: AbstractQueue, handler: BatchHandler, name: str, max_batch: int
    ) -> None:
        self._broker = broker
        self._queue = queue
        self._handler = handler
        self._name = name
        self._max_batch = max_batch
        self._buffer: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()
        self._tag: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._closing = False
        self._runner = asyncio.create_task(self._run())
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages, finish the batch in hand (bounded), hand the rest back."""
        if self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
        if self._runner is not None:
            self._closing = True
            self._arrived.set()
            done, _ = await asyncio.wait([self._runner], timeout=grace)
            if not done:
                log.warning("consumer_stop_timeout", consumer=self._name)
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
            self._runner = None
        for message in self._buffer:
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        self._buffer.clear()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()

    async def _run(self) -> None:
        while not self._closing:
            await self._arrived.wait()
            self._arrived.clear()
            while self._buffer and not self._closing:
                batch = self._buffer[: self._max_batch]
                del self._buffer[: len(batch)]
                try:
                    await self._handle(batch)
                except Exception:
                    # Settling failed (the channel closed with the connection): the broker hands
                    # every unacked message out again once the channel is back, and handlers
                    # are idempotent. This task must live on for the batches that follow.
                    log.exception("batch_not_settled", consumer=self._name, size=len(batch))

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        deliveries = [delivery_of(message) for message in batch]
        try:
            verdicts = await self._handler(deliveries)
            if len(verdicts) != len(batch):
                raise RuntimeError(f"{len(verdicts)} verdicts for {len(batch)} messages")
        except asyncio.CancelledError:
            await asyncio.gather(*(m.nack(requeue=True) for m in batch), return_exceptions=True)
            raise
        except Exception:
            log.exception("batch_failed_will_retry", consumer=self._name, size=len(batch))
            await asyncio.sleep(RETRY_PAUSE)
            # Handed back in order; the quorum queue counts deliveries and dead-letters past its limit.
            for message in batch:
                await message.nack(requeue=True)
            return
        for message, delivery, reason in zip(batch, deliveries, verdicts, strict=True):
            if reason is not None:
                log.warning(
                    "message_dead_lettered",
                    consumer=self._name,
                    reason=reason,
                    routing_key=delivery.routing_key,
                    message_id=delivery.message_id,
                )
                await dead_letter(self._broker, message, delivery.headers, reason)
        # One ack for the batch: deliveries come in order, every earlier one is settled already, and
        # the buffered ones after it have higher delivery tags.
        await batch[-1].ack(multiple=True)
        log.debug("batch_handled", consumer=self._name, size=len(batch))
