"""The dispatcher's projection of the partner registry, with each partner's sync, probe and pull state.

All state changes are compare-and-set updates, so several replicas agree on who publishes a transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.catalogue import IMPORTS, PUSHED
from shared.contracts.partners import PartnerRegistered, Party, SyncState
from shared.ocpi.v2_1_1.modules import MODULES
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.sealing import Sealer, seal_stored
from shared.settings import Role
from shared.storage import Document


@dataclass(frozen=True)
class Partner:
    """What the dispatcher knows about one registered partner."""

    partner_id: str
    role: Role
    parties: tuple[Party, ...]
    versions_url: str
    endpoints: dict[str, str]
    token: str
    sync_state: SyncState
    reachable: bool
    probe_interval: float

    @classmethod
    def from_doc(cls, doc: Document, token: str) -> Partner:
        """Read a partner document; `token` is its sealed token, opened."""
        return cls(
            partner_id=doc["_id"],
            role=Role(doc["role"]),
            parties=tuple(Party(p["country_code"], p["party_id"]) for p in doc.get("parties", [])),
            versions_url=doc["versions_url"],
            endpoints=dict(doc.get("endpoints", {})),
            token=token,
            sync_state=SyncState(doc.get("sync_state", SyncState.IN_SYNC.value)),
            reachable=bool(doc.get("reachable", True)),
            probe_interval=float(doc.get("probe_interval") or 0.0),
        )

    def receives(self, module: ModuleID) -> bool:
        """We push this module's objects to the partner: it plays the module's receiver role and
        gave us the module's endpoint (an eMSP with a locations endpoint gets our locations)."""
        return module in PUSHED and self.role is MODULES[module].receiver_role and module in self.endpoints

    def sends(self, module: ModuleID) -> bool:
        """We pull this module's objects from the partner: it plays the module's sender role and
        gave us the module's endpoint (a CPO with a locations endpoint is pulled from)."""
        return module in IMPORTS and self.role is MODULES[module].sender_role and module in self.endpoints

    def sent_modules(self) -> list[ModuleID]:
        """Every module we pull from the partner."""
        return [module for module in MODULES if self.sends(module)]


# The partner's token, sealed (shared/sealing.py, review M5) as the gateway handed it over; `token`
# in a document is a clear one stored before that, sealed when the dispatcher starts.
SEALED = "token_sealed"
CLEAR = "token"


