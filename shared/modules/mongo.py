"""The MongoDB stores of a module: our objects (Sender side) and partners' copies (Receiver side).

Every write is an atomic single-document operation whose filter carries the precondition (`version`),
so replicas never overwrite each other. Our objects are written in unordered bulk writes of such
operations, one per batch of inputs; the stored `recent_event_ids` the caller checked its inputs
against are those of that version, so a redelivered input never applies twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo import ASCENDING, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.contracts.partners import Party
from shared.modules.receiver import PartnerRecord, PartnerVersion
from shared.modules.sender import RECENT_EVENTS, Owners, OwnRecord, OwnWrite, Removed, Window
from shared.ocpi.v2_1_1.codec import convert, to_builtins
from shared.ocpi.v2_1_1.types import to_utc, utc_now
from shared.storage import DUPLICATE_KEY, Document

T = TypeVar("T")
COUNTERS = "counters"
# The longest a cached count of all objects is trusted while the counter stands still.
TOTAL_MAX_AGE = 60.0
# How many of our objects a process keeps as it last wrote or read them (see MongoSenderStore).
CACHE_SIZE = 20_000


def stored_form(obj: object) -> Document:
    """An OCPI object as a document: DateTimes stay BSON dates so that they can be queried."""
    document: Document = to_builtins(obj, keep_datetimes=True)
    return document


def _date_filter(date_from: datetime | None, date_to: datetime | None) -> Document:
    bounds: Document = {}
    if date_from is not None:
        bounds["$gte"] = to_utc(date_from)
    if date_to is not None:
        bounds["$lt"] = to_utc(date_to)
    return {"last_updated": bounds} if bounds else {}


class MongoSenderStore(Generic[T]):
    """SenderStore in one collection (`_id` is the object's id), creation order from a counter.

    The store keeps the records this process last wrote or read (up to CACHE_SIZE, least recently
    used out first), so that a batch of inputs reads only the objects it does not know yet: in the
    steady state a batch costs its one bulk write. Another replica's write makes a cached record
    stale; the compare-and-set on `version` then fails, the entry is dropped and read again, so
    several replicas stay correct. Reads for partners (`get`, `page`) always go to the database.
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collection: str,
        type_: type[T],
        field: str,
        updated_of: Callable[[T], datetime],
        removable: bool = False,
        cache_size: int = CACHE_SIZE,
        owner_path: str | None = None,
    ) -> None:
        self.collection: AsyncCollection[Document] = db[collection]
        # Where the owner Party sits in the document ("charging.owner"), for lists by owner.
        self._owner_path = owner_path
        self.counters: AsyncCollection[Document] = db[COUNTERS]
        self._name = collection
        self._type = type_
        self._field = field  # the document field that holds the object ("location", "tariff")
        self._updated_of = updated_of
        # Tombstones exist only in modules that remove objects; lists and counts must leave them out.
        self._live: Document = {"removed": {"$ne": True}} if removable else {}
        self._cache: OrderedDict[str, OwnRecord[T]] = OrderedDict()
        self._cache_size = cache_size
        # (counter value, count of all objects, monotonic time it was counted)
        self._total: tuple[int, int, float] | None = None

    async def ensure_indexes(self) -> None:
        """Indexes of the pull API: creation order for pages, last_updated for date filters."""
        await self.collection.create_index([("created_seq", ASCENDING)], unique=True)
        await self.collection.create_index([("last_updated", ASCENDING)])
        if self._owner_path is not None:
            # A partner's list of sessions or CDRs (its own parties, a date window).
            path = self._owner_path
            await self.collection.create_index(
                [
                    (f"{path}.country_code", ASCENDING),
                    (f"{path}.party_id", ASCENDING),
                    ("last_updated", ASCENDING),
                ]
            )
        # Create the counter once, so that `_reserve_seqs` never races on an upsert (SecantusDB answers
        # concurrent upserts of one document with None; MongoDB may raise DuplicateKeyError).
        with contextlib.suppress(DuplicateKeyError):
            await self.counters.update_one({"_id": self._name}, {"$setOnInsert": {"seq": 0}}, upsert=True)

    def _record(self, document: Document) -> OwnRecord[T]:
        return OwnRecord(
            value=convert(document[self._field], self._type),
            version=document["version"],
            created_seq=document["created_seq"],
            recent_event_ids=tuple(document.get("recent_event_ids", ())),
            removed=bool(document.get("removed", False)),
        )

    def _remember(self, key: str, record: OwnRecord[T]) -> None:
        known = self._cache.get(key)
        if known is not None and known.version > record.version:
            return  # a read that began before our own newer write
        self._cache[key] = record
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def get(self, key: str) -> OwnRecord[T] | None:
        """The stored record, if any, read from the database."""
        document = await self.collection.find_one({"_id": key})
        if document is None:
            return None
        record = self._record(document)
        self._remember(key, record)
        return record

    async def get_many(self, keys: Collection[str]) -> dict[str, OwnRecord[T]]:
        """The records among `keys`: the ones this process knows, and one query for the rest."""
        found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [key for key in keys if key not in found]
        if missing:
            for document in await self.collection.find({"_id": {"$in": missing}}).to_list():
                record = self._record(document)
                self._remember(document["_id"], record)
                found[document["_id"]] = record
        for key in found:
            self._cache.move_to_end(key)
        return found

    async def _reserve_seqs(self, count: int) -> int:
        """Reserve `count` creation numbers; the first of them."""
        counter = await self.counters.find_one_and_update(
            {"_id": self._name}, {"$inc": {"seq": count}}, return_document=ReturnDocument.AFTER
        )
        if counter is None:
            raise RuntimeError(f"counter {self._name!r} is missing: run ensure_indexes()")
        return int(counter["seq"]) - count + 1

    async def save_many(self, writes: Sequence[OwnWrite[T]]) -> dict[str, int]:
        """Store every write whose precondition holds in one unordered bulk write.

        The filters carry the preconditions, so each write is decided atomically on its own. The
        bulk result only counts matches; when fewer updates matched than were sent, the ones that
        took effect are told apart by the token each write stores (`write_id`, unique to it: an
        event id is not, another replica may apply the same input). A write that took effect but
        was overwritten before the read-back counts as lost; its inputs are then found remembered
        and only announced again. What was written is remembered as written, never read back.
        """
        if any(not write.event_ids for write in writes):
            raise ValueError("every write carries the event ids of its inputs")
        new = [write for write in writes if write.version is None]
        first_seq = await self._reserve_seqs(len(new)) if new else 0
        seqs: dict[str, int] = {}
        tokens = {write.key: uuid.uuid4().hex for write in writes}
        operations: list[InsertOne[Document] | UpdateOne] = []
        for write in writes:
            if write.version is None:
                seqs[write.key] = first_seq + len(seqs)  # a gap left by a failed insert is harmless
                operations.append(InsertOne(self._new_document(write, seqs[write.key], tokens[write.key])))
            else:
                operations.append(self._update(write, tokens[write.key]))
        failed: set[int] = set()
        try:
            result = await self.collection.bulk_write(operations, ordered=False)
            matched = result.matched_count
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                self._forget(writes)
                raise
            failed = {int(error["index"]) for error in errors}
            matched = int(exc.details.get("nMatched", 0))
        except Exception:
            self._forget(writes)  # whether anything was written is unknown
            raise
        saved = {w.key: 1 for i, w in enumerate(writes) if w.version is None and i not in failed}
        updates = [write for write in writes if write.version is not None]
        if matched == len(updates):
            saved.update({write.key: write.version + 1 for write in updates if write.version is not None})
        else:
            stored = await self.collection.find(
                {"_id": {"$in": [w.key for w in updates]}}, {"write_id": 1}
            ).to_list()
            written = {document["_id"]: document.get("write_id") for document in stored}
            for write in updates:
                if write.version is not None and written.get(write.key) == tokens[write.key]:
                    saved[write.key] = write.version + 1
        for write in writes:
            after = self._after(write, saved[write.key], seqs) if write.key in saved else None
            if after is None:
                self._cache.pop(write.key, None)  # lost to another writer, or not known: read it again
            else:
                self._remember(write.key, after)
        return saved

    def _after(self, write: OwnWrite[T], version: int, seqs: dict[str, int]) -> OwnRecord[T] | None:
        """The record a stored write made, from the one it was applied to; None when not known."""
        if write.version is None:
            return OwnRecord(
                write.value, version, seqs[write.key], write.event_ids[-RECENT_EVENTS:], write.removed
            )
        known = self._cache.get(write.key)
        if known is None or known.version != write.version:
            return None
        recent = (*known.recent_event_ids, *write.event_ids)[-RECENT_EVENTS:]
        return OwnRecord(write.value, version, known.created_seq, recent, write.removed)

    def _forget(self, writes: Sequence[OwnWrite[T]]) -> None:
        for write in writes:
            self._cache.pop(write.key, None)

    def _new_document(self, write: OwnWrite[T], seq: int, token: str) -> Document:
        return {
            "_id": write.key,
            self._field: stored_form(write.value),
            "version": 1,
            "created_seq": seq,
            "last_updated": to_utc(self._updated_of(write.value)),
            "recent_event_ids": list(write.event_ids[-RECENT_EVENTS:]),
            "write_id": token,
            **({"removed": True} if write.removed else {}),
        }

    def _update(self, write: OwnWrite[T], token: str) -> UpdateOne:
        changes: Document = {
            "$set": {
                self._field: stored_form(write.value),
                "last_updated": to_utc(self._updated_of(write.value)),
                "write_id": token,
                **({"removed": True} if write.removed else {}),
            },
            "$inc": {"version": 1},
            "$push": {"recent_event_ids": {"$each": list(write.event_ids), "$slice": -RECENT_EVENTS}},
        }
        if self._live and not write.removed:
            changes["$unset"] = {"removed": ""}
        # The version alone: the event ids were checked against what this version remembers.
        return UpdateOne({"_id": write.key, "version": write.version}, changes)

    async def _top_seq(self) -> int:
        """The last creation number handed out: no object has a higher created_seq."""
        counter = await self.counters.find_one({"_id": self._name})
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
        query.update(self._live)
        query.update(self._owner_filter(window.owners))
        cursor = self.collection.find(query, {self._field: 1, "created_seq": 1}).sort(
            "created_seq", ASCENDING
        )
        if window.after_seq is None and window.offset:
            cursor = cursor.skip(window.offset)
        return cursor.limit(window.limit)

    async def page(self, window: Window) -> list[tuple[int, T]]:
        """(created_seq, object) pairs of a window, oldest creation first.

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
        return [(row["created_seq"], convert(row[self._field], self._type)) for row in rows]

    def _owner_filter(self, owners: Owners | None) -> Document:
        if owners is None:
            return {}
        if self._owner_path is None:
            raise TypeError(f"{self._name} has no owners to list by")
        path = self._owner_path
        either = [{f"{path}.country_code": cc, f"{path}.party_id": pid} for cc, pid in owners]
        # No party at all sees nothing (an empty $or is not a valid query).
        return {"$or": either} if either else {"_id": {"$in": []}}

    async def count(
        self, date_from: datetime | None, date_to: datetime | None, owners: Owners | None = None
    ) -> int:
        """How many objects match the date filters (and belong to `owners`, counted every time).

        With filters the last_updated index bounds the count. Without, the collection's own count
        answers (metadata on MongoDB), and is kept between pages: objects without tombstones are
        never deleted and every creation first takes a number from the counter, so the count can
        only change when the counter moves. It is taken again then, or after a minute (a creation
        that took its number before a count but was stored after it shows then). A module with
        tombstones counts the live objects every time (a removal does not move the counter).
        """
        query = {**_date_filter(date_from, date_to), **self._owner_filter(owners)}
        if query or self._live:
            return await self.collection.count_documents({**query, **self._live})
        top = await self._top_seq()
        cached = self._total
        if cached is not None and cached[0] == top and time.monotonic() - cached[2] < TOTAL_MAX_AGE:
            return cached[1]
        total = await self.collection.estimated_document_count()
        self._total = (top, total, time.monotonic())
        return total


class MongoReceiverStore(Generic[T]):
    """ReceiverStore in one collection, unique by (country_code, party_id, id), with outbox marks."""

    def __init__(
        self, db: AsyncDatabase[Document], collection: str, type_: type[T], field: str,
        updated_of: Callable[[T], datetime],
    ) -> None:  # fmt: skip
        self.collection: AsyncCollection[Document] = db[collection]
        self._type = type_
        self._field = field
        self._updated_of = updated_of

    async def ensure_indexes(self) -> None:
        """The natural key, and last_updated for re-sync bookkeeping."""
        await self.collection.create_index(
            [("country_code", ASCENDING), ("party_id", ASCENDING), ("id", ASCENDING)], unique=True
        )
        # Every write is compare-and-set on the natural key and `version`. MongoDB serves that from
        # the unique index above; SecantusDB (the test database) uses an index only when it covers
        # every field of the filter, and scans otherwise: 120 ms per write at 3,000 objects, 5 ms
        # with this one.
        await self.collection.create_index(
            [("country_code", ASCENDING), ("party_id", ASCENDING), ("id", ASCENDING), ("version", ASCENDING)]
        )
        await self.collection.create_index([("last_updated", ASCENDING)])
        # Only changes whose event has not gone out yet carry the mark: a small sparse index.
        await self.collection.create_index([("unannounced_since", ASCENDING)], sparse=True)

    @staticmethod
    def _key(country_code: str, party_id: str, key: str) -> Document:
        return {"country_code": country_code, "party_id": party_id, "id": key}

    def _record(self, document: Document) -> PartnerRecord[T]:
        return PartnerRecord(
            party=Party(document["country_code"], document["party_id"]),
            key=document["id"],
            value=convert(document[self._field], self._type),
            version=document["version"],
            removed=bool(document.get("removed", False)),
            via=str(document.get("via", "")),
        )

    async def get(self, party: Party, key: str) -> PartnerRecord[T] | None:
        """The stored record (also a tombstone), if any."""
        document = await self.collection.find_one(self._key(party.country_code, party.party_id, key))
        return None if document is None else self._record(document)

    async def save(
        self, party: Party, key: str, state: T | Removed[T], version: int | None, via: str = ""
    ) -> PartnerRecord[T] | None:
        """Store `state` marked unannounced if the record is still at `version` (None: absent)."""
        removed = isinstance(state, Removed)
        value: T = state.last if isinstance(state, Removed) else state
        where = self._key(party.country_code, party.party_id, key)
        fields: dict[str, Any] = {
            self._field: stored_form(value),
            "last_updated": to_utc(self._updated_of(value)),
            "unannounced_since": utc_now(),
            "removed": removed,
            "via": via,
        }
        if version is None:
            try:
                await self.collection.insert_one({**where, **fields, "version": 1})
            except DuplicateKeyError:
                return None
        else:
            result = await self.collection.update_one(
                {**where, "version": version}, {"$set": fields, "$inc": {"version": 1}}
            )
            if result.matched_count != 1:
                return None
        return PartnerRecord(party, key, value, 1 if version is None else version + 1, removed, via)

    async def announced(self, versions: Sequence[PartnerVersion]) -> None:
        """These versions were published: clear their marks in one bulk write (a newer version
        keeps its own)."""
        if not versions:
            return
        await self.collection.bulk_write(
            [
                UpdateOne(
                    {**self._key(country_code, party_id, key), "version": version},
                    {"$unset": {"unannounced_since": ""}},
                )
                for country_code, party_id, key, version in versions
            ],
            ordered=False,
        )

    async def unannounced(self, stored_before: datetime, limit: int) -> list[PartnerRecord[T]]:
        """Records still marked unannounced that were stored before `stored_before`, oldest first."""
        cursor = self.collection.find({"unannounced_since": {"$lt": stored_before}})
        documents = await cursor.sort("unannounced_since", ASCENDING).limit(limit).to_list()
        return [self._record(document) for document in documents]
