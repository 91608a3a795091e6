"""Reading both sides of a CPO -> eMSP locations connection, for the end-to-end and fault tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient

from shared.contracts.locations import LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.conftest import Connection
from tests.support.http import request
from tests.support.objects import comparable, event_id, location, publish
from tests.support.waiting import eventually


@asynccontextmanager
async def company_broker(amqp_url: str, namespace: str) -> AsyncIterator[Broker]:
    """A deployment's broker, as the company's systems (a charger backend) see it."""
    broker = Broker(amqp_url, Topology(namespace, queue_type="quorum"))
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


def cpo_broker(connection: Connection, amqp_url: str) -> AbstractAsyncContextManager[Broker]:
    """A's broker, as the company's charger backend sees it."""
    return company_broker(amqp_url, connection.pair.cpo.namespace)


async def stored_at_b(connection: Connection, location_id: str) -> int:
    """How many copies of a location id B's locations service holds (test oracle)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(connection.pair.mongo_url)
    try:
        database = client[f"{connection.pair.emsp.namespace}_locations"]
        return await database["partner_locations"].count_documents({"id": location_id})
    finally:
        await client.close()


async def at_b(connection: Connection, location_id: str) -> Any:
    """B's copy of one of A's locations (None when B has none), read through B's receiver GET."""
    pair = connection.pair
    party = f"{pair.cpo.country_code}/{pair.cpo.party_id}"
    url = f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations/{party}/{location_id}"
    reply = await request("GET", url, token=connection.cpo_to_emsp_token)
    return reply.data if reply.status_code == 1000 else None


async def tariff_at_b(connection: Connection, tariff_id: str) -> Any:
    """B's copy of one of A's tariffs (None when B has none), read through B's receiver GET."""
    pair = connection.pair
    party = f"{pair.cpo.country_code}/{pair.cpo.party_id}"
    url = f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/tariffs/{party}/{tariff_id}"
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


async def seed(connection: Connection, amqp_url: str, prefix: str, locations: int, evses: int) -> list[str]:
    """Load `locations` locations of `evses` EVSEs each at A and wait until B has them all."""
    ids = [f"{prefix}{event_id()[:6]}-{i}" for i in range(locations)]
    async with cpo_broker(connection, amqp_url) as broker:
        for location_id in ids:
            made = location(location_id, [f"E{j}" for j in range(evses)])
            await publish(broker, LocationUpsert(event_id=event_id(), location=made))

    async def all_at_b() -> bool:
        return all([await at_b(connection, location_id) is not None for location_id in ids])

    await eventually(all_at_b, 90, pause=1.0)
    return ids


async def applied_events(mongo_url: str, namespace: str, ids: list[str]) -> Counter[str]:
    """How often each input event id is stored with a deployment's own locations (test oracle, read
    from its database).

    A location stores the ids of the inputs that changed it with each new version; an input applied
    twice would be there twice. Several inputs applied together make one version, so versions do
    not count inputs.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        database = client[f"{namespace}_locations"]
        cursor = database["own_locations"].find({"_id": {"$in": ids}}, {"recent_event_ids": 1})
        return Counter(event for doc in await cursor.to_list() for event in doc["recent_event_ids"])
    finally:
        await client.close()
