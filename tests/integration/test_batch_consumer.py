"""BatchConsumer on the real broker: batches in queue order, verdicts dead-letter, failures come back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aio_pika.abc import AbstractQueue

from shared.messaging.batch import BatchConsumer, BatchHandler
from shared.messaging.broker import Broker
from shared.messaging.consumer import Delivery
from shared.messaging.headers import ERROR
from shared.messaging.topology import declare_work_queue

pytestmark = pytest.mark.integration

WAIT = 10.0
MAX_BATCH = 8


async def work_queue(broker: Broker, purpose: str) -> AbstractQueue:
    channel = await broker.channel(2 * MAX_BATCH)
    internal = await channel.get_exchange(broker.topology.internal_exchange)
    name = broker.topology.queue("batchtest", purpose)
    return await declare_work_queue(channel, broker.topology, name, [(internal, f"batchtest.{purpose}")])


async def publish(broker: Broker, purpose: str, bodies: list[str]) -> None:
    for body in bodies:
        await broker.publish(broker.exchanges.internal, f"batchtest.{purpose}", body.encode())


async def consume_until(
    broker: Broker, queue: AbstractQueue, handle: BatchHandler, done: asyncio.Event
) -> None:
    """Run a BatchConsumer with `handle` until `done` is set (bounded), then stop it."""
    consumer = BatchConsumer(broker, queue, handle, queue.name, MAX_BATCH)
    await consumer.start()
    try:
        async with asyncio.timeout(WAIT):
            await done.wait()
    finally:
        await consumer.stop()


async def message_count(broker: Broker, name: str) -> int:
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count
        return 0 if count is None else count
    finally:
        await channel.close()


async def test_batches_keep_queue_order_and_every_message_is_acked(broker: Broker) -> None:
    """40 waiting messages are handled in order, in batches of at most MAX_BATCH; none stays behind."""
    queue = await work_queue(broker, "order")
    await publish(broker, "order", [str(n) for n in range(40)])
    seen: list[int] = []
    sizes: list[int] = []
    done = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        sizes.append(len(batch))
        seen.extend(int(d.body) for d in batch)
        if len(seen) >= 40:
            done.set()
        return [None] * len(batch)

    await consume_until(broker, queue, handle, done)
    assert seen == list(range(40))
    assert max(sizes) <= MAX_BATCH and len(sizes) >= 40 // MAX_BATCH
    assert await message_count(broker, queue.name) == 0


async def test_a_verdict_dead_letters_that_message_with_the_reason(broker: Broker) -> None:
    """The handler's reason for one message reaches the dead-letter queue; the others are acked."""
    queue = await work_queue(broker, "poison")
    await publish(broker, "poison", ["good", "bad", "good"])
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        if any(d.body == b"bad" for d in batch):
            handled.set()
        return ["cannot be handled" if d.body == b"bad" else None for d in batch]

    await consume_until(broker, queue, handle, handled)
    channel = await broker.connection.channel()
    dead_letters = await channel.declare_queue(broker.topology.dead_letter_queue, passive=True)
    # The dead letter is published before the batch is acked, so it is there by now.
    message = await dead_letters.get(timeout=WAIT)
    await message.ack()
    await channel.close()
    assert message.body == b"bad" and (message.headers or {}).get(ERROR) == "cannot be handled"
    assert await message_count(broker, queue.name) == 0


async def test_a_failed_batch_is_tried_again_message_by_message(broker: Broker) -> None:
    """When the handler raises for a batch, each of its messages is tried again and handled."""
    queue = await work_queue(broker, "retry")
    await publish(broker, "retry", ["a", "b", "c"])
    attempts: list[list[bytes]] = []
    done = asyncio.Event()
    handled: set[bytes] = set()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        attempts.append([d.body for d in batch])
        if len(attempts) == 1:
            raise RuntimeError("database down")
        handled.update(d.body for d in batch)
        if handled == {b"a", b"b", b"c"}:
            done.set()
        return [None] * len(batch)

    await consume_until(broker, queue, handle, done)
    assert set(attempts[0]) <= {b"a", b"b", b"c"} and attempts[0]
    assert await message_count(broker, queue.name) == 0


async def test_a_message_that_breaks_the_handler_does_not_hold_back_the_others(broker: Broker) -> None:
    """A message the handler always fails on goes back to the queue alone; the rest are handled."""
    queue = await work_queue(broker, "breaks")
    bodies = [str(n) for n in range(12)]
    bodies.insert(5, "breaks")
    await publish(broker, "breaks", bodies)
    handled: list[bytes] = []
    tries = 0
    done = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        nonlocal tries
        if any(d.body == b"breaks" for d in batch):
            tries += 1
            if tries >= 3 and len(handled) == 12:
                done.set()
            raise RuntimeError("a bug this message triggers")
        handled.extend(d.body for d in batch)
        return [None] * len(batch)

    await consume_until(broker, queue, handle, done)
    assert handled == [str(n).encode() for n in range(12)]
    assert await message_count(broker, queue.name) == 1
