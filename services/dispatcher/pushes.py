"""The newest state of each of our objects, pending pushes (one per partner and object, coalesced)
and what each partner already has. Everything is keyed by module and object key, so a tariff "T1"
and a location "T1" never meet.

`states`: `_id` {module, key}; the newest state the dispatcher saw (raw JSON, None once removed) and
its version, kept once for all partners (with many partners, a change writes the object once).
`pending`: `_id` {partner_id, module, key}; the newest version to push, the union of parts since the
last delivery, due time, attempts, parked flag and the lease (owner + expiry) of the replica pushing
it. Small documents, so that claiming one stays cheap however many are waiting.
`delivered`: `_id` {partner_id, module, key}; the newest version the partner acknowledged and which
parts the last push carried (None: the whole object).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.dispatcher.domain import Admission, admit
from services.dispatcher.push_plans import MODULE_PLANS, Part, Snapshot
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.storage import DUPLICATE_KEY, Document

# An expired lease: a document nobody holds.
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PendingPush:
    """A claimed push: what changed in one object for one partner, up to `version`."""

    partner_id: str
    module: ModuleID
    key: str
    version: int
    parts: list[Part]
    attempts: int
    # The request behind the newest state queued: the partner call carries it as X-Request-ID.
    request_id: str | None = None


@dataclass(frozen=True)
class Delivered:
    """The newest version of one object a partner acknowledged, and the parts that push carried."""

    version: int
    pushed: list[Part] | None


def _id(partner_id: str, module: ModuleID, key: str) -> dict[str, str]:
    # Field order matters: MongoDB compares embedded documents field by field, in order.
    return {"partner_id": partner_id, "module": module.value, "key": key}


def _state_id(module: ModuleID, key: str) -> dict[str, str]:
    return {"module": module.value, "key": key}


def _unchanged(job: PendingPush, owner: str, up_to: int) -> Document:
    """The claimed push, still held by `owner`, at most at version `up_to`, with no part added."""
    return {
        "_id": _id(job.partner_id, job.module, job.key),
        "lease_owner": owner,
        "version": {"$lte": up_to},
        "parts": {"$size": len(job.parts)},
    }


def _on_insert(partner_id: str, snapshot: Snapshot, now: datetime, parked: bool) -> Document:
    return {
        "partner_id": partner_id,
        "module": snapshot.module.value,
        "key": snapshot.key,
        "due_at": now,
        "attempts": 0,
        "parked": parked,
        "lease_until": NO_LEASE,
    }


def _replace(partner_id: str, snapshot: Snapshot, on_insert: Document) -> UpdateOne:
    """The newer state becomes the pending snapshot (the filter fails on a newer pending version)."""
    return UpdateOne(
        {"_id": _id(partner_id, snapshot.module, snapshot.key), "version": {"$lt": snapshot.version}},
        {
            "$set": {"version": snapshot.version, "request_id": snapshot.request_id},
            "$addToSet": {"parts": {"$each": snapshot.parts}},
            "$setOnInsert": on_insert,
        },
        upsert=True,
    )


def _merge(partner_id: str, snapshot: Snapshot, parts: list[Part], on_insert: Document) -> UpdateOne:
    """Only the parts join a pending push; a new pending push starts at this version."""
    return UpdateOne(
        {"_id": _id(partner_id, snapshot.module, snapshot.key)},
        {
            "$addToSet": {"parts": {"$each": parts}},
            # An older state keeps the newer state's request id; a new push takes this one's.
            "$setOnInsert": {**on_insert, "version": snapshot.version, "request_id": snapshot.request_id},
        },
        upsert=True,
    )


async def _bulk_upserts(collection: AsyncCollection[Document], operations: list[UpdateOne]) -> list[int]:
    """Run upserts unordered; the indexes of those that failed on the unique key."""
    if not operations:
        return []
    try:
        await collection.bulk_write(operations, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return sorted(int(error["index"]) for error in errors)
    return []


def _pushed(doc: Document) -> list[Part] | None:
    raw = doc.get("pushed")
    return None if raw is None else list(raw)


class PushQueue:
    """The `states`, `pending` and `delivered` collections of the dispatcher's database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.states: AsyncCollection[Document] = db["states"]
        self.pending: AsyncCollection[Document] = db["pending"]
        self.delivered: AsyncCollection[Document] = db["delivered"]

    async def ensure_indexes(self) -> None:
        """Indexes for the worker's claim and for per-partner park/unpark/forget."""
        await self.pending.create_index([("parked", 1), ("due_at", 1)])
        await self.pending.create_index("partner_id")
        await self.delivered.create_index("partner_id")

    async def enqueue(
        self, partner_id: str, snapshot: Snapshot, now: datetime, parked: bool
    ) -> Admission | None:
        """Record the state and coalesce its parts into the partner's pending push; None when the
        partner has it already."""
        await self.record_states([snapshot])
        admissions = await self.enqueue_many(partner_id, [snapshot], now, parked)
        return admissions[(snapshot.module, snapshot.key)]

    async def record_states(self, snapshots: Sequence[Snapshot]) -> None:
        """Keep the newest state of each object; an older one changes nothing. Before any enqueue of
        the same versions, so that a claimed push always finds a state at least as new as itself."""
        updates = [
            UpdateOne(
                {"_id": _state_id(snapshot.module, snapshot.key), "version": {"$lt": snapshot.version}},
                {"$set": {"version": snapshot.version, "state": snapshot.state}},
                upsert=True,
            )
            for snapshot in snapshots
        ]
        await _bulk_upserts(self.states, updates)  # a failure on the key: a newer state is kept

    async def newest_state(self, module: ModuleID, key: str) -> tuple[int, Document | None] | None:
        """The newest state of an object (None once removed) and its version; None when unknown."""
        doc = await self.states.find_one({"_id": _state_id(module, key)})
        return None if doc is None else (int(doc["version"]), doc.get("state"))

    async def enqueue_many(
        self, partner_id: str, snapshots: Sequence[Snapshot], now: datetime, parked: bool
    ) -> dict[tuple[ModuleID, str], Admission | None]:
        """Coalesce new states (one per object) into the partner's pending pushes: one read and one
        bulk write (a second one only for versions that met a newer pending one).

        A state newer than the partner's pending and delivered ones replaces the pending version; an
        older or repeated one only adds the parts the partner does not have yet (they go out with the
        newest state). Per object: REPLACE, MERGE, or None when nothing needs to go out.
        """
        ids = [_id(partner_id, s.module, s.key) for s in snapshots]
        delivered_docs = await self.delivered.find(
            {"_id": {"$in": ids}}, {"version": 1, "pushed": 1}
        ).to_list()
        delivered = {(ModuleID(d["_id"]["module"]), d["_id"]["key"]): d for d in delivered_docs}
        admissions: dict[tuple[ModuleID, str], Admission | None] = {}
        replaces: list[tuple[Snapshot, UpdateOne]] = []
        merges: list[tuple[Snapshot, UpdateOne]] = []
        for snapshot in snapshots:
            ref = (snapshot.module, snapshot.key)
            done = delivered.get(ref)
            on_insert = _on_insert(partner_id, snapshot, now, parked)
            if (
                admit(snapshot.version, None, None if done is None else int(done["version"]))
                is Admission.REPLACE
            ):
                replaces.append((snapshot, _replace(partner_id, snapshot, on_insert)))
                admissions[ref] = Admission.REPLACE
                continue
            plan = MODULE_PLANS[snapshot.module]
            missing = [p for p in snapshot.parts if done is None or not plan.covers(_pushed(done), p)]
            if missing:
                merges.append((snapshot, _merge(partner_id, snapshot, missing, on_insert)))
                admissions[ref] = Admission.MERGE
            else:
                admissions[ref] = None
        # A REPLACE meeting a newer (or the same) pending version fails on the key: its parts merge.
        for index in await _bulk_upserts(self.pending, [op for _, op in replaces]):
            snapshot = replaces[index][0]
            on_insert = _on_insert(partner_id, snapshot, now, parked)
            merges.append((snapshot, _merge(partner_id, snapshot, snapshot.parts, on_insert)))
            admissions[(snapshot.module, snapshot.key)] = Admission.MERGE
        # A merge loses only to a concurrent insert of the same push; then the update applies.
        raced = await _bulk_upserts(self.pending, [op for _, op in merges])
        if raced:
            await self.pending.bulk_write([merges[index][1] for index in raced], ordered=False)
        return admissions

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
            module=ModuleID(doc["module"]),
            key=doc["key"],
            version=int(doc["version"]),
            parts=list(doc.get("parts", [])),
            attempts=int(doc.get("attempts", 0)),
            request_id=doc.get("request_id"),
        )

    async def delivered_state(self, partner_id: str, module: ModuleID, key: str) -> Delivered | None:
        """What the partner acknowledged last for this object."""
        doc = await self.delivered.find_one({"_id": _id(partner_id, module, key)})
        if doc is None:
            return None
        return Delivered(version=int(doc["version"]), pushed=_pushed(doc))

    async def complete(self, job: PendingPush, owner: str, sent: Delivered, now: datetime) -> None:
        """Record the delivery; drop the push unless something it did not carry arrived meanwhile.

        The pending push goes when the state sent is at least its version and no part joined it
        since the claim (parts only ever join, so an unchanged count means unchanged parts).
        """
        doc_id = _id(job.partner_id, job.module, job.key)
        # Both at once. An event admitted in between against the old record only queues a push
        # that finds the partner has its state, and is dropped.
        _, done = await asyncio.gather(
            self._record_delivery(doc_id, job.partner_id, sent.version, sent.pushed, now),
            self.pending.delete_one(_unchanged(job, owner, sent.version)),
        )
        if done.deleted_count == 0:
            await self.release(job, owner, due=now, attempts=0)

    async def _record_delivery(
        self, doc_id: Document, partner_id: str, version: int, pushed: list[Part] | None, now: datetime
    ) -> None:
        try:
            await self.delivered.update_one(
                {"_id": doc_id, "version": {"$lte": version}},
                {
                    "$max": {"version": version},
                    "$set": {"partner_id": partner_id, "pushed": pushed, "at": now},
                },
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # something newer was delivered already; keep it

    async def release(self, job: PendingPush, owner: str, due: datetime, attempts: int) -> None:
        """Give the lease back; the push is due again at `due`."""
        await self.pending.update_one(
            {"_id": _id(job.partner_id, job.module, job.key), "lease_owner": owner},
            {"$set": {"due_at": due, "attempts": attempts, "lease_until": NO_LEASE, "lease_owner": None}},
        )

    async def park(self, job: PendingPush, owner: str, attempts: int) -> None:
        """Set the push aside (its partner is out of sync); it keeps the newest state."""
        await self.pending.update_one(
            {"_id": _id(job.partner_id, job.module, job.key), "lease_owner": owner},
            {"$set": {"parked": True, "attempts": attempts, "lease_until": NO_LEASE, "lease_owner": None}},
        )

    async def drop(self, job: PendingPush, owner: str, now: datetime) -> None:
        """Delete a push that must not go out (partner gone, or it has this state already)."""
        done = await self.pending.delete_one(_unchanged(job, owner, job.version))
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
