"""The stores of the locations service, in memory and in MongoDB (the fixtures' server): one contract.

Tests that look at MongoDB itself (indexes, query plans, the counter document) run on MongoDB only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from services.locations.mongo import OWN, mongo_repository
from services.locations.repository import Repository, in_memory_repository
from shared.contracts.partners import Party
from shared.modules.mongo import MongoSenderStore
from shared.modules.sender import RECENT_EVENTS, OwnRecord, OwnWrite, Window
from shared.ocpi.v2_1_1.locations import EVSE, Connector, Location, Status
from shared.storage import connect_mongo, service_database

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def location(lid: str, at: datetime = T0, status: Status = Status.AVAILABLE) -> Location:
    connector = Connector(
        id="1", standard="IEC_62196_T2", format="SOCKET", power_type="AC_3_PHASE",  # type: ignore[arg-type]
        voltage=230, amperage=32, last_updated=at,
    )  # fmt: skip
    return msgspec.convert(
        {"id": lid, "type": "ON_STREET", "address": "Main 1", "city": "Utrecht", "postal_code": "3511",
         "country": "NLD", "coordinates": {"latitude": "52.090000", "longitude": "5.120000"},
         "evses": [EVSE(uid="E1", status=status, connectors=[connector], last_updated=at)],
         "last_updated": at},
        Location,
    )  # fmt: skip


@pytest.fixture
async def mongo_repo(mongo_url: str, namespace: str) -> AsyncIterator[Repository]:
    """The MongoDB repository, for the tests that look at MongoDB itself (indexes, plans, counters)."""
    client = connect_mongo(mongo_url)
    db = service_database(client, namespace, "locations")
    try:
        yield await mongo_repository(db)
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest.fixture(params=["memory", "mongo"])
async def repo(request: pytest.FixtureRequest, mongo_url: str, namespace: str) -> AsyncIterator[Repository]:
    """Both stores: every contract test runs against the in-memory twin and MongoDB."""
    if request.param == "memory":
        yield in_memory_repository()
        return
    client = connect_mongo(mongo_url)
    db = service_database(client, namespace, "locations")
    try:
        yield await mongo_repository(db)
    finally:
        await client.drop_database(db.name)
        await client.close()


DE = Party("DE", "CPO")


def mongo_only(repo: Repository) -> MongoSenderStore[Location]:
    """The MongoDB store of our locations."""
    assert isinstance(repo.own, MongoSenderStore)
    return repo.own


def write(changed: Location, version: int | None, *event_ids: str) -> OwnWrite[Location]:
    return OwnWrite(changed.id, changed, version, event_ids)


async def add(repo: Repository, new: Location, event_id: str) -> OwnRecord[Location] | None:
    """Store a new location alone; its record, or None when it exists already."""
    saved = await repo.own.save_many([write(new, None, event_id)])
    return await repo.own.get(new.id) if saved == {new.id: 1} else None


async def update(repo: Repository, changed: Location, version: int, *event_ids: str) -> int | None:
    """Store a new state alone; its version, or None when the precondition failed."""
    saved = await repo.own.save_many([write(changed, version, *event_ids)])
    return saved.get(changed.id)


async def test_own_round_trip_keeps_the_ocpi_object(repo: Repository) -> None:
    """A stored location reads back equal, datetimes as aware UTC, with version 1 and its event id."""
    stored = await add(repo, location("L1"), "e1")
    assert stored is not None
    record = await repo.own.get("L1")
    assert record is not None
    assert record.value == location("L1") and record.value.last_updated.tzinfo is not None
    assert (record.version, record.recent_event_ids) == (1, ("e1",))


async def test_own_add_twice_fails_and_creation_order_grows(repo: Repository) -> None:
    """The unique _id refuses a second insert; created_seq grows with each creation."""
    first = await add(repo, location("L1"), "e1")
    assert await add(repo, location("L1"), "e2") is None
    second = await add(repo, location("L2"), "e3")
    assert first is not None and second is not None and second.created_seq > first.created_seq


async def test_concurrent_creations_get_distinct_increasing_seqs(repo: Repository) -> None:
    """The $inc counter hands out a distinct created_seq to each of many concurrent creations."""
    records = await asyncio.gather(*(add(repo, location(f"L{i}"), f"e{i}") for i in range(20)))
    seqs = [record.created_seq for record in records if record is not None]
    assert len(seqs) == 20 and len(set(seqs)) == 20
    page = await repo.own.page(Window(limit=50))
    assert [seq for seq, _ in page] == sorted(seqs)


async def test_own_update_is_compare_and_set_on_version(repo: Repository) -> None:
    """An update applies only at the expected version, and remembers its event ids with it."""
    await add(repo, location("L1"), "e1")
    charging = location("L1", T0 + timedelta(minutes=1), Status.CHARGING)
    assert await update(repo, charging, 1, "e2", "e3") == 2
    assert await update(repo, charging, 1, "e4") is None  # version moved on
    record = await repo.own.get("L1")
    assert record is not None and record.version == 2 and record.value == charging
    assert record.recent_event_ids == ("e1", "e2", "e3")


async def test_one_bulk_write_decides_each_write_on_its_own(repo: Repository) -> None:
    """New, existing, current and outdated writes in one batch: exactly the valid ones are stored."""
    await add(repo, location("L1"), "e1")
    await add(repo, location("L2"), "e2")
    await update(repo, location("L2", T0 + timedelta(minutes=1)), 1, "e3")
    later = T0 + timedelta(minutes=5)
    writes = [
        write(location("L3", later), None, "n1"),  # new: stored
        write(location("L1", later), None, "n2"),  # exists: refused
        write(location("L1", later), 1, "n3"),  # current: stored
        write(location("L2", later), 1, "n4"),  # outdated: refused
        write(location("L4", later), None, "n5"),  # new: stored
    ]
    assert await repo.own.save_many(writes) == {"L3": 1, "L1": 2, "L4": 1}
    records = await repo.own.get_many(["L1", "L2", "L3", "L4", "L5"])
    assert {k: (r.version, r.value.last_updated) for k, r in records.items()} == {
        "L1": (2, later),
        "L2": (2, T0 + timedelta(minutes=1)),
        "L3": (1, later),
        "L4": (1, later),
    }
    assert records["L3"].created_seq < records["L4"].created_seq


async def test_a_lost_race_is_told_apart_when_the_winner_applied_the_same_input(repo: Repository) -> None:
    """Another replica stored the same input (X) first: this write lost, though X is remembered."""
    await add(repo, location("L1"), "e1")
    await add(repo, location("L2"), "e2")
    assert await update(repo, location("L1", T0 + timedelta(minutes=1)), 1, "X", "Z") == 2
    writes = [
        write(location("L1", T0 + timedelta(minutes=2)), 1, "X", "Y"),
        write(location("L2", T0 + timedelta(minutes=2)), 1, "W"),
    ]
    assert await repo.own.save_many(writes) == {"L2": 2}
    record = await repo.own.get("L1")
    assert record is not None and record.value.last_updated == T0 + timedelta(minutes=1)


async def test_recent_event_ids_stay_bounded(mongo_repo: Repository) -> None:
    """$push with $slice keeps only the newest event ids."""
    repo = mongo_repo
    record = await add(repo, location("L1"), "e0")
    assert record is not None
    collection = mongo_only(repo).collection
    ids = [f"x{i}" for i in range(RECENT_EVENTS + 5)]
    await collection.update_one({"_id": "L1"}, {"$set": {"recent_event_ids": ids[:-2]}})
    assert await update(repo, location("L1"), record.version, *ids[-2:]) == 2
    record = await repo.own.get("L1")
    assert record is not None and record.recent_event_ids == tuple(ids[-RECENT_EVENTS:])


async def test_pages_by_keyset_offset_and_dates(repo: Repository) -> None:
    """Keyset and offset pages follow creation order; date_from is inclusive and date_to exclusive."""
    for i in range(6):
        await add(repo, location(f"L{i}", T0 + timedelta(minutes=i)), f"e{i}")
    first = await repo.own.page(Window(limit=3))
    assert [loc.id for _, loc in first] == ["L0", "L1", "L2"]
    after = await repo.own.page(Window(limit=3, offset=99, after_seq=first[-1][0]))
    assert [loc.id for _, loc in after] == ["L3", "L4", "L5"]
    skipped = await repo.own.page(Window(limit=2, offset=4))
    assert [loc.id for _, loc in skipped] == ["L4", "L5"]
    window = Window(limit=10, date_from=T0 + timedelta(minutes=1), date_to=T0 + timedelta(minutes=4))
    assert [loc.id for _, loc in await repo.own.page(window)] == ["L1", "L2", "L3"]
    assert await repo.own.count(window.date_from, window.date_to) == 3
    assert await repo.own.count(None, None) == 6


def _stages(plan: object) -> list[str]:
    if isinstance(plan, dict):
        own = [plan["stage"]] if isinstance(plan.get("stage"), str) else []
        return own + [stage for value in plan.values() for stage in _stages(value)]
    if isinstance(plan, list):
        return [stage for value in plan for stage in _stages(value)]
    return []


async def test_keyset_page_is_an_index_range_scan(mongo_repo: Repository) -> None:
    """A page after a cursor is read by an index scan of created_seq: no skip and no in-memory sort."""
    repo = mongo_repo
    own = mongo_only(repo)
    for i in range(30):
        await add(repo, location(f"L{i}"), f"e{i}")
    plan = (await own.page_cursor(Window(limit=5, offset=25, after_seq=25), upto=30).explain())[
        "queryPlanner"
    ]
    stages = _stages(plan["winningPlan"])
    assert "IXSCAN" in stages and "SKIP" not in stages and "SORT" not in stages, stages


async def test_keyset_pages_cross_gaps_in_creation_numbers(mongo_repo: Repository) -> None:
    """Creation numbers far apart (numbers taken by failed creations): pages still fill up, in order,
    with and without a date filter, and end at the last location."""
    repo = mongo_repo
    collection = mongo_only(repo).counters
    for i in range(12):
        await add(repo, location(f"L{i:02d}", T0 + timedelta(minutes=i % 3)), f"e{i}")
        await collection.update_one({"_id": OWN}, {"$inc": {"seq": 37 * i}})
    seen: list[str] = []
    after = None
    while True:
        page = await repo.own.page(Window(limit=5, after_seq=after))
        seen += [loc.id for _, loc in page]
        if len(page) < 5:
            break
        after = page[-1][0]
    assert seen == [f"L{i:02d}" for i in range(12)]
    late = Window(limit=3, after_seq=0, date_from=T0 + timedelta(minutes=2))
    assert [loc.id for _, loc in await repo.own.page(late)] == ["L02", "L05", "L08"]


async def test_count_of_all_locations_follows_every_creation(repo: Repository) -> None:
    """The count of all locations, kept between pages, is exact again right after a creation."""
    assert await repo.own.count(None, None) == 0
    await add(repo, location("L1"), "e1")
    assert await repo.own.count(None, None) == 1
    assert await repo.own.count(None, None) == 1
    await add(repo, location("L2"), "e2")
    assert await repo.own.count(None, None) == 2


async def test_partner_changes_stay_marked_until_announced(repo: Repository) -> None:
    """Every stored partner change is marked; clearing needs its version; the sweep query finds
    the marks older than a time, oldest first."""
    partners = repo.partners
    first = await partners.save(DE, "P1", location("P1"), None)
    await partners.save(DE, "P2", location("P2"), None)
    assert first is not None
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert [r.value.id for r in await partners.unannounced(later, 10)] == ["P1", "P2"]
    changed = await partners.save(DE, "P1", location("P1", T0 + timedelta(minutes=1)), 1)
    assert changed is not None and changed.version == 2
    await partners.announced([("DE", "CPO", "P1", 1), ("DE", "CPO", "P2", 1)])
    assert [(r.value.id, r.version) for r in await partners.unannounced(later, 10)] == [("P1", 2)]
    assert await partners.unannounced(datetime.now(UTC) - timedelta(minutes=1), 10) == []
    await partners.announced([("DE", "CPO", "P1", 2)])
    assert await partners.unannounced(later, 10) == []


async def test_indexes_exist(mongo_repo: Repository) -> None:
    """created_seq (unique) and last_updated are indexed for the pull API."""
    repo = mongo_repo
    collection = mongo_only(repo).collection
    keys = [dict(index["key"]) for index in (await collection.index_information()).values()]
    assert {"created_seq": 1} in keys and {"last_updated": 1} in keys
    assert collection.name == OWN


async def test_partner_natural_key_and_compare_and_set(repo: Repository) -> None:
    """Partner copies are unique per (country_code, party_id, id) and updated by version."""
    nl = Party("NL", "CPO")
    assert await repo.partners.save(DE, "L1", location("L1"), None) is not None
    assert await repo.partners.save(DE, "L1", location("L1"), None) is None
    assert await repo.partners.save(nl, "L1", location("L1"), None) is not None
    newer = location("L1", T0 + timedelta(minutes=1), Status.CHARGING)
    assert await repo.partners.save(DE, "L1", newer, 1) is not None
    assert await repo.partners.save(DE, "L1", newer, 1) is None
    record = await repo.partners.get(DE, "L1")
    assert record is not None and record.version == 2 and record.value == newer
    other = await repo.partners.get(nl, "L1")
    assert other is not None and other.value == location("L1")
