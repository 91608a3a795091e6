"""The generic stores of shared/modules beyond what the locations tests cover: tombstones (in memory
and in MongoDB), and the MongoDB sender store's cache with several replicas on one database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.tariffs.app import RULES, mongo_stores, updated_of
from shared.contracts.partners import Party
from shared.contracts.tariffs import TariffChanged, TariffUpsert
from shared.modules.memory import MemoryReceiverStore, MemorySenderStore
from shared.modules.mongo import MongoSenderStore
from shared.modules.receiver import ReceiverStore
from shared.modules.sender import OwnWrite, Removed, SenderStore, Window, apply_inputs
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.storage import Document, connect_mongo, service_database
from tests.support.module_service import CommandCounter
from tests.unit.test_tariffs import tariff

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CPO = Party("DE", "CPO")
Stores = tuple[SenderStore[Tariff], ReceiverStore[Tariff]]


@pytest.fixture(params=["memory", "mongo"])
async def stores(request: pytest.FixtureRequest, mongo_url: str, namespace: str) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield MemorySenderStore(updated_of), MemoryReceiverStore()
        return
    client = connect_mongo(mongo_url)
    db = service_database(client, namespace, "tariffs")
    try:
        yield await mongo_stores(db)
    finally:
        await client.drop_database(db.name)
        await client.close()


def write(t: Tariff, version: int | None, event_id: str, removed: bool = False) -> OwnWrite[Tariff]:
    return OwnWrite(t.id, t, version, (event_id,), removed)


async def test_a_tombstone_keeps_its_version_and_leaves_lists_and_counts(stores: Stores) -> None:
    """A removed object is still read (as removed) with its version, is neither paged nor counted, and a
    later write at its version brings it back."""
    own, _ = stores
    assert await own.save_many([write(tariff("T1"), None, "a"), write(tariff("T2"), None, "b")]) == {
        "T1": 1,
        "T2": 1,
    }
    assert await own.save_many([write(tariff("T1", T0 + timedelta(minutes=1)), 1, "c", removed=True)]) == {
        "T1": 2
    }
    record = await own.get("T1")
    assert record is not None and record.removed and record.version == 2
    assert isinstance(record.state, Removed) and record.recent_event_ids == ("a", "c")
    assert [t.id for _, t in await own.page(Window(limit=10))] == ["T2"]
    assert await own.count(None, None) == 1 and await own.count(T0 - timedelta(days=1), None) == 1
    assert await own.save_many([write(tariff("T1", T0 + timedelta(minutes=2)), 2, "d")]) == {"T1": 3}
    back = await own.get("T1")
    assert back is not None and not back.removed and back.version == 3
    assert [t.id for _, t in await own.page(Window(limit=10))] == ["T1", "T2"]
    assert await own.count(None, None) == 2


async def test_partner_tombstones_are_marked_and_continue_the_version(stores: Stores) -> None:
    """A deleted partner object is stored as a marked tombstone; a new PUT continues its version."""
    _, partners = stores
    assert await partners.save(CPO, "T1", tariff(), None) is not None
    deleted = await partners.save(CPO, "T1", Removed(tariff()), 1)
    assert deleted is not None and deleted.removed and deleted.version == 2 and deleted.current is None
    assert await partners.save(CPO, "T1", tariff(), None) is None  # the tombstone still holds the key
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert [(r.key, r.version, r.removed) for r in await partners.unannounced(later, 10)] == [("T1", 2, True)]
    await partners.announced([("DE", "CPO", "T1", 2)])
    assert await partners.unannounced(later, 10) == []
    again = await partners.save(CPO, "T1", tariff(), 2)
    assert again is not None and not again.removed and again.version == 3
    stored = await partners.get(CPO, "T1")
    assert stored is not None and stored.current == tariff()


# ---- the MongoDB sender store's cache, with two replicas ----------------------------------------------


@pytest.fixture
async def replicas(
    mongo_url: str, namespace: str
) -> AsyncIterator[tuple[SenderStore[Tariff], SenderStore[Tariff], CommandCounter]]:
    """Two replicas' stores of our tariffs on one database; the first one's commands are counted."""
    name = f"{namespace}_tariffs"
    counter = CommandCounter(name)
    first_client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[counter]
    )
    second_client = connect_mongo(mongo_url)
    try:
        first, _ = await mongo_stores(first_client[name])
        second, _ = await mongo_stores(second_client[name])
        yield first, second, counter
    finally:
        await first_client.drop_database(name)
        await first_client.close()
        await second_client.close()


async def test_known_objects_are_not_read_again(
    replicas: tuple[SenderStore[Tariff], SenderStore[Tariff], CommandCounter],
) -> None:
    """After creating a tariff, each further change of it is one write and no read."""
    first, _, counter = replicas
    await apply_inputs(first, RULES, [TariffUpsert(event_id="u0", tariff=tariff())])
    before = len(counter.commands)
    for n in range(1, 6):
        await apply_inputs(
            first, RULES, [TariffUpsert(event_id=f"u{n}", tariff=tariff(at=T0 + timedelta(minutes=n)))]
        )
    assert counter.commands[before:] == ["update"] * 5


async def test_a_replica_with_a_stale_copy_reads_again_and_applies_on_the_newer_state(
    replicas: tuple[SenderStore[Tariff], SenderStore[Tariff], CommandCounter],
) -> None:
    """Replica B changes a tariff replica A holds in its cache: A's compare-and-set fails, A reads
    again and applies its input on B's state; an input B applied, redelivered to A, applies once."""
    first, second, _ = replicas
    await apply_inputs(first, RULES, [TariffUpsert(event_id="u1", tariff=tariff())])
    by_b = TariffUpsert(event_id="u2", tariff=tariff(at=T0 + timedelta(minutes=1), price=0.5))
    (event_b,) = (await apply_inputs(second, RULES, [by_b])).events
    assert isinstance(event_b, TariffChanged) and event_b.version == 2
    redelivered = await apply_inputs(first, RULES, [by_b])
    assert redelivered.events == [event_b]  # announced again, not applied again
    by_a = TariffUpsert(event_id="u3", tariff=tariff(at=T0 + timedelta(minutes=2), price=0.7))
    (event_a,) = (await apply_inputs(first, RULES, [by_a])).events
    assert isinstance(event_a, TariffChanged) and event_a.version == 3
    older = TariffUpsert(event_id="u4", tariff=tariff(at=T0 + timedelta(minutes=1, seconds=30)))
    assert (await apply_inputs(second, RULES, [older])).events == []  # B's copy is stale; the guard holds
    record = await second.get("T1")
    assert record is not None and record.version == 3 and record.value == by_a.tariff
    assert isinstance(first, MongoSenderStore)
