"""Push records: one document per partner and object, keyed by module, holding all a push needs.

Collection `pushes`, `_id` "partner_id/module/key" (record_id), the three also as fields:
- the newest state known (`state`, raw JSON, None once removed), its `version` and `request_id`;
- what is pending: `parts` (union of the changed parts since the last delivery), `due_at` (None:
  nothing pending), `priority` (claims take higher first; 0 once nothing is pending), `attempts`,
  `parked`, and the lease (`lease_owner`, `lease_until`);
- what the partner has: `delivered` (the newest version it acknowledged) and `pushed` (the parts
  that push carried; None: the whole object).

Why one document: a change costs one bulk write for every partner and object of a batch (no read),
a claim returns everything the push needs, and a completion is one compare-and-set update. The
state is kept per partner, not once for all: with P partners a change writes it P times, in the
same bulk write, which is cheaper than the reads a shared copy costs every push.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog
from bson import Binary
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from services.dispatcher.push_plans import MODULE_PLANS, Part, Snapshot
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.storage import Document

log = structlog.get_logger(__name__)

# An expired lease: a document nobody holds.
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PendingPush:
    """A claimed push: the newest state of one object for one partner, and what the partner has."""

    partner_id: str
    module: ModuleID
    key: str
    version: int
    state: Document | None
    parts: list[Part]
    attempts: int
    # The request behind the newest state queued: the partner call carries it as X-Request-ID.
    request_id: str | None = None
    delivered: Delivered | None = None
    # The version the partner refused for good, if any (see push_worker: it is not sent again).
    refused: int | None = None


@dataclass(frozen=True)
class Delivered:
    """The newest version of one object a partner acknowledged, and the parts that push carried."""

    version: int
    pushed: list[Part] | None


# A push record's identity in memory: (partner_id, module, object key).
PushKey = tuple[str, str, str]


def push_key(job: PendingPush) -> PushKey:
    """The identity of a claimed push's record."""
    return (job.partner_id, job.module.value, job.key)


def record_id(partner_id: str, module: ModuleID, key: str) -> str:
    """A push record's `_id`: "partner/module/key". Partner ids and module names hold no "/", so it
    is unique however the key is spelt; it is never parsed (the fields are stored beside it).

    A string, not an embedded document: every claim, completion and upsert finds its record by
    `_id`, and some servers (SecantusDB, the test database) look up a document-valued `_id` by
    scanning the collection, 80 ms per lookup at 4,000 records against 0.7 ms for a string."""
    return f"{partner_id}/{module.value}/{key}"


_id = record_id


def stored_state(state: Document | None) -> Binary | None:
    """A state as the record keeps it: its JSON bytes, one opaque value. The dispatcher never
    queries into a state, and one binary field costs the database far less to rewrite with every
    change than the object's nested document (on SecantusDB about a third less per upsert)."""
    return None if state is None else Binary(_state_encoder.encode(state))


def state_of(stored: object) -> Document | None:
    """The state a record keeps (JSON bytes; a nested document from before this format)."""
    if stored is None:
        return None
    if isinstance(stored, bytes):
        decoded: Document = msgspec.json.decode(stored)
        return decoded
    if isinstance(stored, dict):
        return stored
    raise TypeError(f"a push record's state is {type(stored).__name__}")


_state_encoder = msgspec.json.Encoder()


