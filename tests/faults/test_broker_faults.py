"""Broker connections closed by the broker, again and again, while partners call and chargers report."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

import pytest

from shared.contracts.locations import EvseStatusSet
from shared.messaging.broker import Broker
from tests.conftest import Connection
from tests.support.http import request
from tests.support.objects import event_id, now, publish
from tests.support.rabbit import close_connections
from tests.support.roaming import applied_events, at_b, converged, cpo_broker, seed
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults

ROUNDS = 3
# "Within a few seconds": aio-pika reconnects every RECONNECT_INTERVAL (2 s); allow for a busy machine.
RECOVERY = 20.0


async def _ready(connection: Connection, service: str) -> bool:
    port = connection.pair.cpo.health_port(service)
    with contextlib.suppress(Exception):
        reply = await request("GET", f"http://127.0.0.1:{port}/readyz", seconds=3)
        return reply.status == 200
    return False


async def test_each_process_survives_its_connection_closed_three_times(
    connection: Connection, amqp_url: str
) -> None:
    """Gateway, locations and dispatcher of A each lose their broker connection three times in a row
    while B crawls A's locations and A's chargers report: after each close B's calls answer 200 again
    and a fresh status change reaches B within seconds; every charger event is applied exactly once
    and B ends equal to A."""
    pair = connection.pair
    ids = await seed(connection, amqp_url, "BRK", 4, 2)
    url = f"{pair.cpo.public_url}/ocpi/cpo/2.1.1/locations/{ids[0]}"
    answers: Counter[int] = Counter()
    sent: list[str] = []
    stamp = now()
    stop = asyncio.Event()
    probes = 0

    async def partner_calls() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                reply = await request("GET", url, token=connection.emsp_to_cpo_token, seconds=5)
                answers[reply.status] += 1
            await asyncio.sleep(0.1)

    async def status_change(broker_: Broker, location_id: str, status: str) -> str:
        nonlocal stamp
        stamp += timedelta(seconds=1)
        message = EvseStatusSet(
            event_id=event_id(), location_id=location_id, evse_uid="E0", status=status, at=stamp
        )
        await publish(broker_, message)
        sent.append(message.event_id)
        return message.at.strftime("%Y-%m-%dT%H:%M:%SZ")

    async def chargers(broker_: Broker) -> None:
        flips: Counter[str] = Counter()
        while not stop.is_set():
            location_id = ids[2 + sum(flips.values()) % 2]
            flips[location_id] += 1
            # Each location's status flips on each of its turns (from AVAILABLE), so every event
            # changes it and is stored with it.
            status = "CHARGING" if flips[location_id] % 2 else "AVAILABLE"
            with contextlib.suppress(Exception):
                await status_change(broker_, location_id, status)
            await asyncio.sleep(0.2)

    async with cpo_broker(connection, amqp_url) as broker:
        background = [asyncio.create_task(partner_calls()), asyncio.create_task(chargers(broker))]
        try:
            for service in ("gateway", "locations", "dispatcher"):
                for round_ in range(ROUNDS):
                    what = f"{service}, close {round_ + 1}"
                    closed = await asyncio.to_thread(close_connections, f"{pair.cpo.namespace}:{service}")
                    assert closed >= 1, f"{what}: no connection of {service} found"

                    async def partner_call_ok() -> bool:
                        reply = await request("GET", url, token=connection.emsp_to_cpo_token, seconds=5)
                        return reply.status == 200 and reply.status_code == 1000

                    await eventually(partner_call_ok, RECOVERY, f"{what}: B's call answered 200", pause=0.3)
                    await eventually(
                        lambda s=service: _ready(connection, s), RECOVERY, f"{what}: ready", pause=0.3
                    )
                    probes += 1
                    status = "CHARGING" if probes % 2 else "BLOCKED"
                    moment = await status_change(broker, ids[1], status)

                    async def pushed(moment: str = moment) -> bool:
                        copy = await at_b(connection, ids[1])
                        evses = {e["uid"]: e for e in (copy or {}).get("evses") or []}
                        return "E0" in evses and evses["E0"]["last_updated"] >= moment

                    await eventually(pushed, RECOVERY, f"{what}: the status change reached B", pause=0.3)
        finally:
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)

    async def all_applied() -> bool:
        applied = await applied_events(connection.pair.mongo_url, connection.pair.cpo.namespace, ids)
        return all(applied[event] for event in sent)

    try:
        await eventually(all_applied, 60, "every charger event applied", pause=0.5)
    except AssertionError as exc:
        applied = await applied_events(connection.pair.mongo_url, connection.pair.cpo.namespace, ids)
        missing = [event for event in sent if not applied[event]]
        raise AssertionError(f"{len(missing)} of {len(sent)} charger events not applied") from exc
    applied = await applied_events(connection.pair.mongo_url, connection.pair.cpo.namespace, ids)
    assert [applied[event] for event in sent] == [1] * len(sent)
    await converged(connection, ids, seconds=60)
    assert answers[200] > 0
