"""Consuming in batches: whatever arrived while the previous batch was being handled is one batch.

A handler that writes to the database once per batch instead of once per message keeps up with
far higher rates (one bulk write, one read of every object the batch touches). Batches form by
themselves: at a low rate every batch is one message and nothing waits; under load, the messages
that queued up during one batch make the next. A single task handles batches one after another,
so the queue's order holds within a replica. Every message is acked on its own after its batch's
work is committed; a message the handler names as poison is dead-lettered with its reason.

When a batch fails because the database or the broker is away, the batch is held (unacked, not
counted by anyone) and tried again with growing pauses until it goes through: the channel's prefetch
bounds what is held, the rest waits in the queue, and an outage of any length costs no message.
When a batch fails for any other reason, its messages are tried one by one, so that a message that
breaks the handler does not take the others with it; one that fails on its own POISON_ATTEMPTS times
is dead-lettered alone with its reason. No message is ever handed back untried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from shared.messaging.broker import Broker
from shared.messaging.consumer import (
    POISON_ATTEMPTS,
    RETRY_PAUSE,
    Delivery,
    channel_open,
    consuming,
    dead_letter,
    delivery_of,
    failure_reason,
    hand_back,
)
from shared.messaging.headers import REQUEST_ID, current_request_id
from shared.messaging.transient import Backoff, is_transient

log = structlog.get_logger(__name__)


def request_id_of(delivery: Delivery) -> str:
    """The request a message belongs to: its `x-request-id` header, else its message id."""
    return str(delivery.headers.get(REQUEST_ID) or delivery.message_id or "")


@contextlib.contextmanager
def bound_request_ids(deliveries: Sequence[Delivery]) -> Iterator[None]:
    """Log lines written while a batch is handled carry its request ids, as Consumer's do per message.

    A batch of one message is that message's request: `request_id` is bound and becomes the current
    request id, so what the handler publishes carries it. A larger batch serves several requests:
    their ids are bound as `request_ids`, and the handler names per event which one it serves.
    """
    ids = [request_id_of(delivery) for delivery in deliveries]
    token = current_request_id.set(ids[0] or None) if len(ids) == 1 else None
    if len(ids) == 1:
        bound = structlog.contextvars.bind_contextvars(request_id=ids[0])
    else:
        bound = structlog.contextvars.bind_contextvars(request_ids=list(dict.fromkeys(ids)))
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**bound)
        if token is not None:
            current_request_id.reset(token)


# Per delivery of a batch: None when handled, else why it can never be handled (dead-lettered).
Verdicts = Sequence[str | None]
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Verdicts]]


class BatchConsumer:
    """Runs a batch handler over the messages of a queue, at most `max_batch` messages at a time.

    Give the channel a prefetch of twice `max_batch`: the next batch then arrives while one is
    handled, instead of trickling in as the acks of the last one reach the broker.

    With `linger`, batches start at least that many seconds apart unless a full batch is waiting:
    a message after a quiet spell is handled at once, but under a steady stream each batch gathers
    what came during the linger, so a handler that coalesces (the dispatcher) writes less per
    message. Without it, a steady stream makes many small batches.
    """

    def __init__(
        self,
        broker: Broker,
        queue: AbstractQueue,
        handler: BatchHandler,
        name: str,
        max_batch: int,
        linger: float = 0.0,
    ) -> None:
        self._broker = broker
        self._queue = queue
        self._handler = handler
        self._name = name
        self._max_batch = max_batch
        self._linger = linger
        self._last_start = float("-inf")
        self._buffer: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()
        self._tag: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._holding = False

    async def start(self) -> None:
        self._closing = False
        self._runner = asyncio.create_task(self._run())
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking messages, finish the batch in hand (bounded), hand the rest back."""
        if self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:
                log.warning("consumer_cancel_failed", consumer=self._name, reason=repr(exc))
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
            await hand_back(message)
        self._buffer.clear()

    async def ready(self) -> bool:
        """Consuming, on an open channel, and not holding a batch for a dependency to come back."""
        return not self._holding and await consuming(self._broker, self._queue, self._tag)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()

    async def _run(self) -> None:
        while not self._closing:
            await self._arrived.wait()
            self._arrived.clear()
            while self._buffer and not self._closing:
                await self._lingering()
                if self._closing:
                    break
                self._last_start = asyncio.get_running_loop().time()
                batch = self._buffer[: self._max_batch]
                del self._buffer[: len(batch)]
                try:
                    await self._handle(batch)
                except asyncio.CancelledError:
                    await asyncio.gather(*(hand_back(m) for m in batch if channel_open(m)))
                    raise
                except Exception:
                    # This task must live on for the batches that follow.
                    log.exception("batch_not_settled", consumer=self._name, size=len(batch))

    async def _lingering(self) -> None:
        """Wait until `linger` after the last batch started, or until a full batch is waiting."""
        loop = asyncio.get_running_loop()
        while len(self._buffer) < self._max_batch and not self._closing:
            remaining = self._last_start + self._linger - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        """Handle `batch` until every message in it is settled, held back only by outages."""
        try:
            await self._settle_all(batch)
        finally:
            # Also when the held messages went with their channel: the broker has them again.
            self._holding = False

    async def _settle_all(self, batch: list[AbstractIncomingMessage]) -> None:
        pending = batch
        backoff = Backoff()
        while True:
            # Messages of a channel that closed cannot be settled; the broker hands them out again.
            pending = [message for message in pending if channel_open(message)]
            if not pending:
                return
            if self._closing:
                await asyncio.gather(*(hand_back(m) for m in pending))
                return
            deliveries = [delivery_of(message) for message in pending]
            verdicts, failure = await self._attempt(deliveries)
            if verdicts is not None:
                for message, delivery, reason in zip(pending, deliveries, verdicts, strict=True):
                    await self._settle(message, delivery, reason)
                log.debug("batch_handled", consumer=self._name, size=len(pending))
                return
            if failure is not None and not is_transient(failure):
                pending = await self._one_by_one(pending)
                if not pending:
                    return
            await self._hold(failure, backoff)

    async def _one_by_one(self, batch: list[AbstractIncomingMessage]) -> list[AbstractIncomingMessage]:
        """After a batch failed for no outage: one message may be the cause, so each is tried alone,
        and one that keeps failing alone is dead-lettered. Returns the messages not yet settled when
        an outage interrupts (held and tried again as a batch)."""
        for index, message in enumerate(batch):
            delivery = delivery_of(message)
            failures = 0
            while True:
                if not channel_open(message):
                    break
                verdicts, failure = await self._attempt([delivery])
                if verdicts is not None:
                    await self._settle(message, delivery, verdicts[0])
                    break
                if failure is None or is_transient(failure):
                    return batch[index:]
                failures += 1
                if failures >= POISON_ATTEMPTS:
                    await self._settle(message, delivery, failure_reason(failure, failures))
                    break
                await asyncio.sleep(RETRY_PAUSE)
        return []

    async def _attempt(self, deliveries: list[Delivery]) -> tuple[Verdicts | None, BaseException | None]:
        """The handler's verdicts, or None and what it raised (logged)."""
        with bound_request_ids(deliveries):
            return await self._attempt_bound(deliveries)

    async def _attempt_bound(
        self, deliveries: list[Delivery]
    ) -> tuple[Verdicts | None, BaseException | None]:
        try:
            verdicts = await self._handler(deliveries)
            if len(verdicts) != len(deliveries):
                raise RuntimeError(f"{len(verdicts)} verdicts for {len(deliveries)} messages")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_transient(exc):
                log.warning("batch_failed_dependency_away", consumer=self._name, reason=repr(exc))
            else:
                log.exception("batch_failed", consumer=self._name, size=len(deliveries))
            return None, exc
        return verdicts, None

    async def _hold(self, failure: BaseException | None, backoff: Backoff) -> None:
        """Keep the batch unacked and wait before trying it again; readiness is off meanwhile."""
        self._holding = True
        pause = backoff.next()
        log.warning("batch_held_dependency_away", consumer=self._name, reason=repr(failure), retry_in=pause)
        await asyncio.sleep(pause)

    async def _settle(self, message: AbstractIncomingMessage, delivery: Delivery, reason: str | None) -> None:
        """Ack a handled message, dead-lettering it first when the handler gave a reason. Each
        message is settled on its own: one that cannot be (its channel closed, the dead-letter
        publish failed) goes back to the queue, and the others are not held up by it."""
        with bound_request_ids([delivery]):
            await self._settle_bound(message, delivery, reason)

    async def _settle_bound(
        self, message: AbstractIncomingMessage, delivery: Delivery, reason: str | None
    ) -> None:
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
            # Back to the queue rather than unacked for the channel's life, holding a prefetch slot.
            log.exception("message_not_settled", consumer=self._name, message_id=delivery.message_id)
            await hand_back(message)
