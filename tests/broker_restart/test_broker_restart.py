"""A full RabbitMQ restart during a steady stream of charger events and partner calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

import pytest

from deploy.local_stack import SERVICES
from shared.contracts.locations import EvseStatusSet
from shared.messaging.broker import Broker
from tests.conftest import Connection
from tests.support.http import request
from tests.support.objects import event_id, now, publish
from tests.support.rabbit import restart_broker
from tests.support.roaming import applied_events, converged, cpo_broker, seed
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults


async def _ready(port: int) -> int:
    with contextlib.suppress(Exception):
        return (await request("GET", f"http://127.0.0.1:{port}/readyz", seconds=4)).status
    return 0


async def test_rabbitmq_restart_during_traffic(connection: Connection, amqp_url: str) -> None:
    """The broker node is shut down and started again while A's chargers report and B calls A: every
    process of both deployments recovers without a restart, every charger event the broker confirmed
    is applied exactly once, B ends equal to A, and /readyz went 503 and came back to 200."""
    pair = connection.pair
    ids = await seed(connection, amqp_url, "RST", 4, 1)
    url = f"{pair.cpo.public_url}/ocpi/cpo/2.1.1/locations/{ids[0]}"
    sent: list[str] = []
    answers: Counter[str] = Counter()
    readiness: Counter[tuple[str, int]] = Counter()
    phase = "before"
    stop = asyncio.Event()
    ports = {
        f"{label}{service}": deployment.health_port(service)
        for label, deployment in (("A.", pair.cpo), ("B.", pair.emsp))
        for service in SERVICES
    }

    async def chargers(broker: Broker) -> None:
        flips: Counter[str] = Counter()
        stamp = now()
        while not stop.is_set():
            location_id = ids[sum(flips.values()) % len(ids)]
            flips[location_id] += 1
            stamp += timedelta(seconds=1)
            message = EvseStatusSet(
                event_id=event_id(),
                location_id=location_id,
                evse_uid="E0",
                status="CHARGING" if flips[location_id] % 2 else "AVAILABLE",
                at=stamp,
            )
            # A charger backend retries until the broker confirms; only confirmed events count.
            while not stop.is_set():
                try:
                    await publish(broker, message)
                except Exception:
                    await asyncio.sleep(0.5)
                    continue
                sent.append(message.event_id)
                break
            await asyncio.sleep(0.1)

    async def partner_calls() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                reply = await request("GET", url, token=connection.emsp_to_cpo_token, seconds=5)
                answers[f"{phase}:{reply.status}"] += 1
            await asyncio.sleep(0.2)

    async def watch_readiness() -> None:
        while not stop.is_set():
            for port in ports.values():
                readiness[(phase, await _ready(port))] += 1
            await asyncio.sleep(0.5)

    async with cpo_broker(connection, amqp_url) as broker:
        tasks = [
            asyncio.create_task(chargers(broker)),
            asyncio.create_task(partner_calls()),
            asyncio.create_task(watch_readiness()),
        ]
        try:
            await asyncio.sleep(5)
            phase = "restart"
            await asyncio.to_thread(restart_broker)
            phase = "after"

            async def all_ready() -> bool:
                return all([await _ready(port) == 200 for port in ports.values()])

            await eventually(all_ready, 60, "every process of A and B ready again", pause=0.5)
            await asyncio.sleep(5)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def all_applied() -> bool:
        applied = await applied_events(pair.mongo_url, pair.cpo.namespace, ids)
        return all(applied[event] for event in sent)

    await eventually(all_applied, 60, "every confirmed charger event applied", pause=0.5)
    applied = await applied_events(pair.mongo_url, pair.cpo.namespace, ids)
    assert [applied[event] for event in sent] == [1] * len(sent)
    await converged(connection, ids, seconds=60)
    assert readiness[("restart", 503)] > 0, f"/readyz never answered 503 during the restart: {readiness}"
    assert answers["after:200"] > 0, f"B's calls did not succeed after the restart: {answers}"
