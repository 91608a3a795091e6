"""BatchConsumer on the real broker: batches in queue order, verdicts and poison dead-letter alone,
outages hold messages without counting them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence

import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pymongo.errors import AutoReconnect

from shared.messaging.batch import BatchConsumer, BatchHandler
from shared.messaging.broker import Broker
from shared.messaging.consumer import POISON_ATTEMPTS, Delivery
from shared.messaging.headers import ERROR
from shared.messaging.topology import Topology, declare_work_queue
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

WAIT = 10.0
MAX_BATCH = 8


async def work_queue(broker: Broker, purpose: str, prefetch: int = 2 * MAX_BATCH) -> AbstractQueue:
    channel = await broker.channel(prefetch)
    internal = await channel.get_exchange(broker.topology.internal_exchange)
    name = broker.topology.queue("batchtest", purpose)
    return await declare_work_queue(channel, broker.topology, name, [(internal, f"batchtest.{purpose}")])


async def publish(broker: Broker, purpose: str, bodies: list[str]) -> None:
    for body in bodies:
        await broker.publish(broker.exchanges.internal, f"batchtest.{purpose}", body.encode())


async def consume_until(
    broker: Broker,
    queue: AbstractQueue,
    handle: BatchHandler,
    done: asyncio.Event,
    max_batch: int = MAX_BATCH,
) -> None:
    """Run a BatchConsumer with `handle` until `done` is set (bounded), then stop it."""
    consumer = BatchConsumer(broker, queue, handle, queue.name, max_batch)
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


async def dead_letters(broker: Broker, count: int) -> list[AbstractIncomingMessage]:
    """Take `count` messages from the dead-letter queue (bounded wait for each)."""
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(broker.topology.dead_letter_queue, passive=True)
        taken = []
        for _ in range(count):
            message = await eventually_get(queue)
            await message.ack()
            taken.append(message)
        return taken
    finally:
        await channel.close()


async def eventually_get(queue: AbstractQueue) -> AbstractIncomingMessage:
    async with asyncio.timeout(WAIT):
        while True:
            message = await queue.get(fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.05)


async def test_a_message_that_breaks_the_handler_is_dead_lettered_alone(broker: Broker) -> None:
    """A message the handler always fails on is dead-lettered with its reason; the rest are handled
    in order and nothing stays in the queue."""
    queue = await work_queue(broker, "breaks")
    bodies = [str(n) for n in range(12)]
    bodies.insert(5, "breaks")
    await publish(broker, "breaks", bodies)
    handled: list[bytes] = []
    done = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        if any(d.body == b"breaks" for d in batch):
            raise RuntimeError("a bug this message triggers")
        handled.extend(d.body for d in batch)
        if len(handled) == 12:
            done.set()
        return [None] * len(batch)

    await consume_until(broker, queue, handle, done)
    assert handled == [str(n).encode() for n in range(12)]
    [poison] = await dead_letters(broker, 1)
    assert poison.body == b"breaks"
    reason = str((poison.headers or {}).get(ERROR))
    assert reason.startswith(f"failed {POISON_ATTEMPTS} times") and "a bug this message triggers" in reason
    assert await message_count(broker, queue.name) == 0


@pytest.fixture(params=["classic", "quorum"])
async def any_broker(request: pytest.FixtureRequest, amqp_url: str, namespace: str) -> AsyncIterator[Broker]:
    """A broker whose queues are classic or quorum (with its delivery limit), as production runs."""
    b = Broker(amqp_url, Topology(namespace, queue_type=request.param))
    await b.connect()
    yield b
    await b.close()


async def test_poison_among_many_in_one_batch_is_dead_lettered_alone(any_broker: Broker) -> None:
    """Three poison messages in a row among 197 good ones in one batch: the 197 are handled, each
    poison is dead-lettered on its own, and no good message is handed back untried."""
    broker = any_broker
    queue = await work_queue(broker, "many", prefetch=400)
    bodies = [str(n) for n in range(197)]
    bodies[100:100] = ["poison-1", "poison-2", "poison-3"]
    await publish(broker, "many", bodies)
    handled: set[bytes] = set()
    attempts: dict[bytes, int] = {}
    redelivered: set[bytes] = set()
    done = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        for d in batch:
            attempts[d.body] = attempts.get(d.body, 0) + 1
            if d.redelivered:
                redelivered.add(d.body)
        if any(d.body.startswith(b"poison") for d in batch):
            raise RuntimeError("cannot store this one")
        handled.update(d.body for d in batch)
        if len(handled) == 197:
            done.set()
        return [None] * len(batch)

    await consume_until(broker, queue, handle, done, max_batch=200)
    assert handled == {str(n).encode() for n in range(197)}
    poisons = await dead_letters(broker, 3)
    assert sorted(m.body for m in poisons) == [b"poison-1", b"poison-2", b"poison-3"]
    assert await message_count(broker, queue.name) == 0
    # Every good message went through at most once in a failed batch and once more on its own, and
    # none was handed back to the broker (which counts deliveries towards a quorum queue's limit).
    assert max(n for body, n in attempts.items() if not body.startswith(b"poison")) <= 2
    assert redelivered == set()


async def test_an_outage_holds_the_batch_without_dead_lettering_it(any_broker: Broker) -> None:
    """While the handler fails because the database is away, the batch is held and tried again until
    it goes through: nothing is dead-lettered, however many tries the outage takes."""
    broker = any_broker
    queue = await work_queue(broker, "outage")
    await publish(broker, "outage", ["a", "b", "c"])
    failures = 0
    done = asyncio.Event()
    handled: set[bytes] = set()
    redelivered: set[bytes] = set()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        nonlocal failures
        redelivered.update(d.body for d in batch if d.redelivered)
        if failures < POISON_ATTEMPTS + 1:
            failures += 1
            raise AutoReconnect("database away")
        handled.update(d.body for d in batch)
        if handled == {b"a", b"b", b"c"}:
            done.set()
        return [None] * len(batch)

    await consume_until(broker, queue, handle, done)
    assert handled == {b"a", b"b", b"c"} and failures == POISON_ATTEMPTS + 1
    assert redelivered == set(), "held messages must not go back to the broker"
    assert await message_count(broker, queue.name) == 0
    assert await message_count(broker, broker.topology.dead_letter_queue) == 0


async def test_readiness_is_off_while_a_batch_is_held_and_back_after(broker: Broker) -> None:
    """A consumer holding a batch for an outage is not ready; once the batch goes through it is."""
    queue = await work_queue(broker, "ready")
    outage = asyncio.Event()
    outage.set()
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        if outage.is_set():
            raise AutoReconnect("database away")
        handled.set()
        return [None] * len(batch)

    consumer = BatchConsumer(broker, queue, handle, queue.name, MAX_BATCH)
    await consumer.start()
    try:
        assert await consumer.ready()
        await publish(broker, "ready", ["a"])

        async def not_ready() -> bool:
            return not await consumer.ready()

        await eventually(not_ready, WAIT, "not ready while holding")
        outage.clear()
        async with asyncio.timeout(WAIT):
            await handled.wait()
        await eventually(consumer.ready, WAIT, "ready again")
    finally:
        await consumer.stop()


async def test_with_linger_a_steady_stream_makes_fewer_larger_batches(broker: Broker) -> None:
    """A message after a quiet spell is handled at once; under a stream, batches start at least
    `linger` apart and gather what came meanwhile."""
    queue = await work_queue(broker, "linger", prefetch=64)
    linger = 0.5
    starts: list[tuple[float, int]] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handle(batch: Sequence[Delivery]) -> list[str | None]:
        starts.append((loop.time(), len(batch)))
        if sum(size for _, size in starts) >= 21:
            done.set()
        return [None] * len(batch)

    consumer = BatchConsumer(broker, queue, handle, queue.name, 32, linger=linger)
    await consumer.start()
    try:
        published = loop.time()
        await publish(broker, "linger", ["first"])
        await eventually(lambda: len(starts) == 1, WAIT, "the first message")
        assert starts[0][0] - published < linger / 2, "a message after a quiet spell waited"
        for n in range(20):  # one every 50 ms for a second
            await publish(broker, "linger", [str(n)])
            await asyncio.sleep(0.05)
        async with asyncio.timeout(WAIT):
            await done.wait()
    finally:
        await consumer.stop()
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(starts)]
    assert gaps and all(gap >= linger * 0.9 for gap in gaps), gaps
    # 21 messages, in fewer batches than messages: what came during a linger went together.
    assert sum(size for _, size in starts) == 21 and len(starts) < 21, starts
