"""Who owns which party, kept by the database (finding M3): the `party_claims` collection.

The checks in `party_claims.py` give the operator a clear answer; this store makes them hold when two
admin calls race. A claim document is `_id` "CC/PID" with its `owners` [{id, name, at}]. An unshared
claim is an insert, so the unique `_id` lets exactly one of two concurrent claims win; a shared one
adds an owner. Claims are written just before their partner is stored and released when it is
removed (and again when it is deleted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.partners import Party
from shared.storage import Document

# A claim whose partner is not stored yet is its add in progress; past this age the add died in
# between and the claim no longer counts.
CLAIM_GRACE = timedelta(minutes=1)
# What a claim's owner is now: None when no such partner is stored, else whether it was removed.
OwnerRemoved = Callable[[str], Awaitable[bool | None]]
# A bounded number of tries against concurrent claims of one party (each try reads the owners).
_TRIES = 5


def party_key(party: Party) -> str:
    """A party as a claim's key, "CC/PID"."""
    return f"{party.country_code}/{party.party_id}"


class PartiesTaken(Exception):
    """A party claim the storage refused: each party taken, with its owners as (id, name)."""

    def __init__(self, taken: dict[str, list[tuple[str, str]]]) -> None:
        super().__init__(f"parties taken: {', '.join(taken)}")
        self.taken = taken


class PartyClaims:
    """The `party_claims` collection of the gateway's database."""

    def __init__(self, db: AsyncDatabase[Document], owner_removed: OwnerRemoved) -> None:
        self._claims = db["party_claims"]
        self._owner_removed = owner_removed

    async def create_indexes(self) -> None:
        await self._claims.create_index("owners.id")

    async def file(self, owners: Sequence[tuple[str, str, datetime, Sequence[Party]]]) -> None:
        """Claims (shared: their owners were allowed) for partners stored before claims existed:
        (id, name, created_at, parties) each."""
        filed = {(doc["_id"], owner["id"]) async for doc in self._claims.find() for owner in doc["owners"]}
        for partner_id, name, created_at, parties in owners:
            for party in parties:
                if (party_key(party), partner_id) not in filed:
                    await self._claim_shared(party_key(party), _entry(partner_id, name, created_at))

    async def claim(self, partner_id: str, name: str, parties: Sequence[Party], *, shared: bool) -> None:
        """Claim each party, in one order for every caller (two hubs racing for the same parties
        meet on the first). Unless `shared`, a party must be free (or its owners removed); on the
        first taken one, what was claimed is released and PartiesTaken names every taken one."""
        keys = sorted({party_key(p) for p in parties})
        entry = _entry(partner_id, name, datetime.now(UTC))
        for key in keys:
            if shared:
                await self._claim_shared(key, entry)
                continue
            owners = await self._claim_alone(key, entry)
            if owners:
                await self.release(partner_id)
                taken = {key: owners}
                for other in keys:
                    if other != key and (others := await self._live_owners(other, partner_id)):
                        taken[other] = others
                raise PartiesTaken(taken)

    async def release(self, partner_id: str) -> None:
        """The partner owns no party any more (removed, or its add failed)."""
        await self._claims.update_many({"owners.id": partner_id}, {"$pull": {"owners": {"id": partner_id}}})
        await self._claims.delete_many({"owners": {"$size": 0}})

    async def _claim_alone(self, key: str, entry: Document) -> list[tuple[str, str]]:
        """Claim a party nobody owns: [] when done, else its live owners (the unique `_id` decides
        between concurrent claims)."""
        for _ in range(_TRIES):
            try:
                await self._claims.insert_one({"_id": key, "owners": [entry]})
                return []
            except DuplicateKeyError:
                pass
            owners = await self._live_owners(key, entry["id"])
            if owners:
                return owners
        raise PartiesTaken({key: await self._live_owners(key, entry["id"])})

    async def _claim_shared(self, key: str, entry: Document) -> None:
        """Add an owner to a party, whoever else owns it."""
        for _ in range(_TRIES):
            try:
                await self._claims.update_one(
                    {"_id": key, "owners.id": {"$ne": entry["id"]}}, {"$push": {"owners": entry}}, upsert=True
                )
                return
            except DuplicateKeyError:
                # It holds this owner already, or a concurrent claim created the document first.
                if await self._claims.count_documents({"_id": key, "owners.id": entry["id"]}, limit=1):
                    return
        raise PartiesTaken({key: await self._live_owners(key, entry["id"])})

    async def _live_owners(self, key: str, claimer: str) -> list[tuple[str, str]]:
        """The owners of a party that still count, as (id, name). Claims of a removed partner, or of
        one not stored CLAIM_GRACE after its claim (its add died in between), are dropped here: that
        is what releases them when the gateway died before it did."""
        doc = await self._claims.find_one({"_id": key})
        if doc is None:
            return []
        live: list[tuple[str, str]] = []
        for owner in doc["owners"]:
            if owner["id"] == claimer:
                continue
            removed = await self._owner_removed(owner["id"])
            at: datetime = owner["at"] if owner["at"].tzinfo else owner["at"].replace(tzinfo=UTC)
            stale = removed if removed is not None else at < datetime.now(UTC) - CLAIM_GRACE
            if stale:
                await self._claims.update_one({"_id": key}, {"$pull": {"owners": {"id": owner["id"]}}})
            else:
                live.append((owner["id"], owner["name"]))
        await self._claims.delete_one({"_id": key, "owners": {"$size": 0}})
        return live


def _entry(partner_id: str, name: str, at: datetime) -> Document:
    """One owner in a claim."""
    return {"id": partner_id, "name": name, "at": at}
