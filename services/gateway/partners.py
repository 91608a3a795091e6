"""The partner registry: who may call us, with which token, and how we call them back."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.partners import Party, SyncState
from shared.settings import Role
from shared.storage import Document


class ConnectionStatus(enum.Enum):
    PENDING = "PENDING"  # added, TOKEN_A handed over, no handshake yet
    CONNECTED = "CONNECTED"
    UNREGISTERED = "UNREGISTERED"


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
    token_hash: str | None = None
    retired_token_hashes: list[str] = msgspec.field(default_factory=list)
    their_token: str | None = None
    versions_url: str | None = None
    version: str | None = None
    endpoints: dict[str, str] = msgspec.field(default_factory=dict)
    business_details: dict[str, Any] | None = None
    sync_state: SyncState = SyncState.IN_SYNC
    sync_detail: str = ""
    created_at: datetime
    updated_at: datetime

    @property
    def parties(self) -> list[Party]:
        """Every party this partner may write objects for (a hub may have several)."""
        return [Party(self.country_code, self.party_id), *self.extra_parties]

    def owns(self, country_code: str, party_id: str) -> bool:
        return any(p.country_code == country_code and p.party_id == party_id for p in self.parties)


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


def _to_doc(partner: Partner) -> Document:
    doc: Document = msgspec.to_builtins(partner, builtin_types=(datetime,))
    doc["_id"] = doc.pop("id")
    return doc


def _from_doc(doc: Document) -> Partner:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return msgspec.convert(doc, Partner, strict=False)


class PartnerRepository:
    """MongoDB storage of partners in the gateway's own database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._partners = db["partners"]

    async def create_indexes(self) -> None:
        for field in ("token_a_hash", "token_hash"):
            await self._partners.create_index(
                field, unique=True, partialFilterExpression={field: {"$type": "string"}}
            )
        await self._partners.create_index("retired_token_hashes")

    async def add(self, partner: Partner) -> None:
        await self._partners.insert_one(_to_doc(partner))

    async def get(self, partner_id: str) -> Partner | None:
        doc = await self._partners.find_one({"_id": partner_id})
        return _from_doc(doc) if doc else None

    async def find_by_name_or_id(self, key: str) -> Partner | None:
        doc = await self._partners.find_one({"$or": [{"_id": key}, {"name": key}]})
        return _from_doc(doc) if doc else None

    async def all(self) -> list[Partner]:
        return [_from_doc(doc) async for doc in self._partners.find().sort("created_at", 1)]

    async def by_token_hash(self, hashed: str) -> Partner | None:
        doc = await self._partners.find_one(
            {"$or": [{"token_a_hash": hashed}, {"token_hash": hashed}, {"retired_token_hashes": hashed}]}
        )
        return _from_doc(doc) if doc else None

    async def update_if(self, partner_id: str, expect: Document, changes: Document) -> Partner | None:
        """Apply `changes` only while the stored partner still matches `expect` (a compare-and-set)."""
        changes = {**changes, "updated_at": datetime.now(UTC)}
        doc = await self._partners.find_one_and_update(
            {"_id": partner_id, **expect},
            {"$set": _encode_values(changes)},
            return_document=ReturnDocument.AFTER,
        )
        return _from_doc(doc) if doc else None

    async def push_retired(self, partner_id: str, hashed: str) -> None:
        await self._partners.update_one({"_id": partner_id}, {"$addToSet": {"retired_token_hashes": hashed}})

    async def delete(self, partner_id: str) -> bool:
        result = await self._partners.delete_one({"_id": partner_id})
        return result.deleted_count == 1


def _encode_values(values: Document) -> Document:
    encoded: Document = msgspec.to_builtins(values, builtin_types=(datetime,))
    return encoded
