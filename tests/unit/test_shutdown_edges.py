"""Shutdown with the broker away (security review L14): a consumer whose cancel fails still stops,
and one component that cannot stop does not keep the others from stopping."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiormq.exceptions import ChannelInvalidStateError

from shared.messaging.batch import BatchConsumer
from shared.messaging.consumer import Consumer, Delivery
from shared.service import stop_all


class AwayQueue:
    """A queue whose broker went away: consuming worked, cancelling fails as aio-pika fails then."""

    name = "away"

    def __init__(self) -> None:
        self.cancels = 0

    async def consume(self, callback: Callable[[Any], Awaitable[None]]) -> str:
        return "ctag-1"

    async def cancel(self, tag: str) -> None:
        self.cancels += 1
        raise ChannelInvalidStateError("No active transport in channel")


async def _handler(_: Delivery) -> None:
    pass


async def _batch_handler(deliveries: Sequence[Delivery]) -> list[str | None]:
    return [None] * len(deliveries)


async def test_a_consumer_whose_cancel_fails_still_stops() -> None:
    queue = AwayQueue()
    consumer = Consumer(None, queue, _handler, "away")  # type: ignore[arg-type]
    await consumer.start()
    with structlog.testing.capture_logs() as logs:
        await consumer.stop(grace=0.1)
    assert queue.cancels == 1
    assert [line["event"] for line in logs] == ["consumer_cancel_failed"]
    assert not await consumer.ready()


async def test_a_batch_consumer_whose_cancel_fails_still_stops_its_runner() -> None:
    queue = AwayQueue()
    consumer = BatchConsumer(None, queue, _batch_handler, "away", max_batch=4)  # type: ignore[arg-type]
    await consumer.start()
    with structlog.testing.capture_logs() as logs:
        await consumer.stop(grace=0.1)
    assert queue.cancels == 1
    assert [line["event"] for line in logs] == ["consumer_cancel_failed"]
    assert consumer._runner is None


class Component:
    def __init__(self, name: str, stopped: list[str], fails: bool = False) -> None:
        self.name = name
        self._stopped = stopped
        self._fails = fails

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._stopped.append(self.name)
        if self._fails:
            raise ConnectionError("broker away")


async def test_one_component_that_cannot_stop_does_not_skip_the_others() -> None:
    """Components stop in reverse start order; the one that raises is logged, the rest still stop."""
    stopped: list[str] = []
    components = [
        Component("first", stopped),
        Component("middle", stopped, fails=True),
        Component("last", stopped),
    ]
    with structlog.testing.capture_logs() as logs:
        await stop_all(components)
    assert stopped == ["last", "middle", "first"]
    [failed] = [line for line in logs if line["event"] == "component_stop_failed"]
    assert failed["component"] == "Component" and failed["log_level"] == "error"
