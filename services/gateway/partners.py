"""The partner registry: who may call us, with which token, and how we call them back."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from services.gateway.party_store import PartyClaims
from shared.contracts.partners import Party, SyncState
from shared.sealing import Sealer, seal_stored
from shared.settings import Role
from shared.storage import Document

log = structlog.get_logger(__name__)


class ConnectionStatus(enum.Enum):
    PENDING = "PENDING"  # added, TOKEN_A handed over, no handshake yet
    CONNECTED = "CONNECTED"
    UNREGISTERED = "UNREGISTERED"


class Announcement(enum.Enum):
    """What the other processes must hear about a committed change besides revoked tokens."""

    REGISTERED = "REGISTERED"  # PartnerRegistered with the partner's current connection
    UNREGISTERED = "UNREGISTERED"  # PartnerUnregistered


class Pending(msgspec.Struct, kw_only=True):
    """An announcement owed for a committed change: the outbox entry written by the same write.

    It stays in the partner document until its events are confirmed by the broker, so a process
    that dies between the write and the publish leaves it for the sweep to publish.
    """

    id: str
    # When the change was committed; a republished event carries it, so the dispatcher's
    # registered_at ordering puts a late copy where it belongs.
    at: datetime
    announce: Announcement | None = None
    revoked: list[str] = msgspec.field(default_factory=list)


def pending(announce: Announcement | None, revoked: Sequence[str | None]) -> Pending:
    """A new outbox entry for a change committed now."""
    hashes = list(dict.fromkeys(h for h in revoked if h))
    return Pending(id=uuid.uuid4().hex, at=datetime.now(UTC), announce=announce, revoked=hashes)


class Partner(msgspec.Struct, kw_only=True):
    """One roaming partner as the gateway stores it; tokens we issued are hashes only."""

    id: str
    name: str
    role: Role
    country_code: str
    party_id: str
    extra_parties: list[Party] = msgspec.field(default_factory=list)
    status: ConnectionStatus = ConnectionStatus.PENDING
    token_a_hash: str | None = None
    # When the TOKEN_A was issued; it expires TOKEN_A_TTL_SECONDS later (L18). None in partners
    # stored before TOKEN_As expired: their creation time counts instead (see token_a_expires_at).
    token_a_issued_at: datetime | None = None
    token_hash: str | None = None
    retired_token_hashes: list[str] = msgspec.field(default_factory=list)
    # Tokens we sent in a credentials PUT towards the partner whose answer is not stored yet: valid
    # beside token_hash, so that no failure in a rotation locks the partner out (M4).
    next_token_hashes: list[str] = msgspec.field(default_factory=list)
    their_token: str | None = None
    versions_url: str | None = None
    version: str | None = None
    endpoints: dict[str, str] = msgspec.field(default_factory=dict)
    business_details: dict[str, Any] | None = None
    sync_state: SyncState = SyncState.IN_SYNC
    sync_detail: str = ""
    created_at: datetime
    updated_at: datetime
    # Announcements owed for committed changes, oldest first (see Pending).
    outbox: list[Pending] = msgspec.field(default_factory=list)
    # Set by an admin remove: the record stays, hidden, until its unregistration is announced.
    removed_at: datetime | None = None

    @property
    def parties(self) -> list[Party]:
        """Every party this partner may write objects for (a hub may have several)."""
        return [Party(self.country_code, self.party_id), *self.extra_parties]

    def owns(self, country_code: str, party_id: str) -> bool:
        return any(p.country_code == country_code and p.party_id == party_id for p in self.parties)

    def token_a_expires_at(self, ttl: float) -> datetime | None:
        """When its TOKEN_A stops working, or None when it has none (registered, or removed)."""
        if self.token_a_hash is None:
            return None
        return (self.token_a_issued_at or self.created_at) + timedelta(seconds=ttl)

    def token_a_expired(self, ttl: float, now: datetime | None = None) -> bool:
        expires = self.token_a_expires_at(ttl)
        return expires is not None and expires <= (now or datetime.now(UTC))


class NameTaken(Exception):
    """Another live partner has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a partner called {name!r} exists already")
        self.name = name


def holding(token_hash: str) -> Document:
    """A filter: the partner still accepts this token as its credentials (current or offered)."""
    return {"$or": [{"token_hash": token_hash}, {"next_token_hashes": token_hash}]}


def new_partner(name: str, role: Role, country_code: str, party_id: str, **fields: Any) -> Partner:
    now = datetime.now(UTC)
    return Partner(
        id=uuid.uuid4().hex[:16],
        name=name,
        role=role,
        country_code=country_code,
        party_id=party_id,
        created_at=now,
        updated_at=now,
        **fields,
    )


