"""The MongoDB repository: `own_locations` (CPO side) and `partner_locations` (eMSP side).

Every write is one atomic single-document operation whose filter carries the precondition
(`version`, and for own locations `recent_event_ids: {$ne: event_id}`), so replicas never overwrite
each other and a redelivered input never applies twice.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.locations.repository import RECENT_EVENTS, OwnRecord, PartnerRecord, Repository, Window
from shared.ocpi.v2_1_1.codec import convert, to_builtins
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.types import to_utc
from shared.storage import Document

OWN = "own_locations"
PARTNER = "partner_locations"
COUNTERS = "counters"


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

    async def ensure_indexes(self) -> None:
        """Indexes of the pull API: creation order for pages, last_updated for date filters."""
        await self._locations.create_index([("created_seq", ASCENDING)], unique=True)
        await self._locations.create_index([("last_updated", ASCENDING)])
        # Create the counter once, so that `_next_seq` never races on an upsert (SecantusDB answers
        # concurrent upserts of one document with None; MongoDB may raise DuplicateKeyError).
        with contextlib.suppress(DuplicateKeyError):
            await self._counters.update_one({"_id": OWN}, {"$setOnInsert": {"seq": 0}}, upsert=True)

    async def get(self, location_id: str) -> OwnRecord | None:
        """The stored record, if any."""
        document = await self._locations.find_one({"_id": location_id})
        if document is None:
            return None
        return OwnRecord(
            location=convert(document["location"], Location),
            version=document["version"],
            created_seq=document["created_seq"],
            recent_event_ids=tuple(document.get("recent_event_ids", ())),
        )

    async def _next_seq(self) -> int:
        counter = await self._counters.find_one_and_update(
            {"_id": OWN}, {"$inc": {"seq": 1}}, return_document=ReturnDocument.AFTER
        )
        if counter is None:
            raise RuntimeError(f"counter {OWN!r} is missing: run ensure_indexes()")
        return int(counter["seq"])

    async def add(self, location: Location, event_id: str) -> OwnRecord | None:
        """Store a new location (version 1); None when it exists already."""
        seq = await self._next_seq()
        document = {
            "_id": location.id,
            "location": _stored(location),
            "version": 1,
            "created_seq": seq,
            "last_updated": to_utc(location.last_updated),
            "recent_event_ids": [event_id],
        }
        try:
            await self._locations.insert_one(document)
        except DuplicateKeyError:
            return None  # a gap in created_seq is harmless: only the order matters
        return OwnRecord(location=location, version=1, created_seq=seq, recent_event_ids=(event_id,))

    async def update(self, location: Location, version: int, event_id: str) -> OwnRecord | None:
        """Replace the location if still at `version` and `event_id` is new; None otherwise."""
        document = await self._locations.find_one_and_update(
            {"_id": location.id, "version": version, "recent_event_ids": {"$ne": event_id}},
            {
                "$set": {"location": _stored(location), "last_updated": to_utc(location.last_updated)},
                "$inc": {"version": 1},
                "$push": {"recent_event_ids": {"$each": [event_id], "$slice": -RECENT_EVENTS}},
            },
            projection={"created_seq": 1, "version": 1, "recent_event_ids": 1},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return None
        return OwnRecord(
            location=location,
            version=document["version"],
            created_seq=document["created_seq"],
            recent_event_ids=tuple(document["recent_event_ids"]),
        )

    def page_cursor(self, window: Window) -> AsyncCursor[Document]:
        """The query of a page: a range scan of the created_seq index after a cursor, else a skip."""
        query = _date_filter(window.date_from, window.date_to)
        if window.after_seq is not None:
            query["created_seq"] = {"$gt": window.after_seq}
        cursor = self._locations.find(query, {"location": 1, "created_seq": 1}).sort("created_seq", ASCENDING)
        if window.after_seq is None and window.offset:
            cursor = cursor.skip(window.offset)
        return cursor.limit(window.limit)

    async def page(self, window: Window) -> list[tuple[int, Location]]:
        """(created_seq, location) pairs of a window, oldest creation first."""
        rows = await self.page_cursor(window).to_list()
        return [(row["created_seq"], convert(row["location"], Location)) for row in rows]

    async def count(self, date_from: datetime | None, date_to: datetime | None) -> int:
        """How many locations match the date filters.

        Without filters the collection's own count answers from metadata instead of a scan of
        every document on every page; with filters the last_updated index bounds the count.
        """
        query = _date_filter(date_from, date_to)
        if not query:
            return await self._locations.estimated_document_count()
        return await self._locations.count_documents(query)


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
                "$set": {"location": _stored(location), "last_updated": to_utc(location.last_updated)},
                "$inc": {"version": 1},
            },
        )
        if result.matched_count != 1:
            return None
        return PartnerRecord(
            country_code=country_code, party_id=party_id, location=location, version=version + 1
        )


async def mongo_repository(db: AsyncDatabase[Document]) -> Repository:
    """The MongoDB repository of a service database, with its indexes in place."""
    own, partners = MongoOwnLocations(db), MongoPartnerLocations(db)
    await own.ensure_indexes()
    await partners.ensure_indexes()
    return Repository(own=own, partners=partners)
