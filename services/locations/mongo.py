"""The MongoDB repository: `own_locations` (CPO side) and `partner_locations` (eMSP side).

Every write is an atomic single-document operation whose filter carries the precondition (`version`),
so replicas never overwrite each other. Own locations are written in unordered bulk writes of such
operations, one per batch of inputs; the stored `recent_event_ids` the caller checked its inputs
against are those of that version, so a redelivered input never applies twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.locations.repository import (
    RECENT_EVENTS,
    OwnRecord,
    OwnWrite,
    PartnerRecord,
    PartnerVersion,
    Repository,
    Window,
)
from shared.ocpi.v2_1_1.codec import convert, to_builtins
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.types import to_utc, utc_now
from shared.storage import DUPLICATE_KEY, Document

OWN = "own_locations"
PARTNER = "partner_locations"
COUNTERS = "counters"
# The longest a cached count of all own locations is trusted while the counter stands still.
TOTAL_MAX_AGE = 60.0


def _stored(location: Location) -> Document:
    # DateTimes stay BSON dates so that they can be queried; the wire form is rebuilt on read.
    document: Document = to_builtins(location, keep_datetimes=True)
    return document


def _date_filter(date_from: datetime | None, date_to: datetime | None) -> Document:
    bounds: Document = {}
    if date_from is not None:
        bounds["$gte"] = to_utc(date_from)
    if date_to is not None:
        bounds["$lt"] = to_utc(date_to)
    return {"last_updated": bounds} if bounds else {}


class MongoOwnLocations:
    """OwnLocations in MongoDB, creation order from a counter document."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._locations: AsyncCollection[Document] = db[OWN]
        self._counters: AsyncCollection[Document] = db[COUNTERS]
        # (counter value, count of all locations, monotonic time it was counted)
        self._total: tuple[int, int, float] | None = None

    async def ensure_indexes(self) -> None:
        """Indexes of the pull API: creation order for pages, last_updated for date filters."""
        await self._locations.create_index([("created_seq", ASCENDING)], unique=True)
        await self._locations.create_index([("last_updated", ASCENDING)])
        # Create the counter once, so that `_reserve_seqs` never races on an upsert (SecantusDB answers
        # concurrent upserts of one document with None; MongoDB may raise DuplicateKeyError).
        with contextlib.suppress(DuplicateKeyError):
            await self._counters.update_one({"_id": OWN}, {"$setOnInsert": {"seq": 0}}, upsert=True)

    @staticmethod
    def _record(document: Document) -> OwnRecord:
        return OwnRecord(
            location=convert(document["location"], Location),
            version=document["version"],
            created_seq=document["created_seq"],
            recent_event_ids=tuple(document.get("recent_event_ids", ())),
        )

    async def get(self, location_id: str) -> OwnRecord | None:
        """The stored record, if any."""
        document = await self._locations.find_one({"_id": location_id})
        return None if document is None else self._record(document)

    async def get_many(self, location_ids: Collection[str]) -> dict[str, OwnRecord]:
        """The stored records among `location_ids`, by id: one query."""
        documents = await self._locations.find({"_id": {"$in": list(location_ids)}}).to_list()
        return {document["_id"]: self._record(document) for document in documents}

    async def _reserve_seqs(self, count: int) -> int:
        """Reserve `count` creation numbers; the first of them."""
        counter = await self._counters.find_one_and_update(
            {"_id": OWN}, {"$inc": {"seq": count}}, return_document=ReturnDocument.AFTER
        )
        if counter is None:
            raise RuntimeError(f"counter {OWN!r} is missing: run ensure_indexes()")
        return int(counter["seq"]) - count + 1

    async def save_many(self, writes: Sequence[OwnWrite]) -> dict[str, int]:
        """Store every write whose precondition holds in one unordered bulk write.

        The filters carry the preconditions, so each write is decided atomically on its own. The
        bulk result only counts matches; when fewer updates matched than were sent, the ones that
        took effect are told apart by the token each write stores (`write_id`, unique to it: an
        event id is not, another replica may apply the same input). A write that took effect but
        was overwritten before the read-back counts as lost; its inputs are then found remembered
        and only announced again.
        """
        if any(not write.event_ids for write in writes):
            raise ValueError("every write carries the event ids of its inputs")
        new = [write for write in writes if write.version is None]
        seq = await self._reserve_seqs(len(new)) if new else 0
        tokens = {write.location.id: uuid.uuid4().hex for write in writes}
        operations: list[InsertOne[Document] | UpdateOne] = []
        for write in writes:
            token = tokens[write.location.id]
            if write.version is None:
                operations.append(InsertOne(self._new_document(write, seq, token)))
                seq += 1  # a gap left by a failed insert is harmless: only the order matters
            else:
                operations.append(self._update(write, token))
        failed: set[int] = set()
        try:
            result = await self._locations.bulk_write(operations, ordered=False)
            matched = result.matched_count
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            failed = {int(error["index"]) for error in errors}
            matched = int(exc.details.get("nMatched", 0))
        saved = {w.location.id: 1 for i, w in enumerate(writes) if w.version is None and i not in failed}
        updates = [write for write in writes if write.version is not None]
        if matched == len(updates):
            saved.update(
                {write.location.id: write.version + 1 for write in updates if write.version is not None}
            )
            return saved
        stored = await self._locations.find(
            {"_id": {"$in": [write.location.id for write in updates]}}, {"write_id": 1}
        ).to_list()
        written = {document["_id"]: document.get("write_id") for document in stored}
        for write in updates:
            if write.version is not None and written.get(write.location.id) == tokens[write.location.id]:
                saved[write.location.id] = write.version + 1
        return saved

    @staticmethod
    def _new_document(write: OwnWrite, seq: int, token: str) -> Document:
        return {
            "_id": write.location.id,
            "location": _stored(write.location),
            "version": 1,
            "created_seq": seq,
            "last_updated": to_utc(write.location.last_updated),
            "recent_event_ids": list(write.event_ids[-RECENT_EVENTS:]),
            "write_id": token,
        }

    @staticmethod
    def _update(write: OwnWrite, token: str) -> UpdateOne:
        return UpdateOne(
            # The version alone: the event ids were checked against what this version remembers.
            {"_id": write.location.id, "version": write.version},
            {
                "$set": {
                    "location": _stored(write.location),
                    "last_updated": to_utc(write.location.last_updated),
                    "write_id": token,
                },
                "$inc": {"version": 1},
                "$push": {"recent_event_ids": {"$each": list(write.event_ids), "$slice": -RECENT_EVENTS}},
            },
        )

    async def _top_seq(self) -> int:
        """The last creation number handed out: no location has a higher created_seq."""
        counter = await self._counters.find_one({"_id": OWN})
        return 0 if counter is None else int(counter["seq"])

    def page_cursor(self, window: Window, upto: int | None = None) -> AsyncCursor[Document]:
        """The query of a page: a range of the created_seq index after a cursor, else a skip.

        `upto` bounds the range from above. created_seq comes first in the filter: a server that
        uses the first indexed clause (SecantusDB does) then scans created_seq, not the date index.
        """
        query: Document = {}
        if window.after_seq is not None or upto is not None:
            bounds: Document = {"$gt": window.after_seq or 0}
            if upto is not None:
                bounds["$lte"] = upto
            query["created_seq"] = bounds
        query.update(_date_filter(window.date_from, window.date_to))
        cursor = self._locations.find(query, {"location": 1, "created_seq": 1}).sort("created_seq", ASCENDING)
        if window.after_seq is None and window.offset:
            cursor = cursor.skip(window.offset)
        return cursor.limit(window.limit)

    async def page(self, window: Window) -> list[tuple[int, Location]]:
        """(created_seq, location) pairs of a window, oldest creation first.

        A keyset page reads bounded slices of created_seq after the cursor, a slice twice as wide
        as the one before, until it has `limit` rows or passes the last creation number. A dense
        range needs one slice. Every query then touches a bounded part of the index, so its cost
        cannot grow with what lies beyond the page, also on servers that apply `limit` only after
        reading the whole range (SecantusDB). A page by offset without a cursor is a plain skip.
        """
        if window.after_seq is None and window.offset:
            rows = await self.page_cursor(window).to_list()
        else:
            rows = []
            after, top = window.after_seq or 0, await self._top_seq()
            width = max(2 * window.limit, 64)
            while len(rows) < window.limit and after < top:
                upto = min(after + width, top)
                part = dataclasses.replace(window, limit=window.limit - len(rows), after_seq=after)
                rows.extend(await self.page_cursor(part, upto).to_list())
                after, width = upto, 2 * width
        return [(row["created_seq"], convert(row["location"], Location)) for row in rows]

    async def count(self, date_from: datetime | None, date_to: datetime | None) -> int:
        """How many locations match the date filters.

        With filters the last_updated index bounds the count. Without, the collection's own count
        answers (metadata on MongoDB), and is kept between pages: own locations are never deleted
        and every creation first takes a number from the counter, so the count can only change
        when the counter moves. It is taken again then, or after a minute (a creation that took its
        number before a count but was stored after it shows then).
        """
        query = _date_filter(date_from, date_to)
        if query:
            return await self._locations.count_documents(query)
        top = await self._top_seq()
        cached = self._total
        if cached is not None and cached[0] == top and time.monotonic() - cached[2] < TOTAL_MAX_AGE:
            return cached[1]
        total = await self._locations.estimated_document_count()
        self._total = (top, total, time.monotonic())
        return total


