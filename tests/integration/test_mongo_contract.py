"""The MongoDB features the platform relies on, run against whatever server the fixtures gave.

A difference between the SecantusDB stand-in and MongoDB shows up here as a failing test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.storage import connect_mongo

pytestmark = pytest.mark.integration
Doc = dict[str, Any]


@pytest.fixture
async def collection(mongo_url: str) -> AsyncIterator[AsyncCollection[Doc]]:
    client = connect_mongo(mongo_url)
    col = client[f"contract_{uuid.uuid4().hex[:8]}"]["c"]
    yield col
    await client.drop_database(col.database.name)
    await client.close()


async def test_partial_unique_index_allows_many_missing_values(collection: AsyncCollection[Doc]) -> None:
    """Unique on strings only: several documents without the field, never two with the same string."""
    await collection.create_index(
        "token", unique=True, partialFilterExpression={"token": {"$type": "string"}}
    )
    await collection.insert_many([{"token": None}, {"token": None}, {"token": "a"}])
    with pytest.raises(DuplicateKeyError):
        await collection.insert_one({"token": "a"})


async def test_compound_unique_index(collection: AsyncCollection[Doc]) -> None:
    """Natural keys (country_code, party_id, id) are unique together."""
    await collection.create_index([("cc", ASCENDING), ("pid", ASCENDING), ("id", ASCENDING)], unique=True)
    await collection.insert_one({"cc": "NL", "pid": "ABC", "id": "1"})
    await collection.insert_one({"cc": "DE", "pid": "ABC", "id": "1"})
    with pytest.raises(DuplicateKeyError):
        await collection.insert_one({"cc": "NL", "pid": "ABC", "id": "1"})


async def test_counter_upsert_with_inc_returns_the_new_value(collection: AsyncCollection[Doc]) -> None:
    """find_one_and_update upsert + $inc + ReturnDocument.AFTER hands out 1, 2, 3."""
    values = [
        (
            await collection.find_one_and_update(
                {"_id": "seq"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
            )
        )["n"]
        for _ in range(3)
    ]
    assert values == [1, 2, 3]


async def test_compare_and_set_update_matches_only_the_expected_state(
    collection: AsyncCollection[Doc],
) -> None:
    """An update filtered on the expected version changes nothing when the version moved on."""
    await collection.insert_one({"_id": "x", "version": 1})
    assert (
        await collection.update_one({"_id": "x", "version": 1}, {"$set": {"version": 2}})
    ).modified_count == 1
    assert (
        await collection.update_one({"_id": "x", "version": 1}, {"$set": {"version": 3}})
    ).modified_count == 0


async def test_max_never_lowers(collection: AsyncCollection[Doc]) -> None:
    """$max keeps the larger value (the dispatcher's delivered version)."""
    await collection.update_one({"_id": "d"}, {"$max": {"v": 5}}, upsert=True)
    await collection.update_one({"_id": "d"}, {"$max": {"v": 3}}, upsert=True)
    assert (await collection.find_one({"_id": "d"}) or {})["v"] == 5


async def test_bounded_push_and_ne_filter_make_idempotent_updates(collection: AsyncCollection[Doc]) -> None:
    """$push with $slice keeps the last N ids; a filter with $ne skips an id already applied."""
    await collection.insert_one({"_id": "l", "ids": [], "n": 0})
    for event_id in ["a", "b", "a", "c", "d"]:
        await collection.update_one(
            {"_id": "l", "ids": {"$ne": event_id}},
            {"$push": {"ids": {"$each": [event_id], "$slice": -3}}, "$inc": {"n": 1}},
        )
    doc = await collection.find_one({"_id": "l"}) or {}
    assert doc["n"] == 4 and doc["ids"] == ["b", "c", "d"]


async def test_keyset_range_sort_limit_and_count_with_date_filters(collection: AsyncCollection[Doc]) -> None:
    """Range on a sequence, sort, limit, and counts over a date range with aware datetimes."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await collection.create_index("seq")
    await collection.insert_many([{"seq": i, "at": start + timedelta(minutes=i)} for i in range(10)])
    page = await collection.find({"seq": {"$gt": 3}}).sort("seq", ASCENDING).limit(3).to_list()
    assert [d["seq"] for d in page] == [4, 5, 6]
    skipped = await collection.find({}).sort("seq", ASCENDING).skip(8).limit(5).to_list()
    assert [d["seq"] for d in skipped] == [8, 9]
    window = {"at": {"$gte": start + timedelta(minutes=2), "$lt": start + timedelta(minutes=5)}}
    assert await collection.count_documents(window) == 3
    assert await collection.estimated_document_count() == 10  # the unfiltered total of a page
    found = await collection.find_one({"seq": 0}) or {}
    assert found["at"] == start and found["at"].tzinfo is not None


async def test_add_to_set_and_array_membership_query(collection: AsyncCollection[Doc]) -> None:
    """$addToSet adds once; a query on an array field matches any element (retired token hashes)."""
    await collection.insert_one({"_id": "p", "hashes": []})
    for _ in range(2):
        await collection.update_one({"_id": "p"}, {"$addToSet": {"hashes": "h1"}})
    assert (await collection.find_one({"_id": "p"}) or {})["hashes"] == ["h1"]
    assert await collection.find_one({"$or": [{"token": "h1"}, {"hashes": "h1"}]}) is not None


async def test_lease_claim_is_exclusive(collection: AsyncCollection[Doc]) -> None:
    """Two claims of the same due document with find_one_and_update: only one gets it."""
    now = datetime.now(UTC)
    await collection.insert_one({"_id": "job", "due": now, "lease_until": now - timedelta(seconds=1)})
    claim = {"_id": "job", "due": {"$lte": now}, "lease_until": {"$lt": now}}
    first = await collection.find_one_and_update(
        claim, {"$set": {"lease_until": now + timedelta(seconds=30)}}
    )
    second = await collection.find_one_and_update(
        claim, {"$set": {"lease_until": now + timedelta(seconds=30)}}
    )
    assert first is not None and second is None


async def test_unordered_bulk_write_reports_each_failure_and_runs_the_rest(
    collection: AsyncCollection[Doc],
) -> None:
    """A duplicate insert and a compare-and-set miss in one unordered bulk: the others still apply,
    the error names the failed insert's index with code 11000, and nMatched counts the hits."""
    await collection.insert_many([{"_id": "a", "v": 1, "ids": ["x"]}, {"_id": "b", "v": 1, "ids": []}])
    operations: list[InsertOne[Doc] | UpdateOne] = [
        InsertOne({"_id": "a", "v": 1}),
        UpdateOne({"_id": "a", "v": 1}, {"$inc": {"v": 1}}),
        UpdateOne({"_id": "b", "v": 1}, {"$inc": {"v": 1}, "$push": {"ids": {"$each": ["q"], "$slice": -2}}}),
        UpdateOne({"_id": "a", "v": 7}, {"$inc": {"v": 10}}),
        InsertOne({"_id": "c", "v": 1}),
    ]
    with pytest.raises(BulkWriteError) as raised:
        await collection.bulk_write(operations, ordered=False)
    details = raised.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(0, 11000)]
    assert (details["nMatched"], details["nInserted"]) == (2, 1)
    assert {d["_id"]: d["v"] async for d in collection.find()} == {"a": 2, "b": 2, "c": 1}


