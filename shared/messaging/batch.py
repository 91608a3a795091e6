"""Consuming in batches: whatever arrived while the previous batch was being handled is one batch.

A handler that writes to the database once per batch instead of once per message keeps up with
far higher rates (one bulk write, one read of every object the batch touches). Batches form by
themselves: at a low rate every batch is one message and nothing waits; under load, the messages
that queued up during one batch make the next. A single task handles batches one after another,
so the queue's order holds within a replica. Every message is acked on its own after its batch's
work is committed; a message the handler names as poison is dead-lettered with its reason. When a
batch fails, its messages are tried one by one, so that a message that breaks the handler does not
take the others with it; when several fail alone in a row, the rest of the batch goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelInvalidStateError

from shared.messaging.broker import Broker
from shared.messaging.consumer import RETRY_PAUSE, Delivery, dead_letter, delivery_of

log = structlog.get_logger(__name__)

# After a failed batch, this many messages failing on their own in a row mean the cause is not one
# message: the rest of the batch goes back to the queue untried.
SYSTEMIC_FAILURES = 3
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
                # Messages of a channel that closed (the connection dropped) cannot be settled; the
                # broker hands them out again on the restored channel.
                batch = [message for message in batch if _open(message)]
                if not batch:
                    continue
                try:
                    await self._handle(batch)
                except Exception:
                    # This task must live on for the batches that follow.
                    log.exception("batch_not_settled", consumer=self._name, size=len(batch))

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        deliveries = [delivery_of(message) for message in batch]
        verdicts = await self._attempt(batch, deliveries)
        if verdicts is not None:
            for message, delivery, reason in zip(batch, deliveries, verdicts, strict=True):
                await self._settle(message, delivery, reason)
            log.debug("batch_handled", consumer=self._name, size=len(batch))
        elif len(batch) == 1:
            await asyncio.sleep(RETRY_PAUSE)
            await _nack(batch[0])
        else:
            await self._one_by_one(batch, deliveries)

    async def _one_by_one(self, batch: list[AbstractIncomingMessage], deliveries: list[Delivery]) -> None:
        """After a failed batch: one message may be the cause, so the others are tried on their own
        and not held back with it (nor run up their delivery count with it). After a few failures
        in a row the cause is not one message (the database is down, say): the rest go back."""
        in_a_row = 0
        for index, (message, delivery) in enumerate(zip(batch, deliveries, strict=True)):
            verdicts = await self._attempt([message], [delivery])
            if verdicts is not None:
                in_a_row = 0
                await self._settle(message, delivery, verdicts[0])
                continue
            in_a_row += 1
            await asyncio.sleep(RETRY_PAUSE)
            if in_a_row == SYSTEMIC_FAILURES:
                # Handed back in order; a quorum queue counts deliveries and dead-letters past its limit.
                for rest in batch[index:]:
                    await _nack(rest)
                return
            await _nack(message)

    async def _attempt(
        self, batch: list[AbstractIncomingMessage], deliveries: list[Delivery]
    ) -> Verdicts | None:
        """The handler's verdicts, or None when it failed (logged)."""
        try:
            verdicts = await self._handler(deliveries)
            if len(verdicts) != len(deliveries):
                raise RuntimeError(f"{len(verdicts)} verdicts for {len(deliveries)} messages")
        except asyncio.CancelledError:
            await asyncio.gather(*(m.nack(requeue=True) for m in batch), return_exceptions=True)
            raise
        except Exception:
            log.exception("batch_failed", consumer=self._name, size=len(deliveries))
            return None
        return verdicts

    async def _settle(self, message: AbstractIncomingMessage, delivery: Delivery, reason: str | None) -> None:
        """Ack a handled message, dead-lettering it first when the handler gave a reason. Each
        message is settled on its own: one that cannot be (its channel closed, the dead-letter
        publish failed) stays unacked and comes back, and the others are not held up by it."""
        try:
            if reason is not None:
                log.warning(
                    "message_dead_lettered",
                    consumer=self._name,
                    reason=reason,
                    routing_key=delivery.routing_key,
                    message_id=delivery.message_id,
                )
                await dead_letter(self._broker, message, delivery.headers, reason)
            await message.ack()
        except Exception:
            log.exception("message_not_settled", consumer=self._name, message_id=delivery.message_id)


def _open(message: AbstractIncomingMessage) -> bool:
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


async def _nack(message: AbstractIncomingMessage) -> None:
    """Hand a message back; if its channel is gone the broker does that by itself."""
    try:
        await message.nack(requeue=True)
    except Exception:
        log.warning("message_not_handed_back", message_id=message.message_id)
