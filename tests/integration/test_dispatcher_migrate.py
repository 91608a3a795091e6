"""The one-time move of the dispatcher's pre-module state: pending pushes and pulls survive the upgrade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.migrate import migrate_legacy
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.pushes import Delivered, PushQueue
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.storage import Document, connect_mongo, service_database

pytestmark = pytest.mark.integration

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STATUS = {"scope": "EVSE_STATUS", "evse_uid": "E1", "connector_id": None}


@pytest.fixture
async def db(mongo_url: str, namespace: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client = connect_mongo(mongo_url)
    try:
        yield service_database(client, namespace, "dispatcher")
    finally:
        await client.close()


async def test_legacy_pushes_and_pulls_move_into_records_keyed_by_module(db: AsyncDatabase[Document]) -> None:
    """A pending push, a delivery record and a CPO partner's pull state, as the old code left them."""
    await db["states"].insert_one({"_id": "L1", "version": 5, "location": {"id": "L1", "name": "v5"}})
    await db["pending"].insert_one(
        {
            "_id": {"partner_id": "p", "key": "L1"},
            "partner_id": "p",
            "key": "L1",
            "version": 5,
            "changes": [STATUS],
            "due_at": NOW,
            "attempts": 2,
            "parked": False,
            "lease_owner": "dead-replica",
            "lease_until": NOW,
        }
    )
    await db["delivered"].insert_one(
        {"_id": {"partner_id": "p", "key": "L1"}, "partner_id": "p", "version": 4, "pushed": None}
    )
    await db["partners"].insert_many(
        [
            {
                "_id": "cpo",
                "role": "CPO",
                "pull_due_at": NOW,
                "pull_seq": 3,
                "pull_full": True,
                "pull_attempts": 1,
            },
            {"_id": "emsp", "role": "EMSP", "pull_seq": 0, "pull_attempts": 0},
        ]
    )
    await migrate_legacy(db)
    await migrate_legacy(db)  # a second replica starting: nothing changes
    assert not {"states", "pending", "delivered"} & set(await db.list_collection_names())
    job = await PushQueue(db).claim("me", NOW, 30)
    assert job is not None and (job.module, job.key, job.version, job.attempts) == (
        ModuleID.LOCATIONS,
        "L1",
        5,
        2,
    )
    assert job.parts == [STATUS] and job.state == {"id": "L1", "name": "v5"}
    assert job.delivered == Delivered(4, None)
    pull = await PullSchedule(db).claim(NOW, 60)
    assert pull is not None and (pull.partner_id, pull.module, pull.seq, pull.full) == (
        "cpo",
        ModuleID.LOCATIONS,
        3,
        True,
    )
    assert await db["pulls"].count_documents({}) == 1
    assert await db["partners"].count_documents({"pull_seq": {"$exists": True}}) == 0


async def test_push_records_keyed_by_a_document_get_their_string_id(db: AsyncDatabase[Document]) -> None:
    """Records of the embedded-document `_id` (before 2026-12-02) are re-keyed; a record already
    under the new id (written since the upgrade) is kept, the old copy dropped."""
    old = {
        "partner_id": "p",
        "module": "locations",
        "key": "L1",
        "version": 3,
        "state": None,
        "parts": [STATUS],
        "due_at": NOW,
        "attempts": 0,
        "parked": False,
        "lease_until": NOW,
    }
    await db["pushes"].insert_one({"_id": {"partner_id": "p", "module": "locations", "key": "L1"}, **old})
    await db["pushes"].insert_one({"_id": {"partner_id": "p", "module": "tariffs", "key": "T1"}, **old})
    await db["pushes"].insert_one(
        {"_id": "p/tariffs/T1", **old, "module": "tariffs", "key": "T1", "version": 9}
    )
    await migrate_legacy(db)
    await migrate_legacy(db)
    ids = sorted([str(doc["_id"]) async for doc in db["pushes"].find({})])
    assert ids == ["p/locations/L1", "p/tariffs/T1"]
    kept = await PushQueue(db).record("p", ModuleID.TARIFFS, "T1")
    assert kept is not None and kept["version"] == 9
    job = await PushQueue(db).claim_key("me", ("p", "locations", "L1"), NOW, 30)
    assert job is not None and (job.version, job.parts) == (3, [STATUS])
