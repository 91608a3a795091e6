"""In-memory twins of the stores, with the same compare-and-set rules as MongoDB (for unit tests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from shared.contracts.partners import Party
from shared.modules.receiver import PartnerRecord, PartnerVersion
from shared.modules.sender import RECENT_EVENTS, Owners, OwnRecord, OwnWrite, Removed, Window
from shared.ocpi.v2_1_1.types import utc_now

T = TypeVar("T")


class MemorySenderStore(Generic[T]):
    """SenderStore in a dict; `updated_of` gives an object's last_updated (for date filters)."""

    def __init__(self, updated_of: Callable[[T], datetime]) -> None:
        self.records: dict[str, OwnRecord[T]] = {}
        self._updated_of = updated_of
        self._seq = 0

    async def get(self, key: str) -> OwnRecord[T] | None:
        """The stored record, if any."""
        return self.records.get(key)

    async def get_many(self, keys: Collection[str]) -> dict[str, OwnRecord[T]]:
        """The stored records among `keys`, by key."""
        return {key: self.records[key] for key in keys if key in self.records}

    async def save_many(self, writes: Sequence[OwnWrite[T]]) -> dict[str, int]:
        """Store every write whose precondition holds; the new version of each stored one, by key."""
        saved: dict[str, int] = {}
        for write in writes:
            record = self._saved(write)
            if record is not None:
                self.records[write.key] = record
                saved[write.key] = record.version
        return saved

    def _saved(self, write: OwnWrite[T]) -> OwnRecord[T] | None:
        current = self.records.get(write.key)
        if write.version is None:
            self._seq += 1
            if current is not None:
                return None
            recent = write.event_ids[-RECENT_EVENTS:]
            return OwnRecord(write.value, 1, self._seq, recent, write.removed)
        if current is None or current.version != write.version:
            return None
        recent = (*current.recent_event_ids, *write.event_ids)[-RECENT_EVENTS:]
        return dataclasses.replace(
            current,
            value=write.value,
            version=write.version + 1,
            recent_event_ids=recent,
            removed=write.removed,
        )

    async def page(self, window: Window) -> list[tuple[int, T]]:
        """(created_seq, object) pairs of a window, oldest creation first, tombstones left out."""
        if window.owners is not None:
            raise TypeError("the in-memory store does not list by owner")
        rows = sorted(self.records.values(), key=lambda r: r.created_seq)
        rows = [r for r in rows if not r.removed and window.matches(r.created_seq, self._updated_of(r.value))]
        start = 0 if window.after_seq is not None else window.offset
        return [(r.created_seq, r.value) for r in rows[start : start + window.limit]]

    async def count(
        self, date_from: datetime | None, date_to: datetime | None, owners: Owners | None = None
    ) -> int:
        """How many objects (not tombstones) match the date filters."""
        if owners is not None:
            raise TypeError("the in-memory store does not list by owner")
        window = Window(limit=0, date_from=date_from, date_to=date_to)
        return sum(
            not r.removed and window.matches(r.created_seq, self._updated_of(r.value))
            for r in self.records.values()
        )


class MemoryReceiverStore(Generic[T]):
    """ReceiverStore in a dict, with the outbox marks."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], PartnerRecord[T]] = {}
        # Stored but not yet announced, with when: the outbox marks of the MongoDB store.
        self.unannounced_since: dict[tuple[str, str, str], datetime] = {}
        self.now = utc_now

    async def get(self, party: Party, key: str) -> PartnerRecord[T] | None:
        """The stored record, if any."""
        return self.records.get((party.country_code, party.party_id, key))

    async def save(
        self, party: Party, key: str, state: T | Removed[T], version: int | None, via: str = ""
    ) -> PartnerRecord[T] | None:
        """Store `state` marked unannounced if the record is still at `version` (None: absent)."""
        where = (party.country_code, party.party_id, key)
        current = self.records.get(where)
        if (None if current is None else current.version) != version:
            return None
        removed = isinstance(state, Removed)
        value: T = state.last if isinstance(state, Removed) else state
        record = PartnerRecord(party, key, value, 1 if version is None else version + 1, removed, via)
        self.records[where] = record
        self.unannounced_since[where] = self.now()
        return record

    async def announced(self, versions: Sequence[PartnerVersion]) -> None:
        """These versions were published: clear their marks (a newer version keeps its own)."""
        for country_code, party_id, key, version in versions:
            where = (country_code, party_id, key)
            record = self.records.get(where)
            if record is not None and record.version == version:
                self.unannounced_since.pop(where, None)

    async def unannounced(self, stored_before: datetime, limit: int) -> list[PartnerRecord[T]]:
        """Records still marked unannounced that were stored before `stored_before`, oldest first."""
        keys = sorted((at, key) for key, at in self.unannounced_since.items() if at < stored_before)
        return [self.records[key] for _, key in keys[:limit]]
