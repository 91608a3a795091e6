"""When to pull which partner's module: pull requests, claims and outcomes.

Collection `pulls`: `_id` {partner_id, module}, `due_at`, `seq`, `full`, `attempts`,
`last_sync_started`. One document per (partner, module), so a partner's tariffs are re-synced on
their own schedule and from their own last sync, whatever happens to its locations.
`seq` counts requests, so a request that arrives while a pull runs is not lost when it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.ocpi.v2_1_1.versions import ModuleID
from shared.storage import Document


@dataclass(frozen=True)
class PullJob:
    """A claimed pull: whose module, which request it serves, and whether it is a full re-sync."""

    partner_id: str
    module: ModuleID
    seq: int
    full: bool
    attempts: int
    # The start of the last successful pull of this module: the `date_from` of a delta pull.
    last_sync_started: datetime | None


def _id(partner_id: str, module: ModuleID) -> Document:
    # Field order matters: MongoDB compares embedded documents field by field, in order.
    return {"partner_id": partner_id, "module": module.value}


class PullSchedule:
    """Pull state per (partner, module) in the `pulls` collection."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["pulls"]

    async def ensure_indexes(self) -> None:
        """Indexes for the claim and for forgetting a partner."""
        await self.collection.create_index("due_at", sparse=True)
        await self.collection.create_index("partner_id")

    async def first_pulls(self, partner_id: str, modules: Sequence[ModuleID], now: datetime) -> None:
        """A full pull of every module the partner sends that has never been scheduled: on its first
        registration, and for a module it adds later. Idempotent, so a redelivered registration (after
        a crash between storing the partner and this write) still schedules them."""
        if not modules:
            return
        await self.collection.bulk_write(
            [
                UpdateOne(
                    {"_id": _id(partner_id, module)},
                    {
                        "$setOnInsert": {
                            "partner_id": partner_id,
                            "module": module.value,
                            "due_at": now,
                            "full": True,
                            "seq": 1,
                            "attempts": 0,
                        }
                    },
                    upsert=True,
                )
                for module in modules
            ],
            ordered=False,
        )

    async def request(self, partner_id: str, module: ModuleID, now: datetime, full: bool) -> None:
        """Ask for a pull of the partner's module."""
        fields: dict[str, object] = {
            "due_at": now,
            "attempts": 0,
            "partner_id": partner_id,
            "module": module.value,
        }
        if full:
            fields["full"] = True
        await self.collection.update_one(
            {"_id": _id(partner_id, module)}, {"$set": fields, "$inc": {"seq": 1}}, upsert=True
        )

    async def claim(self, now: datetime, lease: float) -> PullJob | None:
        """Take one due pull; its due time moves past the lease so no other replica takes it meanwhile."""
        doc = await self.collection.find_one_and_update(
            {"due_at": {"$lte": now}},
            {"$set": {"due_at": now + timedelta(seconds=lease)}},
            sort=[("due_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        return PullJob(
            partner_id=doc["partner_id"],
            module=ModuleID(doc["module"]),
            seq=int(doc.get("seq", 0)),
            full=bool(doc.get("full", False)),
            attempts=int(doc.get("attempts", 0)),
            last_sync_started=doc.get("last_sync_started"),
        )

    async def extend(self, job: PullJob, now: datetime, lease: float) -> None:
        """Keep the claim while pages are still coming."""
        await self.collection.update_one(
            {"_id": _id(job.partner_id, job.module), "seq": job.seq},
            {"$set": {"due_at": now + timedelta(seconds=lease)}},
        )

    async def succeeded(self, job: PullJob, started: datetime) -> None:
        """Record the sync; clear the request unless a newer one arrived meanwhile."""
        done = await self.collection.update_one(
            {"_id": _id(job.partner_id, job.module), "seq": job.seq},
            {
                "$set": {"due_at": None, "full": False, "attempts": 0},
                "$max": {"last_sync_started": started},
            },
        )
        if done.matched_count == 0:
            await self.collection.update_one(
                {"_id": _id(job.partner_id, job.module)}, {"$max": {"last_sync_started": started}}
            )

    async def failed(self, job: PullJob, retry_at: datetime | None) -> None:
        """Retry at `retry_at`, or give up (None) until the next request."""
        await self.collection.update_one(
            {"_id": _id(job.partner_id, job.module), "seq": job.seq},
            {"$set": {"due_at": retry_at, "attempts": job.attempts + 1}},
        )

    async def last_sync_started(self, partner_id: str, module: ModuleID) -> datetime | None:
        """When the last successful pull of the partner's module started."""
        doc = await self.collection.find_one({"_id": _id(partner_id, module)}, {"last_sync_started": 1})
        return None if doc is None else doc.get("last_sync_started")

    async def forget_partner(self, partner_id: str) -> None:
        """Drop every pull of a partner that is gone."""
        await self.collection.delete_many({"partner_id": partner_id})