def _coalesce(partner_id: str, snapshot: Snapshot, now: datetime, parked: bool) -> UpdateOne:
    """Fold a snapshot into the partner's push record, in one upsert and without reading it first.

    A newer version replaces the state (and its request id); any version adds its parts, so a late
    event's part still goes out, with the newest state. The push becomes due now unless it is
    pending already (a retry keeps its backoff). Whether the partner has it already is the worker's
    question: it reads `delivered` with the claim, so no read is needed here.
    """
    newer = {"$gt": [snapshot.version, {"$ifNull": ["$version", -1]}]}
    # Urgency is the module's call (a blocked card); once set it holds until the push completes, so
    # a later ordinary change of the same object never sends an invalidation back to the queue's end.
    priority = MODULE_PLANS[snapshot.module].priority(snapshot.state, snapshot.parts)
    return UpdateOne(
        {"_id": _id(partner_id, snapshot.module, snapshot.key)},
        [
            {"$set": {"_newer": newer}},
            {
                "$set": {
                    "partner_id": partner_id,
                    "module": snapshot.module.value,
                    "key": snapshot.key,
                    "version": {"$cond": ["$_newer", snapshot.version, "$version"]},
                    "state": {"$cond": ["$_newer", {"$literal": stored_state(snapshot.state)}, "$state"]},
                    "request_id": {"$cond": ["$_newer", {"$literal": snapshot.request_id}, "$request_id"]},
                    "parts": {"$setUnion": [{"$ifNull": ["$parts", []]}, {"$literal": snapshot.parts}]},
                    "due_at": {"$ifNull": ["$due_at", now]},
                    "priority": {"$max": [{"$ifNull": ["$priority", 0]}, priority]},
                    "attempts": {"$ifNull": ["$attempts", 0]},
                    # Parking is the health's to undo; a change of a parked push keeps it parked.
                    "parked": {"$or": [{"$ifNull": ["$parked", False]}, parked]},
                    "lease_until": {"$ifNull": ["$lease_until", NO_LEASE]},
                }
            },
            {"$unset": "_newer"},
        ],
        upsert=True,
    )


def finish(
    job: PendingPush, owner: str, sent: Delivered | None, now: datetime, refused: str | None = None
) -> UpdateOne:
    """The one update that ends a push this owner holds: record what the partner now has (`sent`,
    None when nothing was sent), and clear the pending push unless a newer version or a new part
    joined it since the claim (parts only ever join, so an unchanged count means unchanged parts);
    then it stays pending, due now, with the lease released. `refused`: the partner refused this
    version for good (why): the push ends without a delivery, the record keeps the refusal, and
    only a newer change goes out again."""
    unchanged = {
        "$and": [
            {"$eq": ["$version", job.version]},
            {"$eq": [{"$size": {"$ifNull": ["$parts", []]}}, len(job.parts)]},
        ]
    }
    fields: dict[str, Any] = {
        "due_at": {"$cond": [unchanged, None, now]},
        "parts": {"$cond": [unchanged, {"$literal": []}, "$parts"]},
        # What joined may be the urgent part: the push keeps its priority until nothing is pending.
        "priority": {"$cond": [unchanged, 0, {"$ifNull": ["$priority", 0]}]},
        "attempts": 0,
        "lease_owner": None,
        "lease_until": NO_LEASE,
    }
    if sent is not None:
        later = {"$gt": [sent.version, {"$ifNull": ["$delivered", -1]}]}
        fields["delivered"] = {"$cond": [later, sent.version, "$delivered"]}
        # What this push carried (as before: the parts of the last push, not their union).
        fields["pushed"] = {"$literal": sent.pushed}
        fields["refused"] = "$$REMOVE"
    if refused is not None:
        fields["refused"] = {"$literal": {"version": job.version, "detail": refused[:500], "at": now}}
    return UpdateOne(
        {"_id": _id(job.partner_id, job.module, job.key), "lease_owner": owner}, [{"$set": fields}]
    )


def _pending(doc: Document) -> PendingPush:
    """The push a claimed record holds."""
    delivered = doc.get("delivered")
    pushed = doc.get("pushed")
    return PendingPush(
        partner_id=doc["partner_id"],
        module=ModuleID(doc["module"]),
        key=doc["key"],
        version=int(doc["version"]),
        state=state_of(doc.get("state")),
        parts=list(doc.get("parts") or []),
        attempts=int(doc.get("attempts", 0)),
        request_id=doc.get("request_id"),
        delivered=None
        if delivered is None
        else Delivered(int(delivered), None if pushed is None else list(pushed)),
        refused=None if not isinstance(doc.get("refused"), dict) else int(doc["refused"]["version"]),
    )