async def test_upserts_keyed_by_a_document_id_and_in_on_document_ids(
    collection: AsyncCollection[Doc],
) -> None:
    """_id {partner_id, key}: $in finds by whole documents; a guarded upsert on a newer version fails on
    the key, $addToSet $each adds each part once."""
    await collection.bulk_write(
        [
            UpdateOne(
                {"_id": {"p": "1", "k": key}, "version": {"$lt": 2}},
                {"$set": {"version": 2}, "$addToSet": {"changes": {"$each": ["s", "s", "t"]}}},
                upsert=True,
            )
            for key in ("a", "b")
        ],
        ordered=False,
    )
    found = await collection.find({"_id": {"$in": [{"p": "1", "k": "a"}, {"p": "1", "k": "z"}]}}).to_list()
    assert [(d["_id"]["k"], d["changes"]) for d in found] == [("a", ["s", "t"])]
    with pytest.raises(BulkWriteError) as raised:
        await collection.bulk_write(
            [
                UpdateOne(
                    {"_id": {"p": "1", "k": "b"}, "version": {"$lt": 1}},
                    {"$set": {"version": 1}},
                    upsert=True,
                )
            ],
            ordered=False,
        )
    assert [e["code"] for e in raised.value.details["writeErrors"]] == [11000]


async def test_size_matches_an_array_of_that_length(collection: AsyncCollection[Doc]) -> None:
    """$size in a delete filter: the document goes only while its array still has that many items."""
    await collection.insert_one({"_id": 1, "changes": ["a", "b"]})
    assert (await collection.delete_one({"_id": 1, "changes": {"$size": 1}})).deleted_count == 0
    assert (await collection.delete_one({"_id": 1, "changes": {"$size": 2}})).deleted_count == 1
