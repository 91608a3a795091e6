"""One-time move of the state the dispatcher kept before push records were keyed by module.

Before: `states` (`_id` = location id), `pending` and `delivered` (`_id` = {partner_id, key}), and the
pull state of the locations module in each partner document (`pull_due_at`, `pull_seq`, ...). After:
`pushes` (`_id` = "partner_id/module/key"; rekey_pushes moves records of the embedded-document form
{partner_id, module, key} used before 2026-12-02) and `pulls` (`_id` = {partner_id, module}). Run at
start by every replica: the writes only insert what is missing, so replicas starting together agree, and
pushes that were pending before the upgrade still go out after it.
"""

from __future__ import annotations

from typing import Any

import structlog
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.pushes import NO_LEASE, record_id, stored_state
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.storage import Document

log = structlog.get_logger(__name__)

LEGACY_PULL_FIELDS = ("pull_due_at", "pull_seq", "pull_full", "pull_attempts", "last_sync_started")
MODULE = ModuleID.LOCATIONS.value  # the only module before


async def migrate_legacy(db: AsyncDatabase[Document]) -> None:
    """Move legacy push and pull state into `pushes` and `pulls`, then drop the legacy copies."""
    names = set(await db.list_collection_names())
    if {"states", "pending", "delivered"} & names:
        moved = await _move_pushes(db)
        for name in ("states", "pending", "delivered"):
            await db.drop_collection(name)
        log.info("dispatcher_migrated_pushes", records=moved)
    legacy = {"$or": [{field: {"$exists": True}} for field in LEGACY_PULL_FIELDS]}
    partners = await db["partners"].find(legacy).to_list()
    if partners:
        await _move_pulls(db, partners)
        await db["partners"].update_many(legacy, {"$unset": dict.fromkeys(LEGACY_PULL_FIELDS, "")})
        log.info("dispatcher_migrated_pulls", partners=len(partners))
    rekeyed = await rekey_pushes(db)
    if rekeyed:
        log.info("dispatcher_rekeyed_pushes", records=rekeyed)


async def _move_pushes(db: AsyncDatabase[Document]) -> int:
    states = {doc["_id"]: doc async for doc in db["states"].find({"_id": {"$type": "string"}})}
    records: dict[tuple[str, str], dict[str, Any]] = {}
    async for doc in db["delivered"].find({}):
        ref = (doc["_id"]["partner_id"], doc["_id"]["key"])
        records.setdefault(ref, {}).update(delivered=int(doc["version"]), pushed=doc.get("pushed"))
    async for doc in db["pending"].find({}):
        ref = (doc["_id"]["partner_id"], doc["_id"]["key"])
        records.setdefault(ref, {}).update(
            parts=list(doc.get("changes") or []),
            due_at=doc.get("due_at"),
            attempts=int(doc.get("attempts", 0)),
            parked=bool(doc.get("parked", False)),
        )
    operations = []
    for (partner_id, key), fields in records.items():
        state = states.get(key)
        if state is None:
            continue  # nothing to push without a state; the next change brings one
        insert = {
            "partner_id": partner_id,
            "module": MODULE,
            "key": key,
            "version": int(state["version"]),
            "state": stored_state(state.get("location")),
            "request_id": None,
            "parts": [],
            "due_at": None,
            "attempts": 0,
            "parked": False,
            "lease_until": NO_LEASE,
            **fields,
        }
        _id = record_id(partner_id, ModuleID.LOCATIONS, key)
        operations.append(UpdateOne({"_id": _id}, {"$setOnInsert": insert}, upsert=True))
    if operations:
        await db["pushes"].bulk_write(operations, ordered=False)
    return len(operations)


async def rekey_pushes(db: AsyncDatabase[Document]) -> int:
    """Give push records keyed by an embedded document {partner_id, module, key} (before 2026-12-02)
    their string `_id` (pushes.record_id): copy each under the new id unless one exists (a change
    since the upgrade is newer), then delete the old. Safe to repeat and to run on every replica."""
    moved = 0
    async for doc in db["pushes"].find({"_id": {"$type": "object"}}):
        old = doc.pop("_id")
        new = record_id(doc["partner_id"], ModuleID(doc["module"]), doc["key"])
        await db["pushes"].update_one({"_id": new}, {"$setOnInsert": doc}, upsert=True)
        await db["pushes"].delete_one({"_id": old})
        moved += 1
    return moved


async def _move_pulls(db: AsyncDatabase[Document], partners: list[Document]) -> None:
    operations = []
    for doc in partners:
        if doc.get("tombstone") or doc.get("role") != "CPO":
            continue  # only CPO partners were pulled
        insert = {
            "partner_id": doc["_id"],
            "module": MODULE,
            "due_at": doc.get("pull_due_at"),
            "seq": int(doc.get("pull_seq") or 0),
            "full": bool(doc.get("pull_full", False)),
            "attempts": int(doc.get("pull_attempts") or 0),
            "last_sync_started": doc.get("last_sync_started"),
        }
        _id = {"partner_id": doc["_id"], "module": MODULE}
        operations.append(UpdateOne({"_id": _id}, {"$setOnInsert": insert}, upsert=True))
    if operations:
        await db["pulls"].bulk_write(operations, ordered=False)
