"""Storage of locations behind small Protocols: our own (CPO side) and partners' copies (eMSP side).

Writes are compare-and-set: adding fails when the object exists, an update when the stored `version`
moved on (another replica or a concurrent message got there first). The caller reloads and retries.
Partners' locations are stored marked "unannounced" (in the same write) until their event is
published: an outbox, so an event lost with a process is published later (services/locations/announcer.py).
Own locations also remember the `event_id`s of recent inputs, stored with each version, so a
redelivered input, checked against the version it is applied to, changes nothing twice. Own
locations are written a batch at a time: the input consumer applies everything that queued up in
one read and one bulk write.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec
from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge

from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.types import to_utc, utc_now

# How many recent event ids an own location remembers. A redelivered input was unacked when its
# replica stopped; that replica applied at most the rest of its batch after it (a batch is acked
# before the next one is applied), so batches stay at most this big. Another replica may have
# applied more inputs meanwhile: then the last_updated guard keeps the older input from undoing them.
RECENT_EVENTS = 200

#: What a write raises for a value the database can never store: an int beyond 64 bits
#: (OverflowError), a key or value BSON refuses, a document over 16 MB, nesting too deep to encode.
#: Trying the same message again cannot help: it gets a verdict (2001 or dead-lettered) instead.
UNSTORABLE: tuple[type[Exception], ...] = (OverflowError, InvalidDocument, DocumentTooLarge, RecursionError)


class OwnRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One of our locations as stored."""

    location: Location
    version: int
    created_seq: int
    recent_event_ids: tuple[str, ...] = ()


class OwnWrite(msgspec.Struct, frozen=True, kw_only=True):
    """A new state of one own location and the inputs that made it (at least one)."""

    location: Location
    # The stored version this state replaces; None for a location that is not stored yet.
    version: int | None
    event_ids: tuple[str, ...]


class PartnerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A partner's location as stored in our copy."""

    country_code: str
    party_id: str
    location: Location
    version: int


# (country_code, party_id, location id, version) of a partner location whose event went out.
PartnerVersion = tuple[str, str, str, int]


@dataclass(frozen=True)
class Window:
    """Which own locations a page holds: keyset (`after_seq`) or offset, and the date filters."""

    limit: int
    offset: int = 0
    after_seq: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    def matches(self, created_seq: int, last_updated: datetime) -> bool:
        """The filter of the window, without offset and limit (used by the in-memory store)."""
        return (
            (self.after_seq is None or created_seq > self.after_seq)
            and (self.date_from is None or to_utc(last_updated) >= to_utc(self.date_from))
            and (self.date_to is None or to_utc(last_updated) < to_utc(self.date_to))
        )


class OwnLocations(Protocol):
    """Our locations, in creation order."""

    async def get(self, location_id: str) -> OwnRecord | None: ...

    async def get_many(self, location_ids: Collection[str]) -> dict[str, OwnRecord]:
        """The stored records among `location_ids`, by id."""

    async def save_many(self, writes: Sequence[OwnWrite]) -> dict[str, int]:
        """Store every write whose precondition holds; the new version of each stored one, by id.

        A new location (version None) must not exist yet; an update needs the stored version to be
        `version` still. Each is decided on its own. The caller passes only event ids that the
        record it read at `version` does not remember: the version check makes that hold at the write.
        """

    async def page(self, window: Window) -> list[tuple[int, Location]]:
        """(created_seq, location) pairs of a window, oldest creation first."""

    async def count(self, date_from: datetime | None, date_to: datetime | None) -> int:
        """How many locations match the date filters."""


class PartnerLocations(Protocol):
    """Partners' locations, keyed by (country_code, party_id, id)."""

    async def get(self, country_code: str, party_id: str, location_id: str) -> PartnerRecord | None: ...

    async def add(self, country_code: str, party_id: str, location: Location) -> PartnerRecord | None:
        """Store a new location (version 1); None when it exists already."""

    async def update(
        self, country_code: str, party_id: str, location: Location, version: int
    ) -> PartnerRecord | None:
        """Replace the location if still at `version`; None otherwise."""

    async def announced(self, versions: Sequence[PartnerVersion]) -> None:
        """These versions were published: clear their marks (a newer version keeps its own)."""

    async def unannounced(self, stored_before: datetime, limit: int) -> list[PartnerRecord]:
        """Records still marked unannounced that were stored before `stored_before`, oldest first."""


@dataclass(frozen=True)
class Repository:
    """Everything the handlers store."""

    own: OwnLocations
    partners: PartnerLocations


