"""Pending pushes (one per partner and location, coalesced) and what each partner already has.

`pending`: `_id` {partner_id, key}; the newest snapshot, its version, the union of changes since the
last delivery, due time, attempts, parked flag and the lease (owner + expiry) of the replica pushing it.
`delivered`: `_id` {partner_id, key}; the newest version the partner acknowledged, that snapshot, and
which parts the last push carried (None: the whole location).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.dispatcher.domain import Admission, admit, change_from_key, change_key, covers
from shared.contracts.locations import LocationChange
from shared.ocpi.v2_1_1.codec import convert, to_builtins
from shared.ocpi.v2_1_1.locations import Location
from shared.storage import Document

# An expired lease: a document nobody holds.
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PendingPush:
    """A claimed push: the newest state of one location for one partner."""

    partner_id: str
    key: str
    version: int
    location: Location
    changes: list[LocationChange]
    attempts: int


@dataclass(frozen=True)
class Delivered:
    """The newest state of one location a partner acknowledged."""

    version: int
    location: Location
    pushed: list[LocationChange] | None


def _id(partner_id: str, key: str) -> dict[str, str]:
    return {"partner_id": partner_id, "key": key}


def _pushed(doc: Document) -> list[LocationChange] | None:
    raw = doc.get("pushed")
    return None if raw is None else [change_from_key(c) for c in raw]


class PushQueue:
    """The `pending` and `delivered` collections of the dispatcher's database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.pending: AsyncCollection[Document] = db["pending"]
        self.delivered: AsyncCollection[Document] = db["delivered"]

    async def ensure_indexes(self) -> None:
        """Indexes for the worker's claim and for per-partner park/unpark/forget."""
        await self.pending.create_index([("parked", 1), ("due_at", 1)])
        await self.pending.create_index("partner_id")
        await self.delivered.create_index("partner_id")

    async def enqueue(
        self,
        partner_id: str,
        location: Location,
        version: int,
        change: LocationChange,
        now: datetime,
        parked: bool,
    ) -> Admission | None:
        """Coalesce a change into the partner's pending push; None when the partner has it already."""
        key = location.id
        doc_id = _id(partner_id, key)
        delivered = await self.delivered.find_one({"_id": doc_id}, {"version": 1, "pushed": 1})
        delivered_version = None if delivered is None else int(delivered["version"])
        change_doc = change_key(change)
        on_insert: dict[str, Any] = {
            "partner_id": partner_id,
            "key": key,
            "due_at": now,
            "attempts": 0,
            "parked": parked,
            "lease_until": NO_LEASE,
        }
        snapshot = {"version": version, "location": to_builtins(location)}
        if admit(version, None, delivered_version) is Admission.REPLACE:
            try:
                await self.pending.update_one(
                    {"_id": doc_id, "version": {"$lt": version}},
                    {"$set": snapshot, "$addToSet": {"changes": change_doc}, "$setOnInsert": on_insert},
                    upsert=True,
                )
                return Admission.REPLACE
            except DuplicateKeyError:
                pass  # a newer (or the same) version is pending: only its change joins
        elif delivered is not None and covers(_pushed(delivered), change):
            return None
        # An older or repeated event: its part must still go out, with the newest state we have.
        update = {"$addToSet": {"changes": change_doc}, "$setOnInsert": {**on_insert, **snapshot}}
        try:
            await self.pending.update_one({"_id": doc_id}, update, upsert=True)
        except DuplicateKeyError:  # a concurrent insert won the race; now the update applies
            await self.pending.update_one({"_id": doc_id}, update, upsert=True)
        return Admission.MERGE

    async def claim(self, owner: str, now: datetime, lease: float) -> PendingPush | None:
        """Lease the most overdue unparked push that no live lease holds."""
        doc = await self.pending.find_one_and_update(
            {"parked": False, "due_at": {"$lte": now}, "lease_until": {"$lte": now}},
            {"$set": {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease)}},
            sort=[("due_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        return PendingPush(
            partner_id=doc["partner_id"],
            key=doc["key"],
            version=int(doc["version"]),
            location=convert(doc["location"], Location),
            changes=[change_from_key(c) for c in doc.get("changes", [])],
            attempts=int(doc.get("attempts", 0)),
        )

    async def delivered_state(self, partner_id: str, key: str) -> Delivered | None:
        """What the partner acknowledged last for this location."""
        doc = await self.delivered.find_one({"_id": _id(partner_id, key)})
        if doc is None:
            return None
        return Delivered(
            version=int(doc["version"]), location=convert(doc["location"], Location), pushed=_pushed(doc)
        )

    async def complete(self, job: PendingPush, owner: str, sent: Delivered, now: datetime) -> None:
        """Record the delivery; drop the push unless a newer version arrived while it was in flight."""
        doc_id = _id(job.partner_id, job.key)
        pushed = None if sent.pushed is None else [change_key(c) for c in sent.pushed]
        try:
            await self.delivered.update_one(
                {"_id": doc_id, "version": {"$lte": sent.version}},
                {
                    "$max": {"version": sent.version},
                    "$set": {
                        "partner_id": job.partner_id,
                        "location": to_builtins(sent.location),
                        "pushed": pushed,
                        "at": now,
                    },
                },
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # something newer was delivered already; keep it
        done = await self.pending.delete_one({"_id": doc_id, "version": job.version, "lease_owner": owner})
        if done.deleted_count == 0:
            await self.release(job, owner, due=now, attempts=0)

    async def release(self, job: PendingPush, owner: str, due: datetime, attempts: int) -> None:
        """Give the lease back; the push is due again at `due`."""
        await self.pending.update_one(
            {"_id": _id(job.partner_id, job.key), "lease_owner": owner},
            {"$set": {"due_at": due, "attempts": attempts, "lease_until": NO_LEASE, "lease_owner": None}},
        )

    async def park(self, job: PendingPush, owner: str, attempts: int) -> None:
        """Set the push aside (its partner is out of sync); it keeps the newest state."""
        await self.pending.update_one(
            {"_id": _id(job.partner_id, job.key), "lease_owner": owner},
            {"$set": {"parked": True, "attempts": attempts, "lease_until": NO_LEASE, "lease_owner": None}},
        )

    async def drop(self, job: PendingPush, owner: str, now: datetime) -> None:
        """Delete a push that must not go out (partner gone, or it has this state already)."""
        done = await self.pending.delete_one(
            {"_id": _id(job.partner_id, job.key), "version": job.version, "lease_owner": owner}
        )
        if done.deleted_count == 0:
            await self.release(job, owner, due=now, attempts=0)

    async def park_partner(self, partner_id: str) -> int:
        """Park every push of a partner; the number parked."""
        result = await self.pending.update_many(
            {"partner_id": partner_id, "parked": False}, {"$set": {"parked": True}}
        )
        return result.modified_count

    async def unpark_partner(self, partner_id: str, now: datetime) -> int:
        """Make every parked push of a partner due now, with fresh attempts; the number unparked."""
        result = await self.pending.update_many(
            {"partner_id": partner_id, "parked": True},
            {"$set": {"parked": False, "due_at": now, "attempts": 0}},
        )
        return result.modified_count

    async def parked_partner_ids(self) -> list[str]:
        """Partners that have parked pushes."""
        return [str(p) for p in await self.pending.distinct("partner_id", {"parked": True})]

    async def forget_partner(self, partner_id: str) -> int:
        """Delete every pending push and delivery record of a partner; the number of pushes dropped."""
        dropped = await self.pending.delete_many({"partner_id": partner_id})
        await self.delivered.delete_many({"partner_id": partner_id})
        return dropped.deleted_count
