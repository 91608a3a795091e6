"""The dispatcher's MongoDB stores against the server the fixtures give: coalescing, leases, CAS transitions.

These double as the contract of the MongoDB features the dispatcher relies on (conditional upserts that
raise DuplicateKeyError, `$max`, `$addToSet` of sub-documents, sorted find_one_and_update, distinct).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.domain import change_key
from services.dispatcher.partners import PartnerProjection
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.push_plans import MODULE_PLANS, PUSH_PLANS, Snapshot
from services.dispatcher.pushes import Delivered, PushQueue
from shared.contracts.locations import ChangeScope, LocationChange, LocationChanged
from shared.contracts.partners import PartnerRegistered, Party, SyncState
from shared.contracts.tariffs import TariffRemoved
from shared.ocpi.v2_1_1.locations import GeoLocation, Location, LocationType
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.sealing import Sealer
from shared.settings import Role
from shared.storage import Document, connect_mongo, service_database
from tests.support.gateway_tokens import TEST_KEYS

pytestmark = pytest.mark.integration

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LOCATION = LocationChange(scope=ChangeScope.LOCATION)


def snap(state: Location, version: int, change: LocationChange) -> Snapshot:
    """A state of one of our locations as the dispatcher takes it from a LocationChanged."""
    event = LocationChanged(location=state, version=version, changes=[change])
    return PUSH_PLANS[LocationChanged].snapshot(event, None)


def status(uid: str) -> LocationChange:
    """A status change of one EVSE."""
    return LocationChange(scope=ChangeScope.EVSE_STATUS, evse_uid=uid)


def location(name: str, lid: str = "L1") -> Location:
    """A location whose name tells which version it is."""
    return Location(
        id=lid,
        type=LocationType.ON_STREET,
        name=name,
        address="Main 1",
        city="Gent",
        postal_code="9000",
        country="BEL",
        coordinates=GeoLocation(latitude="51.047599", longitude="3.729944"),
        last_updated=NOW,
    )


@pytest.fixture
async def db(mongo_url: str, namespace: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """The dispatcher's database in the test's namespace."""
    client = connect_mongo(mongo_url)
    try:
        yield service_database(client, namespace, "dispatcher")
    finally:
        await client.close()


@pytest.fixture
async def queue(db: AsyncDatabase[Document]) -> PushQueue:
    """The push queue with its indexes."""
    pushes = PushQueue(db)
    await pushes.ensure_indexes()
    return pushes


async def test_pending_push_keeps_the_newest_snapshot_and_the_union_of_changes(queue: PushQueue) -> None:
    """Versions arriving out of order never replace a newer snapshot, but their changes still join."""
    await queue.enqueue("p", snap(location("v5"), 5, status("E1")), NOW, parked=False)
    await queue.enqueue("p", snap(location("v3"), 3, LOCATION), NOW, parked=False)
    await queue.enqueue("p", snap(location("v5"), 5, status("E1")), NOW, parked=False)
    await queue.enqueue("p", snap(location("v6"), 6, status("E2")), NOW, parked=False)
    job = await queue.claim("me", NOW, 30)
    assert job is not None and job.version == 6
    expected = [change_key(c) for c in (status("E1"), LOCATION, status("E2"))]
    assert sorted(job.parts, key=str) == sorted(expected, key=str)
    assert job.state is not None and job.state["name"] == "v6"


async def test_a_lease_keeps_other_replicas_off_until_it_expires(queue: PushQueue) -> None:
    """A claimed push cannot be claimed again until its lease runs out."""
    await queue.enqueue("p", snap(location("v1"), 1, LOCATION), NOW, parked=False)
    assert await queue.claim("a", NOW, 30) is not None
    assert await queue.claim("b", NOW + timedelta(seconds=29), 30) is None
    stolen = await queue.claim("b", NOW + timedelta(seconds=31), 30)
    assert stolen is not None and stolen.version == 1


async def test_completion_keeps_a_version_that_arrived_during_the_push(queue: PushQueue) -> None:
    """A newer version queued while a push was in flight stays pending, due at once, lease released."""
    await queue.enqueue("p", snap(location("v1"), 1, LOCATION), NOW, parked=False)
    job = await queue.claim("me", NOW, 30)
    assert job is not None
    await queue.enqueue("p", snap(location("v2"), 2, status("E1")), NOW, parked=False)
    await queue.complete(job, "me", Delivered(version=1, pushed=None), NOW)
    again = await queue.claim("other", NOW, 30)
    assert again is not None and again.version == 2 and again.attempts == 0
    await queue.complete(again, "other", Delivered(version=2, pushed=None), NOW)
    assert await queue.claim("other", NOW + timedelta(hours=1), 30) is None
    record = await queue.record("p", ModuleID.LOCATIONS, "L1")
    assert record is not None and record["delivered"] == 2


async def test_a_part_that_joins_during_the_push_keeps_it_pending(queue: PushQueue) -> None:
    """A late event of the same version adds a part while the push is out: the push stays, with it."""
    await queue.enqueue("p", snap(location("v1"), 1, LOCATION), NOW, parked=False)
    job = await queue.claim("me", NOW, 30)
    assert job is not None
    await queue.enqueue("p", snap(location("v1"), 1, status("E1")), NOW, parked=False)
    await queue.complete(job, "me", Delivered(version=1, pushed=[change_key(LOCATION)]), NOW)
    again = await queue.claim("other", NOW, 30)
    assert again is not None and again.version == 1 and change_key(status("E1")) in again.parts


async def test_an_older_state_recorded_late_never_replaces_a_newer_one(queue: PushQueue) -> None:
    """Each partner's record keeps the newest state it was given, whatever the arrival order."""
    await queue.enqueue("p", snap(location("v3"), 3, LOCATION), NOW, parked=False)
    await queue.enqueue("p", snap(location("v2"), 2, LOCATION), NOW, parked=False)
    job = await queue.claim("me", NOW, 30)
    assert job is not None and job.version == 3
    assert job.state is not None and job.state["name"] == "v3"