# ---- in memory, for unit tests --------------------------------------------------------------------


class InMemoryOwnLocations:
    """OwnLocations in a dict, with the same compare-and-set rules as MongoDB."""

    def __init__(self) -> None:
        self.records: dict[str, OwnRecord] = {}
        self._seq = 0

    async def get(self, location_id: str) -> OwnRecord | None:
        """The stored record, if any."""
        return self.records.get(location_id)

    async def get_many(self, location_ids: Collection[str]) -> dict[str, OwnRecord]:
        """The stored records among `location_ids`, by id."""
        return {i: self.records[i] for i in location_ids if i in self.records}

    async def save_many(self, writes: Sequence[OwnWrite]) -> dict[str, int]:
        """Store every write whose precondition holds; the new version of each stored one, by id."""
        saved: dict[str, int] = {}
        for write in writes:
            record = self._saved(write)
            if record is not None:
                self.records[write.location.id] = record
                saved[write.location.id] = record.version
        return saved

    def _saved(self, write: OwnWrite) -> OwnRecord | None:
        current = self.records.get(write.location.id)
        recent = write.event_ids[-RECENT_EVENTS:]
        if write.version is None:
            self._seq += 1
            if current is not None:
                return None
            return OwnRecord(
                location=write.location, version=1, created_seq=self._seq, recent_event_ids=recent
            )
        if current is None or current.version != write.version:
            return None
        recent = (*current.recent_event_ids, *write.event_ids)[-RECENT_EVENTS:]
        return msgspec.structs.replace(
            current, location=write.location, version=write.version + 1, recent_event_ids=recent
        )

    async def page(self, window: Window) -> list[tuple[int, Location]]:
        """(created_seq, location) pairs of a window, oldest creation first."""
        rows = sorted(self.records.values(), key=lambda r: r.created_seq)
        rows = [r for r in rows if window.matches(r.created_seq, r.location.last_updated)]
        start = 0 if window.after_seq is not None else window.offset
        return [(r.created_seq, r.location) for r in rows[start : start + window.limit]]

    async def count(self, date_from: datetime | None, date_to: datetime | None) -> int:
        """How many locations match the date filters."""
        window = Window(limit=0, date_from=date_from, date_to=date_to)
        return sum(window.matches(r.created_seq, r.location.last_updated) for r in self.records.values())


class InMemoryPartnerLocations:
    """PartnerLocations in a dict, with the same compare-and-set rules as MongoDB."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], PartnerRecord] = {}
        # Stored but not yet announced, with when: the outbox marks of the MongoDB store.
        self.unannounced_since: dict[tuple[str, str, str], datetime] = {}
        self.now = utc_now

    async def get(self, country_code: str, party_id: str, location_id: str) -> PartnerRecord | None:
        """The stored record, if any."""
        return self.records.get((country_code, party_id, location_id))

    async def add(self, country_code: str, party_id: str, location: Location) -> PartnerRecord | None:
        """Store a new location (version 1); None when it exists already."""
        key = (country_code, party_id, location.id)
        if key in self.records:
            return None
        self.records[key] = PartnerRecord(
            country_code=country_code, party_id=party_id, location=location, version=1
        )
        self.unannounced_since[key] = self.now()
        return self.records[key]

    async def update(
        self, country_code: str, party_id: str, location: Location, version: int
    ) -> PartnerRecord | None:
        """Replace the location if still at `version`; None otherwise."""
        key = (country_code, party_id, location.id)
        current = self.records.get(key)
        if current is None or current.version != version:
            return None
        self.records[key] = msgspec.structs.replace(current, location=location, version=version + 1)
        self.unannounced_since[key] = self.now()
        return self.records[key]

    async def announced(self, versions: Sequence[PartnerVersion]) -> None:
        """These versions were published: clear their marks (a newer version keeps its own)."""
        for country_code, party_id, location_id, version in versions:
            key = (country_code, party_id, location_id)
            record = self.records.get(key)
            if record is not None and record.version == version:
                self.unannounced_since.pop(key, None)

    async def unannounced(self, stored_before: datetime, limit: int) -> list[PartnerRecord]:
        """Records still marked unannounced that were stored before `stored_before`, oldest first."""
        keys = sorted((at, key) for key, at in self.unannounced_since.items() if at < stored_before)
        return [self.records[key] for _, key in keys[:limit]]


def in_memory_repository() -> Repository:
    """A fresh, empty in-memory repository."""
    return Repository(own=InMemoryOwnLocations(), partners=InMemoryPartnerLocations())
