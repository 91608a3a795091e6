"""Locations from A's charger events to B's copy, through every real service of both deployments."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from shared.contracts.locations import EvseRemove, EvseStatusSet, EvseUpsert, LocationUpsert
from shared.messaging.broker import Broker
from tests.conftest import Connection
from tests.support import roaming
from tests.support.objects import event_id, evse, location, now, publish
from tests.support.roaming import at_b, converged
from tests.support.waiting import eventually

STATUSES = ["AVAILABLE", "CHARGING", "BLOCKED", "OUTOFORDER", "INOPERATIVE", "RESERVED"]


@pytest.fixture
async def cpo_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    """A's broker, as the company's charger backend sees it."""
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        yield broker


async def test_evse_status_reaches_the_emsp(connection: Connection, cpo_broker: Broker) -> None:
    """A charger's status event on A's broker shows in B's GET. How fast is a benchmark's question
    (bench/push_latency.py), not a test's: on a loaded machine a timed assert only measures the load."""
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

    await eventually(charging, 10, "the status change at B", pause=0.02)


async def _has(connection: Connection, location_id: str) -> bool:
    return await at_b(connection, location_id) is not None


async def test_random_changes_leave_b_equal_to_a(connection: Connection, cpo_broker: Broker) -> None:
    """500 random changes (locations and EVSEs added, EVSEs removed, statuses flipped): B ends equal to A."""
    rng = random.Random(2026)
    prefix = f"R{event_id()[:6]}"
    evses: dict[str, list[str]] = {}
    # One second apart, ending before now: B's gateway refuses a last_updated > 5 min in the future.
    stamp = now() - timedelta(seconds=600)
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
