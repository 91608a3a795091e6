"""When to pull which partner: pull requests, claims and outcomes, kept in the partner documents.

`pull_seq` counts requests, so a request that arrives while a pull runs is not lost when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.dispatcher.partners import Partner
from shared.storage import Document


@dataclass(frozen=True)
class PullJob:
    """A claimed pull: the partner, which request it serves, and whether it is a full re-sync."""

    partner: Partner
    seq: int
    full: bool
    attempts: int


class PullSchedule:
    """Pull state in the `partners` collection: pull_due_at, pull_seq, pull_full, pull_attempts."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def request(self, partner_id: str, now: datetime, full: bool) -> bool:
        """Ask for a pull of the partner; True when the partner is known."""
        fields: dict[str, object] = {"pull_due_at": now, "pull_attempts": 0}
        if full:
            fields["pull_full"] = True
        result = await self.collection.update_one(
            {"_id": partner_id}, {"$set": fields, "$inc": {"pull_seq": 1}}
        )
        return result.matched_count > 0

    async def claim(self, now: datetime, lease: float) -> PullJob | None:
        """Take one due pull; its due time moves past the lease so no other replica takes it meanwhile."""
        doc = await self.collection.find_one_and_update(
            {"pull_due_at": {"$lte": now}},
            {"$set": {"pull_due_at": now + timedelta(seconds=lease)}},
            sort=[("pull_due_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        return PullJob(
            partner=Partner.from_doc(doc),
            seq=int(doc.get("pull_seq", 0)),
            full=bool(doc.get("pull_full", False)),
            attempts=int(doc.get("pull_attempts", 0)),
        )

    async def extend(self, job: PullJob, now: datetime, lease: float) -> None:
        """Keep the claim while pages are still coming."""
        await self.collection.update_one(
            {"_id": job.partner.partner_id, "pull_seq": job.seq},
            {"$set": {"pull_due_at": now + timedelta(seconds=lease)}},
        )

    async def succeeded(self, job: PullJob, started: datetime) -> None:
        """Record the sync; clear the request unless a newer one arrived meanwhile."""
        done = await self.collection.update_one(
            {"_id": job.partner.partner_id, "pull_seq": job.seq},
            {
                "$set": {"pull_due_at": None, "pull_full": False, "pull_attempts": 0},
                "$max": {"last_sync_started": started},
            },
        )
        if done.matched_count == 0:
            await self.collection.update_one(
                {"_id": job.partner.partner_id}, {"$max": {"last_sync_started": started}}
            )

    async def failed(self, job: PullJob, retry_at: datetime | None) -> None:
        """Retry at `retry_at`, or give up (None) until the next request."""
        await self.collection.update_one(
            {"_id": job.partner.partner_id, "pull_seq": job.seq},
            {"$set": {"pull_due_at": retry_at, "pull_attempts": job.attempts + 1}},
        )