# The token a partner gave us is stored sealed (shared/sealing.py, review M5) under this field;
# `their_token` in a document is a clear one stored before that, sealed when the gateway starts.
SEALED = "their_token_sealed"
CLEAR = "their_token"


class PartnerRepository:
    """MongoDB storage of partners in the gateway's own database. The token each partner gave us is
    `Partner.their_token` in memory and sealed in the document: sealed on every write, opened on
    every read."""

    def __init__(self, db: AsyncDatabase[Document], sealer: Sealer) -> None:
        self._partners = db["partners"]
        self._sealer = sealer
        # Who owns which party (M3), kept by the database: party_store.py.
        self.claims = PartyClaims(db, self._removed)

    def _to_doc(self, partner: Partner) -> Document:
        doc: Document = msgspec.to_builtins(partner, builtin_types=(datetime,))
        doc["_id"] = doc.pop("id")
        clear = doc.pop(CLEAR, None)
        doc[SEALED] = None if clear is None else self._sealer.seal(clear, partner.id)
        return doc

    def _from_doc(self, doc: Document) -> Partner:
        doc = dict(doc)
        doc["id"] = doc.pop("_id")
        sealed = doc.pop(SEALED, None)
        if sealed is not None:
            doc[CLEAR] = self._sealer.open(sealed, doc["id"])
        return msgspec.convert(doc, Partner, strict=False)

    async def seal_stored(self) -> int:
        """Seal tokens stored in clear by an earlier version, or under an older key (when the
        gateway starts); how many. SealError when a stored token opens with no key we hold."""
        return await seal_stored(self._partners, self._sealer, CLEAR, SEALED)

    async def create_indexes(self) -> None:
        for field in ("token_a_hash", "token_hash"):
            await self._partners.create_index(
                field, unique=True, partialFilterExpression={field: {"$type": "string"}}
            )
        await self._partners.create_index("retired_token_hashes")
        await self._partners.create_index("next_token_hashes")
        # For the sweep: what is owed an announcement, and what waits to be deleted.
        await self._partners.create_index("outbox.at")
        await self._partners.create_index("removed_at", sparse=True)
        await self._unique_names()
        await self.claims.create_indexes()
        await self.claims.file([(p.id, p.name, p.created_at, p.parties) for p in await self.all()])

    async def _unique_names(self) -> None:
        """No two live partners share a name (L11); a removed one frees its name at once."""
        try:
            await self._partners.create_index(
                "name",
                unique=True,
                name="live_name",
                partialFilterExpression={"removed_at": {"$type": "null"}},
            )
        except OperationFailure as exc:
            if exc.code != 11000:
                raise
            # Partners stored before names were unique repeat one: the gateway still serves them;
            # new repeats are refused by the check in code until the operator removes one.
            log.error("partner_names_not_unique", reason=str(exc)[:300])

    async def add(self, partner: Partner, *, shared_party: bool = False) -> None:
        """Store a new partner with its claims on its parties, which must be free unless
        `shared_party`; raises PartiesTaken or NameTaken (nothing is kept then)."""
        await self.claims.claim(partner.id, partner.name, partner.parties, shared=shared_party)
        try:
            await self._partners.insert_one(self._to_doc(partner))
        except Exception as exc:
            await self.release_claims(partner.id)
            if isinstance(exc, DuplicateKeyError) and "name" in ((exc.details or {}).get("keyPattern") or {}):
                raise NameTaken(partner.name) from exc
            raise

    async def release_claims(self, partner_id: str) -> None:
        """The partner owns no party any more (removed, or its add failed)."""
        await self.claims.release(partner_id)

    async def _removed(self, partner_id: str) -> bool | None:
        """None when no such partner is stored, else whether it was removed (for PartyClaims)."""
        partner = await self.get(partner_id)
        return None if partner is None else partner.removed_at is not None

    async def get(self, partner_id: str) -> Partner | None:
        doc = await self._partners.find_one({"_id": partner_id})
        return self._from_doc(doc) if doc else None

    async def find_by_name_or_id(self, key: str, *, removed: bool = False) -> Partner | None:
        """A live partner; with `removed`, also one whose removal is not announced yet (live first)."""
        query: Document = {"$or": [{"_id": key}, {"name": key}]}
        if not removed:
            query["removed_at"] = None
        docs = await self._partners.find(query).sort("removed_at", 1).limit(1).to_list()
        return self._from_doc(docs[0]) if docs else None

    async def owners_of(self, parties: list[Party]) -> list[Partner]:
        """Live partners owning any of `parties` (as main party or an extra one)."""
        if not parties:
            return []
        either: list[Document] = []
        for party in parties:
            either.append({"country_code": party.country_code, "party_id": party.party_id})
            match = {"country_code": party.country_code, "party_id": party.party_id}
            either.append({"extra_parties": {"$elemMatch": match}})
        cursor = self._partners.find({"removed_at": None, "$or": either}).sort("created_at", 1)
        return [self._from_doc(doc) async for doc in cursor]

    async def all(self) -> list[Partner]:
        """Every live partner; removed ones are hidden while they wait to be deleted."""
        cursor = self._partners.find({"removed_at": None}).sort("created_at", 1)
        return [self._from_doc(doc) async for doc in cursor]

    async def by_token_hash(self, hashed: str) -> Partner | None:
        doc = await self._partners.find_one(
            {
                "$or": [
                    {"token_a_hash": hashed},
                    {"token_hash": hashed},
                    {"next_token_hashes": hashed},
                    {"retired_token_hashes": hashed},
                ],
                "removed_at": None,
            }
        )
        return self._from_doc(doc) if doc else None

    async def update_if(
        self,
        partner_id: str,
        expect: Document,
        changes: Document,
        *,
        owed: Pending | None = None,
        retire: list[str] | None = None,
        offer: str | None = None,
    ) -> Partner | None:
        """Apply `changes` only while the stored partner still matches `expect` (a compare-and-set).

        `owed` is written by the same write (the outbox entry of this change), as are the `retire`d
        token hashes and the `offer`ed one (see next_token_hashes): a crash after the write loses none.
        """
        changes = {**changes, "updated_at": owed.at if owed else datetime.now(UTC)}
        update: Document = {"$set": _encode_values(changes)}
        if CLEAR in changes:
            clear = update["$set"].pop(CLEAR)
            update["$set"][SEALED] = None if clear is None else self._sealer.seal(clear, partner_id)
            update["$unset"] = {CLEAR: ""}
        if owed is not None:
            update["$push"] = {"outbox": _encode_values(owed)}
        added: Document = {}
        if retire:
            added["retired_token_hashes"] = {"$each": retire}
        if offer:
            added["next_token_hashes"] = offer
        if added:
            update["$addToSet"] = added
        doc = await self._partners.find_one_and_update(
            {"_id": partner_id, **expect}, update, return_document=ReturnDocument.AFTER
        )
        return self._from_doc(doc) if doc else None

    async def announced(self, partner_id: str, entry_id: str) -> bool:
        """The entry's events are on the broker: drop it (only it: a newer change keeps its own).
        A removed partner with nothing left to announce is deleted; True when that happened."""
        await self._partners.update_one({"_id": partner_id}, {"$pull": {"outbox": {"id": entry_id}}})
        return await self.delete_if_announced(partner_id)

    async def delete_if_announced(self, partner_id: str) -> bool:
        """Delete a removed partner once nothing about it is left to announce."""
        result = await self._partners.delete_one(
            {"_id": partner_id, "removed_at": {"$ne": None}, "outbox": []}
        )
        if result.deleted_count != 1:
            return False
        try:
            await self.release_claims(partner_id)  # released at the removal already, unless it died
        except PyMongoError as exc:
            log.warning("party_claims_not_released", partner_id=partner_id, reason=repr(exc))
        return True

    async def unannounced(self, changed_before: datetime, limit: int) -> list[Partner]:
        """Partners owing an announcement older than `changed_before`, or removed and not deleted."""
        cursor = self._partners.find(
            {"$or": [{"outbox.at": {"$lt": changed_before}}, {"removed_at": {"$lt": changed_before}}]}
        )
        return [self._from_doc(doc) for doc in await cursor.limit(limit).to_list()]

    async def set_sync_state(self, partner_id: str, state: SyncState, detail: str, at: datetime) -> bool:
        """Store the dispatcher's view of the partner as of `at`, unless a newer one is stored: its
        events arrive out of order (handled concurrently, by any replica). False when not stored."""
        result = await self._partners.update_one(
            {"_id": partner_id, "$or": [{"sync_at": None}, {"sync_at": {"$lte": at}}]},
            {
                "$set": {
                    "sync_state": state.value,
                    "sync_detail": detail,
                    "sync_at": at,
                    "updated_at": datetime.now(UTC),
                }
            },
        )
        return result.matched_count == 1


def _encode_values(values: Any) -> Any:
    encoded: Any = msgspec.to_builtins(values, builtin_types=(datetime,))
    return encoded
