"""Locations through faults: the eMSP's gateway down mid-stream, A's locations service killed mid-stream."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from shared.contracts.locations import EvseStatusSet
from tests.conftest import Connection
from tests.support.http import partners
from tests.support.objects import event_id, now, publish
from tests.support.roaming import applied_events, at_b, converged, cpo_broker, seed
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults


def _evse_times(copy: Any) -> dict[str, str]:
    return {e["uid"]: e["last_updated"] for e in (copy or {}).get("evses") or []}


async def test_emsp_gateway_down_during_200_changes(connection: Connection, amqp_url: str) -> None:
    """B converges after its outage, never shows an older state after a newer one; A shows the outage."""
    pair = connection.pair
    ids = await seed(connection, amqp_url, "OUT", 5, 2)
    await asyncio.to_thread(pair.emsp_stack.stop, ("gateway",))
    states: set[str] = set()
    try:
        stamp = now()
        async with cpo_broker(connection, amqp_url) as broker:
            for change in range(200):
                stamp += timedelta(seconds=1)
                await publish(
                    broker,
                    EvseStatusSet(
                        event_id=event_id(),
                        location_id=ids[change % 5],
                        evse_uid=f"E{change % 2}",
                        status="CHARGING" if change % 4 < 2 else "AVAILABLE",
                        at=stamp,
                    ),
                )

        async def out_of_sync() -> bool:
            state = (await partners(pair.cpo))[connection.emsp_at_cpo]["sync_state"]
            states.add(state)
            return state == "OUT_OF_SYNC"

        await eventually(out_of_sync, 60, pause=0.2)
    finally:
        pair.emsp_stack.start_one("gateway")
        await asyncio.to_thread(pair.emsp_stack.wait_ready, 60, ("gateway",))

    # Watch B's copy while it catches up: per EVSE, last_updated never goes backwards.
    seen: dict[tuple[str, str], str] = {}

    async def caught_up() -> bool:
        for location_id in ids:
            for uid, moment in _evse_times(await at_b(connection, location_id)).items():
                previous = seen.get((location_id, uid))
                assert previous is None or moment >= previous, (location_id, uid, previous, moment)
                seen[(location_id, uid)] = moment
        return True

    async def equal_yet() -> bool:
        await caught_up()
        try:
            await converged(connection, ids, seconds=0.1)
        except AssertionError:
            return False
        return True

    await eventually(equal_yet, 90, pause=0.3)
    assert "OUT_OF_SYNC" in states

    async def in_sync() -> bool:
        return (await partners(pair.cpo))[connection.emsp_at_cpo]["sync_state"] == "IN_SYNC"

    await eventually(in_sync, 30, pause=0.3)


async def test_locations_killed_while_1000_events_flow(connection: Connection, amqp_url: str) -> None:
    """SIGKILL mid-stream: after a restart all 1,000 events are applied, none twice, and B equals A."""
    pair = connection.pair
    ids = await seed(connection, amqp_url, "KIL", 100, 10)
    sent: list[str] = []
    async with cpo_broker(connection, amqp_url) as broker:
        # One status change per EVSE: each changes its location, whatever order redelivery brings
        # them in, so each must be stored exactly once.
        for j in range(10):
            for location_id in ids:
                if len(sent) == 300:
                    await asyncio.to_thread(pair.cpo_stack.kill, "locations")
                message = EvseStatusSet(
                    event_id=event_id(),
                    location_id=location_id,
                    evse_uid=f"E{j}",
                    status="CHARGING",
                    at=now(),
                )
                await publish(broker, message)
                sent.append(message.event_id)
    pair.cpo_stack.start_one("locations")
    await asyncio.to_thread(pair.cpo_stack.wait_ready, 60, ("locations",))

    async def all_applied() -> bool:
        applied = await applied_events(connection.pair.mongo_url, connection.pair.cpo.namespace, ids)
        return all(applied[event] for event in sent)

    try:
        await eventually(all_applied, 240, pause=1.0)
    except AssertionError as exc:
        applied = await applied_events(connection.pair.mongo_url, connection.pair.cpo.namespace, ids)
        raise AssertionError(f"{sum(1 for e in sent if applied[e])} of 1000 applied") from exc
    await asyncio.sleep(2)  # anything applied twice would show up now
    applied = await applied_events(connection.pair.mongo_url, connection.pair.cpo.namespace, ids)
    assert [applied[event] for event in sent] == [1] * 1000
    await converged(connection, ids, seconds=120)
