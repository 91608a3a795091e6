"""Reading both sides of a CPO -> eMSP locations connection, for the end-to-end and fault tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.conftest import Connection
from tests.support.http import request
from tests.support.objects import comparable
from tests.support.waiting import eventually


@asynccontextmanager
async def cpo_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    """A's broker, as the company's charger backend sees it."""
    broker = Broker(amqp_url, Topology(connection.pair.cpo.namespace, queue_type="quorum"))
    await broker.connect()
    try:
        yield broker
    finally:
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


async def converged(connection: Connection, location_ids: list[str], seconds: float) -> None:
    """Wait until B's copy of every location equals A's."""

    async def equal() -> bool:
        for location_id in location_ids:
            if comparable(await at_b(connection, location_id)) != comparable(
                await at_a(connection, location_id)
            ):
                return False
        return True

    await eventually(equal, seconds, pause=0.5)
