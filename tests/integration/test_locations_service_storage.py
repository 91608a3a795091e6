"""Contract of the MongoDB features the locations repository relies on, run against the fixtures' server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from services.locations.mongo import OWN, MongoOwnLocations, mongo_repository
from services.locations.repository import RECENT_EVENTS, Repository, Window
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
async def repo(mongo_url: str, namespace: str) -> AsyncIterator[Repository]:
    client = connect_mongo(mongo_url)
    db = service_database(client, namespace, "locations")
    try:
        yield await mongo_repository(db)
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_own_round_trip_keeps_the_ocpi_object(repo: Repository) -> None:
    """A stored location reads back equal, datetimes as aware UTC, with version 1 and its event id."""
    stored = await repo.own.add(location("L1"), "e1")
    assert stored is not None
    record = await repo.own.get("L1")
    assert record is not None
    assert record.location == location("L1") and record.location.last_updated.tzinfo is not None
    assert (record.version, record.recent_event_ids) == (1, ("e1",))


async def test_own_add_twice_fails_and_creation_order_grows(repo: Repository) -> None:
    """The unique _id refuses a second insert; created_seq grows with each creation."""
    first = await repo.own.add(location("L1"), "e1")
    assert await repo.own.add(location("L1"), "e2") is None
    second = await repo.own.add(location("L2"), "e3")
    assert first is not None and second is not None and second.created_seq > first.created_seq


async def test_concurrent_creations_get_distinct_increasing_seqs(repo: Repository) -> None:
    """The $inc counter hands out a distinct created_seq to each of many concurrent creations."""
    records = await asyncio.gather(*(repo.own.add(location(f"L{i}"), f"e{i}") for i in range(20)))
    seqs = [record.created_seq for record in records if record is not None]
    assert len(seqs) == 20 and len(set(seqs)) == 20
    page = await repo.own.page(Window(limit=50))
    assert [seq for seq, _ in page] == sorted(seqs)


async def test_own_update_is_compare_and_set_on_version_and_event_id(repo: Repository) -> None:
    """An update applies only at the expected version and only for an event id not seen yet."""
    await repo.own.add(location("L1"), "e1")
    charging = location("L1", T0 + timedelta(minutes=1), Status.CHARGING)
    updated = await repo.own.update(charging, 1, "e2")
    assert updated is not None and updated.version == 2
    assert await repo.own.update(charging, 1, "e3") is None  # version moved on
    assert await repo.own.update(charging, 2, "e2") is None  # event already applied
    record = await repo.own.get("L1")
    assert record is not None and record.version == 2 and record.location == charging


async def test_recent_event_ids_stay_bounded(repo: Repository) -> None:
    """$push with $slice keeps only the newest event ids."""
    await repo.own.add(location("L1"), "e0")
    record = await repo.own.get("L1")
    assert record is not None
    collection = repo.own._locations  # type: ignore[attr-defined]
    ids = [f"x{i}" for i in range(RECENT_EVENTS + 5)]
    await collection.update_one({"_id": "L1"}, {"$set": {"recent_event_ids": ids[:-1]}})
    await repo.own.update(location("L1"), record.version, ids[-1])
    record = await repo.own.get("L1")
    assert record is not None and record.recent_event_ids == tuple(ids[-RECENT_EVENTS:])


async def test_pages_by_keyset_offset_and_dates(repo: Repository) -> None:
    """Keyset and offset pages follow creation order; date_from is inclusive and date_to exclusive."""
    for i in range(6):
        await repo.own.add(location(f"L{i}", T0 + timedelta(minutes=i)), f"e{i}")
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


async def test_keyset_page_is_an_index_range_scan(repo: Repository) -> None:
    """A page after a cursor is read by an index scan of created_seq: no skip and no in-memory sort."""
    for i in range(30):
        await repo.own.add(location(f"L{i}"), f"e{i}")
    own = repo.own
    assert isinstance(own, MongoOwnLocations)
    plan = (await own.page_cursor(Window(limit=5, offset=25, after_seq=25)).explain())["queryPlanner"]
    stages = _stages(plan["winningPlan"])
    assert "IXSCAN" in stages and "SKIP" not in stages and "SORT" not in stages, stages


async def test_indexes_exist(repo: Repository) -> None:
    """created_seq (unique) and last_updated are indexed for the pull API."""
    collection = repo.own._locations  # type: ignore[attr-defined]
    keys = [dict(index["key"]) for index in (await collection.index_information()).values()]
    assert {"created_seq": 1} in keys and {"last_updated": 1} in keys
    assert collection.name == OWN


async def test_partner_natural_key_and_compare_and_set(repo: Repository) -> None:
    """Partner copies are unique per (country_code, party_id, id) and updated by version."""
    assert await repo.partners.add("DE", "CPO", location("L1")) is not None
    assert await repo.partners.add("DE", "CPO", location("L1")) is None
    assert await repo.partners.add("NL", "CPO", location("L1")) is not None
    newer = location("L1", T0 + timedelta(minutes=1), Status.CHARGING)
    assert await repo.partners.update("DE", "CPO", newer, 1) is not None
    assert await repo.partners.update("DE", "CPO", newer, 1) is None
    record = await repo.partners.get("DE", "CPO", "L1")
    assert record is not None and record.version == 2 and record.location == newer
    other = await repo.partners.get("NL", "CPO", "L1")
    assert other is not None and other.location == location("L1")