async def test_delivered_never_goes_back_and_covered_late_events_send_nothing(queue: PushQueue) -> None:
    """The delivered version only grows; a late event whose part went out already sends nothing."""
    await queue.enqueue("p", snap(location("v4"), 4, LOCATION), NOW, parked=False)
    job = await queue.claim("me", NOW, 30)
    assert job is not None
    await queue.complete(job, "me", Delivered(version=4, pushed=None), NOW)
    await queue.complete(job, "me", Delivered(version=2, pushed=None), NOW)
    record = await queue.record("p", ModuleID.LOCATIONS, "L1")
    assert record is not None and record["delivered"] == 4
    await queue.enqueue("p", snap(location("v3"), 3, status("E9")), NOW, parked=False)
    late = await queue.claim("me", NOW, 30)
    # Queued without a read, found out by the worker: the partner has v4 whole, which covers it.
    assert late is not None and late.version == 4 and late.delivered == Delivered(4, None)
    plan = MODULE_PLANS[ModuleID.LOCATIONS]
    assert all(plan.covers(late.delivered.pushed, part) for part in late.parts)


async def test_park_unpark_and_forget_work_per_partner(queue: PushQueue) -> None:
    """Parked pushes are not claimed; unparking makes them due with fresh attempts; forgetting deletes."""
    for lid in ("L1", "L2"):
        await queue.enqueue("p", snap(location("x", lid), 1, LOCATION), NOW, parked=False)
    await queue.enqueue("q", snap(location("x"), 1, LOCATION), NOW, parked=False)
    assert await queue.park_partner("p") == 2
    assert await queue.parked_partner_ids() == ["p"]
    claimed = await queue.claim("me", NOW, 30)
    assert claimed is not None and claimed.partner_id == "q"
    assert await queue.claim("me", NOW, 30) is None
    assert await queue.unpark_partner("p", NOW) == 2
    assert await queue.claim("me", NOW, 30) is not None
    assert await queue.forget_partner("p") == 2
    assert await queue.parked_partner_ids() == []