class PartnerProjection:
    """MongoDB collection `partners`: one document per partner, `_id` = partner_id. The partner's
    token is kept sealed and opened when a document is read (Partner.token holds it in memory)."""

    def __init__(self, db: AsyncDatabase[Document], sealer: Sealer) -> None:
        self.collection: AsyncCollection[Document] = db["partners"]
        self._sealer = sealer

    def _partner(self, doc: Document) -> Partner:
        sealed = doc.get(SEALED)
        token = self._sealer.open(sealed, doc["_id"]) if isinstance(sealed, str) else doc.get(CLEAR, "")
        return Partner.from_doc(doc, token)

    async def seal_stored(self) -> int:
        """Seal tokens stored in clear by an earlier version, or under an older key (when the
        dispatcher starts); how many. SealError when a stored token opens with no key we hold."""
        return await seal_stored(self.collection, self._sealer, CLEAR, SEALED)

    async def ensure_indexes(self) -> None:
        """Indexes for the probe loop's claim and the receivers query."""
        await self.collection.create_index("probe_due_at", sparse=True)
        await self.collection.create_index("role")

    async def register(
        self, event: PartnerRegistered, sealed_token: str, now: datetime, cpo_probe: float
    ) -> bool:
        """Upsert the partner's connection with its token as the gateway sealed it; True on its first
        registration. Older events are ignored."""
        is_cpo = event.role is Role.CPO
        fields: dict[str, Any] = {
            "name": event.name,
            "role": event.role.value,
            "parties": [{"country_code": p.country_code, "party_id": p.party_id} for p in event.parties],
            "versions_url": event.versions_url,
            "version": event.version,
            "endpoints": dict(event.endpoints),
            SEALED: sealed_token,
            "registered_at": event.registered_at,
        }
        on_insert: dict[str, Any] = {
            "sync_state": SyncState.IN_SYNC.value,
            "reachable": True,
            "probe_interval": 0.0,
            "probe_due_at": now + timedelta(seconds=cpo_probe) if is_cpo else None,
        }
        try:
            before = await self.collection.find_one_and_update(
                {"_id": event.partner_id, "registered_at": {"$lte": event.registered_at}},
                {"$set": fields, "$setOnInsert": on_insert, "$unset": {CLEAR: ""}},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:
            return False  # a newer registration is stored already
        if before is not None and before.get("sync_state") == SyncState.OUT_OF_SYNC.value:
            # New credentials may be what the partner needed: probe it now.
            await self.collection.update_one({"_id": event.partner_id}, {"$set": {"probe_due_at": now}})
        return before is None

    async def unregister(self, partner_id: str, at: datetime | None) -> bool:
        """Forget the partner, leaving a tombstone; True when it was known.

        The tombstone's registered_at is the unregistration time, so a PartnerRegistered that an
        other replica delivers late (registered before it) matches no document and is ignored.
        """
        stamp = at or datetime.max.replace(tzinfo=UTC)
        before = await self.collection.find_one_and_replace(
            {"_id": partner_id, "$or": [{"registered_at": {"$lte": stamp}}, {"registered_at": None}]},
            {"tombstone": True, "registered_at": stamp},
            upsert=True,
        )
        return before is not None and not before.get("tombstone")

    async def get(self, partner_id: str) -> Partner | None:
        """One partner, or None when it is not registered."""
        doc = await self.collection.find_one({"_id": partner_id, "tombstone": {"$ne": True}})
        return None if doc is None else self._partner(doc)

    async def receivers(self, module: ModuleID) -> list[Partner]:
        """Every partner that gets our objects of `module` pushed."""
        role = MODULES[module].receiver_role
        cursor = self.collection.find({"role": role.value, f"endpoints.{module.value}": {"$exists": True}})
        return [self._partner(doc) async for doc in cursor]

    async def all(self) -> list[Partner]:
        """Every registered partner."""
        return [self._partner(d) async for d in self.collection.find({"tombstone": {"$ne": True}})]

    async def get_many(self, partner_ids: list[str]) -> list[Partner]:
        """The registered partners among `partner_ids`."""
        live = {"_id": {"$in": partner_ids}, "tombstone": {"$ne": True}}
        return [self._partner(d) async for d in self.collection.find(live)]

    # ---- sync state --------------------------------------------------------------------------

    async def mark_retrying(self, partner_id: str) -> bool:
        """IN_SYNC -> RETRYING; True when this call made the transition."""
        result = await self.collection.update_one(
            {"_id": partner_id, "sync_state": SyncState.IN_SYNC.value},
            {"$set": {"sync_state": SyncState.RETRYING.value}},
        )
        return result.modified_count > 0

    async def mark_out_of_sync(self, partner_id: str, probe_at: datetime, interval: float) -> bool:
        """IN_SYNC/RETRYING -> OUT_OF_SYNC and start probing; True when this call made the transition."""
        result = await self.collection.update_one(
            {"_id": partner_id, "sync_state": {"$ne": SyncState.OUT_OF_SYNC.value}},
            {
                "$set": {
                    "sync_state": SyncState.OUT_OF_SYNC.value,
                    "probe_due_at": probe_at,
                    "probe_interval": interval,
                }
            },
        )
        return result.modified_count > 0

    async def mark_in_sync(self, partner_id: str) -> SyncState | None:
        """RETRYING/OUT_OF_SYNC -> IN_SYNC; the state this call left, or None when nothing changed."""
        before = await self.collection.find_one_and_update(
            {"_id": partner_id, "sync_state": {"$ne": SyncState.IN_SYNC.value}},
            {"$set": {"sync_state": SyncState.IN_SYNC.value, "probe_interval": 0.0}},
            return_document=ReturnDocument.BEFORE,
        )
        return None if before is None else SyncState(before["sync_state"])

    async def set_reachable(self, partner_id: str, reachable: bool) -> bool:
        """Flip the CPO reachability flag; True when this call changed it."""
        result = await self.collection.update_one(
            {"_id": partner_id, "reachable": not reachable}, {"$set": {"reachable": reachable}}
        )
        return result.modified_count > 0

    # ---- probing -----------------------------------------------------------------------------

    async def claim_probe(self, now: datetime, lease: float, cpo_every: float) -> Partner | None:
        """Take one partner whose probe is due; pushing its due time by `lease` keeps others off it.

        A CPO partner that is not OUT_OF_SYNC is due again `cpo_every` seconds later whatever the
        probe finds (it is watched for outages all the time), so the claim schedules that next probe
        itself and a probe that changes nothing writes nothing.
        """
        watched = {
            "$and": [
                {"$eq": ["$role", Role.CPO.value]},
                {"$ne": ["$sync_state", SyncState.OUT_OF_SYNC.value]},
            ]
        }
        due = {"$cond": [watched, now + timedelta(seconds=cpo_every), now + timedelta(seconds=lease)]}
        doc = await self.collection.find_one_and_update(
            {"probe_due_at": {"$lte": now}},
            [{"$set": {"probe_due_at": due}}],
            sort=[("probe_due_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else self._partner(doc)

    async def schedule_probe(self, partner_id: str, at: datetime, interval: float) -> None:
        """Set the next probe and the interval it was derived from."""
        await self.collection.update_one(
            {"_id": partner_id}, {"$set": {"probe_due_at": at, "probe_interval": interval}}
        )

    async def stop_probing(self, partner_id: str) -> None:
        """No more probes, unless the partner fell out of sync again meanwhile."""
        await self.collection.update_one(
            {"_id": partner_id, "sync_state": {"$ne": SyncState.OUT_OF_SYNC.value}},
            {"$set": {"probe_due_at": None, "probe_interval": 0.0}},
        )


class PartnerCache:
    """The partner projection in memory, so that a change or a push reads no partner document.

    It is refreshed whole when older than `ttl` (changes made by other replicas: registrations they
    consumed, transitions they made), and at once for what this replica does: the partner events it
    handles and the sync-state transitions it makes. A partner it does not know is read on its own.
    """

    def __init__(
        self, projection: PartnerProjection, ttl: float, clock: Callable[[], float] = time.monotonic
    ):
        self.projection = projection
        self._ttl = ttl
        self._clock = clock
        self._partners: dict[str, Partner] = {}
        self._loaded_at: float | None = None

    async def _fresh(self) -> dict[str, Partner]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._ttl:
            self._partners = {p.partner_id: p for p in await self.projection.all()}
            self._loaded_at = now
        return self._partners

    async def receivers(self, module: ModuleID) -> list[Partner]:
        """Every partner that gets our objects of `module` pushed."""
        return [p for p in (await self._fresh()).values() if p.receives(module)]

    async def get(self, partner_id: str) -> Partner | None:
        """One partner, or None when it is not registered."""
        partner = (await self._fresh()).get(partner_id)
        if partner is None:
            # Registered through another replica since the last refresh, or gone.
            partner = await self.projection.get(partner_id)
            if partner is not None:
                self._partners[partner_id] = partner
        return partner

    async def reload(self, partner_id: str) -> None:
        """Read one partner again after this replica changed its registration."""
        partner = await self.projection.get(partner_id)
        if partner is None:
            self._partners.pop(partner_id, None)
        else:
            self._partners[partner_id] = partner

    def forget(self, partner_id: str) -> None:
        """The partner is gone."""
        self._partners.pop(partner_id, None)

    def set_state(self, partner_id: str, state: SyncState) -> None:
        """This replica moved the partner to `state` (or learned it is there)."""
        partner = self._partners.get(partner_id)
        if partner is not None and partner.sync_state is not state:
            self._partners[partner_id] = replace(partner, sync_state=state)
