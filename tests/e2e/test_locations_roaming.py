"""Locations from A's charger events to B's copy, through every real service of both deployments."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.contracts.locations import EvseRemove, EvseStatusSet, EvseUpsert, LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.conftest import Connection
from tests.support.http import request
from tests.support.objects import comparable, event_id, evse, location, now, publish

STATUSES = ["AVAILABLE", "CHARGING", "BLOCKED", "OUTOFORDER", "INOPERATIVE", "RESERVED"]


@pytest.fixture
async def cpo_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    """A's broker, as the company's charger backend sees it."""
    broker = Broker(amqp_url, Topology(connection.pair.cpo.namespace, queue_type="quorum"))
    await broker.connect()
    yield broker
    await broker.close()


async def at_b(connection: Connection, location_id: str) -> Any:
    """B's copy of one of A's locations (None when B has none), read through B's receiver GET."""
    pair = connection.pair
    party = f"{pair.cpo.country_code}/{pair.cpo.party_id}"
    url = f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations/{party}/{location_id}"
    reply = await request("GET", url, token=connection.cpo_to_emsp_token)
    return reply.data if reply.status_code == 1000 else None


async def at_a(connection: Connection, location_id: str) -> Any:
    """A's own location, read through A's sender GET as B."""
    url = f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/locations/{location_id}"
    reply = await request("GET", url, token=connection.emsp_to_cpo_token)
    assert reply.status_code == 1000, reply
    return reply.data


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, pause: float = 0.05) -> float:
    """Poll until `check` holds; returns how long it took, fails after `seconds`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true after {seconds}s")
        await asyncio.sleep(pause)
    return time.monotonic() - started


async def converged(connection: Connection, location_ids: list[str], seconds: float) -> None:
    async def equal() -> bool:
        for location_id in location_ids:
            if comparable(await at_b(connection, location_id)) != comparable(
                await at_a(connection, location_id)
            ):
                return False
        return True

    await eventually(equal, seconds, pause=0.5)


async def test_evse_status_reaches_the_emsp_within_a_second(
    connection: Connection, cpo_broker: Broker
) -> None:
    """A charger's status event on A's broker shows in B's GET in under a second."""
    location_id = f"LOC-{event_id()[:8]}"
    await publish(
        cpo_broker, LocationUpsert(event_id=event_id(), location=location(location_id, ["E1", "E2"]))
    )
    await eventually(lambda: _has(connection, location_id), 10)

    await publish(
        cpo_broker,
        EvseStatusSet(
            event_id=event_id(), location_id=location_id, evse_uid="E2", status="CHARGING", at=now()
        ),
    )

    async def charging() -> bool:
        copy = await at_b(connection, location_id)
        return any(e["uid"] == "E2" and e["status"] == "CHARGING" for e in copy["evses"])

    took = await eventually(charging, 5, pause=0.02)
    assert took < 1.0, f"took {took:.3f}s"


async def _has(connection: Connection, location_id: str) -> bool:
    return await at_b(connection, location_id) is not None


async def test_random_changes_leave_b_equal_to_a(connection: Connection, cpo_broker: Broker) -> None:
    """500 random changes (locations and EVSEs added, EVSEs removed, statuses flipped): B ends equal to A."""
    rng = random.Random(2026)
    prefix = f"R{event_id()[:6]}"
    evses: dict[str, list[str]] = {}
    stamp = now()
    for change in range(500):
        stamp += timedelta(seconds=1)
        roll = rng.random()
        if not evses or roll < 0.06:
            location_id = f"{prefix}-{len(evses)}"
            evses[location_id] = ["E1"]
            message: Any = LocationUpsert(event_id=event_id(), location=location(location_id, ["E1"], stamp))
        elif roll < 0.2:
            location_id = rng.choice(list(evses))
            uid = f"E{len(evses[location_id]) + 1}"
            evses[location_id].append(uid)
            message = EvseUpsert(event_id=event_id(), location_id=location_id, evse=evse(uid, at=stamp))
        elif roll < 0.27:
            location_id = rng.choice(list(evses))
            uid = rng.choice(evses[location_id])
            message = EvseRemove(event_id=event_id(), location_id=location_id, evse_uid=uid, at=stamp)
        else:
            location_id = rng.choice(list(evses))
            message = EvseStatusSet(
                event_id=event_id(),
                location_id=location_id,
                evse_uid=rng.choice(evses[location_id]),
                status=rng.choice(STATUSES),
                at=stamp,
            )
        await publish(cpo_broker, message)
        del change
    await converged(connection, list(evses), seconds=90)