def registered(at: datetime, role: Role = Role.CPO) -> PartnerRegistered:
    """A CPO partner's registration at `at`."""
    return PartnerRegistered(
        partner_id="p",
        name="P",
        role=role,
        parties=[Party("BE", "CPO")],
        versions_url="http://x/versions",
        version="2.1.1",
        endpoints={"locations": "http://x/locations"},
        registered_at=at,
    )


SEALER = Sealer.from_setting(TEST_KEYS)


def sealed(token: str) -> str:
    """The token as the gateway hands it over for partner "p"."""
    return SEALER.seal(token, "p")


async def test_partner_projection_ignores_stale_registrations_and_transitions_once(
    db: AsyncDatabase[Document],
) -> None:
    """An older registration changes nothing; each sync-state transition is made by exactly one caller."""
    partners = PartnerProjection(db, SEALER)
    await partners.ensure_indexes()
    assert await partners.register(registered(NOW), sealed("new"), NOW, 5) is True
    assert await partners.register(registered(NOW - timedelta(minutes=1)), sealed("old"), NOW, 5) is False
    assert await partners.register(registered(NOW), sealed("new"), NOW, 5) is False
    partner = await partners.get("p")
    assert partner is not None and partner.token == "new" and partner.sends(ModuleID.LOCATIONS)
    assert [await partners.mark_retrying("p") for _ in range(2)] == [True, False]
    assert [await partners.mark_out_of_sync("p", NOW, 1.0) for _ in range(2)] == [True, False]
    assert await partners.mark_in_sync("p") is SyncState.OUT_OF_SYNC
    assert await partners.mark_in_sync("p") is None
    assert [await partners.set_reachable("p", False) for _ in range(2)] == [True, False]


async def test_a_pull_requested_during_a_pull_is_not_lost(db: AsyncDatabase[Document]) -> None:
    """The first registration schedules a full pull; a request arriving mid-pull survives its completion."""
    partners = PartnerProjection(db, SEALER)
    pulls = PullSchedule(db)
    await partners.register(registered(NOW), sealed("t"), NOW, 5)
    await pulls.first_pulls("p", [ModuleID.LOCATIONS], NOW)
    job = await pulls.claim(NOW, 60)
    assert job is not None and job.full and await pulls.claim(NOW, 60) is None
    await pulls.request("p", ModuleID.LOCATIONS, NOW, full=False)
    await pulls.succeeded(job, NOW)
    again = await pulls.claim(NOW, 60)
    assert again is not None and again.seq == job.seq + 1
    await pulls.succeeded(again, NOW + timedelta(seconds=1))
    assert await pulls.claim(NOW + timedelta(hours=1), 60) is None
    assert await pulls.last_sync_started("p", ModuleID.LOCATIONS) == NOW + timedelta(seconds=1)


async def test_a_tariff_and_a_location_with_the_same_id_are_two_pushes(queue: PushQueue) -> None:
    """Push records are keyed by module: tariff T1 never meets location T1."""
    removed = PUSH_PLANS[TariffRemoved].snapshot(TariffRemoved(tariff_id="L1", version=9, at=NOW), None)
    await queue.enqueue("p", snap(location("v1"), 1, LOCATION), NOW, parked=False)
    await queue.enqueue("p", removed, NOW, parked=False)
    first, second = await queue.claim("me", NOW, 30), await queue.claim("me", NOW, 30)
    assert first is not None and second is not None
    jobs = {(job.module, job.version, job.state is None) for job in (first, second)}
    assert jobs == {(ModuleID.LOCATIONS, 1, False), (ModuleID.TARIFFS, 9, True)}
