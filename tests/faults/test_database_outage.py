"""The database server stops for 30 s while chargers report: no input is dead-lettered or lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from deploy.local_stack import Stack
from shared.contracts.locations import EvseStatusSet, LocationUpsert
from shared.messaging.broker import Broker
from tests.conftest import NAMESPACES
from tests.support.deployments import new_deployment, running
from tests.support.http import request
from tests.support.objects import event_id, location, now, publish
from tests.support.roaming import applied_events, company_broker
from tests.support.servers import StoppableMongo
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults

OUTAGE = 30.0
SERVICES = ("gateway", "locations", "dispatcher")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoppableMongo]:
    server = StoppableMongo(Path(tmp_path_factory.mktemp("mongo")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(amqp_url: str, database: StoppableMongo) -> Iterator[Stack]:
    deployment = new_deployment(amqp_url, database.url, "NL", "CPD", "CPO")
    deployment.extra_env["OCPI_QUEUE_TYPE"] = "quorum"
    NAMESPACES.add(deployment.namespace)
    with running(deployment, "D ", SERVICES) as running_stack:
        yield running_stack


async def _readiness(stack: Stack, service: str) -> int:
    with contextlib.suppress(Exception):
        port = stack.deployment.health_port(service)
        return (await request("GET", f"http://127.0.0.1:{port}/readyz", seconds=4)).status
    return 0


async def _dead_letters(broker: Broker) -> int:
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(broker.topology.dead_letter_queue, passive=True)
        return queue.declaration_result.message_count or 0
    finally:
        await channel.close()


async def test_database_stopped_for_30_seconds_costs_no_input(
    stack: Stack, database: StoppableMongo, amqp_url: str
) -> None:
    """Status changes keep arriving before, during and after a 30 s database outage: every one is
    applied exactly once afterwards, none is dead-lettered, and /readyz of every process answered
    503 while the database was down and 200 again after."""
    namespace = stack.deployment.namespace
    ids = [f"DB{event_id()[:6]}-{i}" for i in range(5)]
    sent: list[str] = []
    readiness: dict[str, list[tuple[str, int]]] = {service: [] for service in SERVICES}
    phase = "before"
    stop = asyncio.Event()

    async def watch_readiness() -> None:
        while not stop.is_set():
            for service in SERVICES:
                readiness[service].append((phase, await _readiness(stack, service)))
            await asyncio.sleep(0.5)

    async with company_broker(amqp_url, namespace) as broker:
        loaded = [LocationUpsert(event_id=event_id(), location=location(i, ["E0"])) for i in ids]
        for upsert in loaded:
            await publish(broker, upsert)
        await eventually(
            lambda: _all_applied(database.url, namespace, ids, [u.event_id for u in loaded]),
            60,
            "locations loaded",
            pause=0.5,
        )
        watcher = asyncio.create_task(watch_readiness())
        stamp = now()

        async def status_changes(count: int) -> None:
            nonlocal stamp
            for n in range(count):
                # Increasing, and never ahead of the clock (inputs stamped in the future are refused).
                stamp = max(stamp + timedelta(milliseconds=1), now())
                message = EvseStatusSet(
                    event_id=event_id(),
                    location_id=ids[n % len(ids)],
                    evse_uid="E0",
                    status="CHARGING" if (len(sent) // len(ids)) % 2 == 0 else "AVAILABLE",
                    at=stamp,
                )
                await publish(broker, message)
                sent.append(message.event_id)
                await asyncio.sleep(0.1)

        try:
            await status_changes(30)
            await asyncio.to_thread(database.stop)
            phase = "down"
            down_since = time.monotonic()
            while time.monotonic() - down_since < OUTAGE:
                await status_changes(10)
            await asyncio.to_thread(database.start)
            phase = "after"
            await status_changes(30)
            await eventually(
                lambda: _all_applied(database.url, namespace, ids, sent), 120, "every input applied", pause=1
            )

            async def all_ready() -> bool:
                return all([await _readiness(stack, service) == 200 for service in SERVICES])

            await eventually(all_ready, 60, "every process ready again", pause=0.5)
        finally:
            stop.set()
            await watcher
        applied = await applied_events(database.url, namespace, ids)
        assert [applied[event] for event in sent] == [1] * len(sent)
        assert await _dead_letters(broker) == 0
    for service in SERVICES:
        seen = readiness[service]
        assert ("down", 503) in seen, f"{service} never answered 503 while the database was down: {seen}"
        assert ("before", 200) in seen, f"{service} was not ready before the outage: {seen}"


async def _all_applied(mongo_url: str, namespace: str, ids: list[str], events: list[str]) -> bool:
    try:
        applied = await applied_events(mongo_url, namespace, ids)
    except Exception:
        return False
    return all(applied[event] for event in events)