class PushQueue:
    """The `pushes` collection of the dispatcher's database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.pushes: AsyncCollection[Document] = db["pushes"]

    async def ensure_indexes(self) -> None:
        """Indexes for the worker's claim and for per-partner park/unpark/forget."""
        # The claim: equality on `parked`, then its sort (priority first) with the range on `due_at`.
        await self.pushes.create_index([("parked", 1), ("priority", -1), ("due_at", 1)])
        await self.pushes.create_index("partner_id")
        # The claim's index before priorities: every write would keep it up to date for nothing.
        with contextlib.suppress(OperationFailure):
            await self.pushes.drop_index("parked_1_due_at_1")

    async def enqueue(self, partner_id: str, snapshot: Snapshot, now: datetime, parked: bool) -> None:
        """Coalesce one state into one partner's push record."""
        await self.enqueue_many([(partner_id, parked)], [snapshot], now)

    async def enqueue_many(
        self, partners: Sequence[tuple[str, bool]], snapshots: Sequence[Snapshot], now: datetime
    ) -> int:
        """Coalesce states (one per object) into the push records of every (partner, parked) given:
        one unordered bulk write of upserts for the lot. The number of pushes now pending."""
        return await self.enqueue_each(
            [(partner_id, parked, snapshot) for partner_id, parked in partners for snapshot in snapshots],
            now,
        )

    async def enqueue_each(self, targets: Sequence[tuple[str, bool, Snapshot]], now: datetime) -> int:
        """Coalesce each (partner, parked, state) given into that partner's push record (each
        object's state at most once per partner): one unordered bulk write of upserts for the lot,
        whatever the modules and audiences. The number of pushes now pending."""
        operations = [
            _coalesce(partner_id, snapshot, now, parked) for partner_id, parked, snapshot in targets
        ]
        if operations:
            await self.pushes.bulk_write(operations, ordered=False)
        return len(operations)

    async def claim(
        self, owner: str, now: datetime, lease: float, busy: Collection[str] = ()
    ) -> PendingPush | None:
        """Lease the most urgent, then most overdue, unparked push that no live lease holds, with
        all it needs, of a partner not in `busy` (those holding their share of the workers). A
        blocked card thus goes before a backlog of any size, for any partner."""
        query: Document = {"parked": False, "due_at": {"$lte": now}, "lease_until": {"$lte": now}}
        if busy:
            query["partner_id"] = {"$nin": sorted(busy)}
        doc = await self.pushes.find_one_and_update(
            query,
            {"$set": {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease)}},
            sort=[("priority", -1), ("due_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _pending(doc)

    async def claim_key(self, owner: str, key: PushKey, now: datetime, lease: float) -> PendingPush | None:
        """Lease one record by its identity, if it is due, unparked and held by no live lease.

        A point lookup on `_id`: its cost does not grow with the backlog, on any server (a sorted
        claim over thousands of due records is a scan on servers that do not use the sort's index,
        SecantusDB among them). The worker claims the records it was woken for this way.
        """
        partner_id, module, object_key = key
        doc = await self.pushes.find_one_and_update(
            {
                "_id": _id(partner_id, ModuleID(module), object_key),
                "parked": False,
                "due_at": {"$lte": now},
                "lease_until": {"$lte": now},
            },
            {"$set": {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease)}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _pending(doc)

    async def finish_many(self, operations: Sequence[UpdateOne]) -> None:
        """Write the `finish` updates of several pushes at once (see Completions)."""
        if operations:
            await self.pushes.bulk_write(list(operations), ordered=False)

    async def complete(self, job: PendingPush, owner: str, sent: Delivered | None, now: datetime) -> None:
        """Record the delivery and clear the push unless something joined it (see `finish`)."""
        await self.finish_many([finish(job, owner, sent, now)])

    async def release(self, job: PendingPush, owner: str, due: datetime, attempts: int) -> None:
        """Give the lease back; the push is due again at `due`."""
        await self.pushes.update_one(
            {"_id": _id(job.partner_id, job.module, job.key), "lease_owner": owner},
            {"$set": {"due_at": due, "attempts": attempts, "lease_until": NO_LEASE, "lease_owner": None}},
        )

    async def park(self, job: PendingPush, owner: str, attempts: int) -> None:
        """Set the push aside (its partner is out of sync); it keeps the newest state."""
        await self.pushes.update_one(
            {"_id": _id(job.partner_id, job.module, job.key), "lease_owner": owner},
            {"$set": {"parked": True, "attempts": attempts, "lease_until": NO_LEASE, "lease_owner": None}},
        )

    async def forget(self, job: PendingPush, owner: str) -> None:
        """Delete the record of a push that must never go out (its partner no longer receives it)."""
        await self.pushes.delete_one({"_id": _id(job.partner_id, job.module, job.key), "lease_owner": owner})

    async def park_partner(self, partner_id: str) -> int:
        """Park every pending push of a partner; the number parked. (A record with nothing pending
        is parked by the next change, while the partner is OUT_OF_SYNC.)"""
        result = await self.pushes.update_many(
            {"partner_id": partner_id, "parked": False, "due_at": {"$ne": None}}, {"$set": {"parked": True}}
        )
        return result.modified_count

    async def unpark_partner(self, partner_id: str, now: datetime) -> int:
        """Make every parked push of a partner due now, with fresh attempts; the number unparked.
        Records with nothing pending stay so (no push without a change)."""
        result = await self.pushes.update_many(
            {"partner_id": partner_id, "parked": True},
            [
                {
                    "$set": {
                        "parked": False,
                        "attempts": 0,
                        "due_at": {"$cond": [{"$eq": [{"$ifNull": ["$due_at", None]}, None]}, None, now]},
                    }
                }
            ],
        )
        return result.modified_count

    async def parked_partner_ids(self) -> list[str]:
        """Partners that have parked pushes."""
        return [str(p) for p in await self.pushes.distinct("partner_id", {"parked": True})]

    async def forget_partner(self, partner_id: str) -> int:
        """Delete every push record of a partner; the number deleted."""
        dropped = await self.pushes.delete_many({"partner_id": partner_id})
        return dropped.deleted_count

    async def record(self, partner_id: str, module: ModuleID, key: str) -> Document | None:
        """The push record of one object for one partner (diagnostics, tests)."""
        return await self.pushes.find_one({"_id": _id(partner_id, module, key)})

    async def pending_count(self, partner_id: str | None = None) -> int:
        """How many pushes are pending (for one partner)."""
        query: Document = {"due_at": {"$ne": None}}
        if partner_id is not None:
            query["partner_id"] = partner_id
        return await self.pushes.count_documents(query)


class Completions:
    """Group commit of push completions: the finishes of pushes that run together go out in one bulk
    write, so a change pushed to P partners costs one completion write, not P.

    A finish is held until no push of this replica is running or about to be claimed (`expect`
    counts the workers woken for queued pushes), or until `window` seconds passed since the first
    one held; then everything held is written at once, and a finish that arrives during that write
    joins the next one. The worker does not wait for the write: it holds the push's lease until
    then, so nobody pushes that object meanwhile, and a crash before the write only repeats those
    pushes (delivery is at least once).
    """

    def __init__(
        self, queue: PushQueue, window: float, on_written: Callable[[Sequence[PushKey]], None]
    ) -> None:
        self._queue = queue
        self._window = window
        self._on_written = on_written
        self._held: list[tuple[UpdateOne, PushKey]] = []
        self._busy = 0  # pushes claimed or about to be claimed, whose finish is not held yet
        self._writing: asyncio.Task[None] | None = None
        self._in_write = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """Nothing held and nothing being written."""
        return not self._held and not self._in_write

    def expect(self, count: int = 1) -> None:
        """`count` pushes will be claimed (workers were woken for them)."""
        self._busy += count

    def settled(self) -> None:
        """An expected push ended without a finish (nothing claimed, failed, parked)."""
        self._busy = max(0, self._busy - 1)
        self._maybe_write()

    def add(self, update: UpdateOne, key: PushKey) -> None:
        """Hold the `finish` update of an expected push (of record `key`) for the next group write."""
        self._held.append((update, key))
        self._busy = max(0, self._busy - 1)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._write_now)
        self._maybe_write()

    async def drain(self) -> None:
        """Write everything held and wait for it (on stop)."""
        while not self.idle or (self._writing is not None and not self._writing.done()):
            self._write_now()
            if self._writing is not None:
                await asyncio.gather(self._writing, return_exceptions=True)

    def _maybe_write(self) -> None:
        if self._held and self._busy == 0:
            self._write_now()

    def _write_now(self) -> None:
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write())

    async def _write(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._held = self._held, []
        if batch:
            self._in_write = True
            try:
                await self._queue.finish_many([update for update, _ in batch])
            except Exception:
                # Their leases run out and the pushes go again: at least once, never lost.
                log.exception("push_completions_not_written", count=len(batch))
            finally:
                self._in_write = False
            self._on_written([key for _, key in batch])
        if self._held:
            # Finishes that came during the write: the last push or their own timer writes them.
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._window, self._write_now)
            if self._busy == 0:
                self._writing = asyncio.create_task(self._write())