class MongoPartnerLocations:
    """PartnerLocations in MongoDB, unique by (country_code, party_id, id)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._locations: AsyncCollection[Document] = db[PARTNER]

    async def ensure_indexes(self) -> None:
        """The natural key, and last_updated for re-sync bookkeeping."""
        await self._locations.create_index(
            [("country_code", ASCENDING), ("party_id", ASCENDING), ("id", ASCENDING)], unique=True
        )
        await self._locations.create_index([("last_updated", ASCENDING)])
        # Only changes whose event has not gone out yet carry the mark: a small sparse index.
        await self._locations.create_index([("unannounced_since", ASCENDING)], sparse=True)

    @staticmethod
    def _key(country_code: str, party_id: str, location_id: str) -> Document:
        return {"country_code": country_code, "party_id": party_id, "id": location_id}

    @staticmethod
    def _record(document: Document) -> PartnerRecord:
        return PartnerRecord(
            country_code=document["country_code"],
            party_id=document["party_id"],
            location=convert(document["location"], Location),
            version=document["version"],
        )

    async def get(self, country_code: str, party_id: str, location_id: str) -> PartnerRecord | None:
        """The stored record, if any."""
        document = await self._locations.find_one(self._key(country_code, party_id, location_id))
        return None if document is None else self._record(document)

    async def add(self, country_code: str, party_id: str, location: Location) -> PartnerRecord | None:
        """Store a new location (version 1); None when it exists already."""
        document: dict[str, Any] = {
            **self._key(country_code, party_id, location.id),
            "location": _stored(location),
            "version": 1,
            "last_updated": to_utc(location.last_updated),
            "unannounced_since": utc_now(),
        }
        try:
            await self._locations.insert_one(document)
        except DuplicateKeyError:
            return None
        return PartnerRecord(country_code=country_code, party_id=party_id, location=location, version=1)

    async def update(
        self, country_code: str, party_id: str, location: Location, version: int
    ) -> PartnerRecord | None:
        """Replace the location if still at `version`; None otherwise."""
        result = await self._locations.update_one(
            {**self._key(country_code, party_id, location.id), "version": version},
            {
                "$set": {
                    "location": _stored(location),
                    "last_updated": to_utc(location.last_updated),
                    "unannounced_since": utc_now(),
                },
                "$inc": {"version": 1},
            },
        )
        if result.matched_count != 1:
            return None
        return PartnerRecord(
            country_code=country_code, party_id=party_id, location=location, version=version + 1
        )

    async def announced(self, versions: Sequence[PartnerVersion]) -> None:
        """These versions were published: clear their marks in one bulk write (a newer version
        keeps its own)."""
        if not versions:
            return
        await self._locations.bulk_write(
            [
                UpdateOne(
                    {**self._key(country_code, party_id, location_id), "version": version},
                    {"$unset": {"unannounced_since": ""}},
                )
                for country_code, party_id, location_id, version in versions
            ],
            ordered=False,
        )

    async def unannounced(self, stored_before: datetime, limit: int) -> list[PartnerRecord]:
        """Records still marked unannounced that were stored before `stored_before`, oldest first."""
        cursor = self._locations.find({"unannounced_since": {"$lt": stored_before}})
        documents = await cursor.sort("unannounced_since", ASCENDING).limit(limit).to_list()
        return [self._record(document) for document in documents]


async def mongo_repository(db: AsyncDatabase[Document]) -> Repository:
    """The MongoDB repository of a service database, with its indexes in place."""
    own, partners = MongoOwnLocations(db), MongoPartnerLocations(db)
    await own.ensure_indexes()
    await partners.ensure_indexes()
    return Repository(own=own, partners=partners)
