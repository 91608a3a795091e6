"""Storage of locations behind small Protocols: our own (CPO side) and partners' copies (eMSP side).

Writes are compare-and-set: `add` fails when the object exists, `update` when the stored `version`
moved on (another replica or a concurrent message got there first). The caller reloads and retries.
Own locations also remember the `event_id`s of recent inputs, checked in the same atomic update,
so a redelivered input changes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec

from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.types import to_utc

# How many recent event ids an own location remembers; redeliveries come within seconds.
RECENT_EVENTS = 200


class OwnRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One of our locations as stored."""

    location: Location
    version: int
    created_seq: int
    recent_event_ids: tuple[str, ...] = ()


class PartnerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A partner's location as stored in our copy."""

    country_code: str
    party_id: str
    location: Location
    version: int


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

    async def add(self, location: Location, event_id: str) -> OwnRecord | None:
        """Store a new location (version 1); None when it exists already."""

    async def update(self, location: Location, version: int, event_id: str) -> OwnRecord | None:
        """Replace the location if still at `version` and `event_id` is new; None otherwise."""

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

    async def add(self, location: Location, event_id: str) -> OwnRecord | None:
        """Store a new location (version 1); None when it exists already."""
        self._seq += 1
        if location.id in self.records:
            return None
        record = OwnRecord(location=location, version=1, created_seq=self._seq, recent_event_ids=(event_id,))
        self.records[location.id] = record
        return record

    async def update(self, location: Location, version: int, event_id: str) -> OwnRecord | None:
        """Replace the location if still at `version` and `event_id` is new; None otherwise."""
        current = self.records.get(location.id)
        if current is None or current.version != version or event_id in current.recent_event_ids:
            return None
        recent = (*current.recent_event_ids, event_id)[-RECENT_EVENTS:]
        record = msgspec.structs.replace(
            current, location=location, version=version + 1, recent_event_ids=recent
        )
        self.records[location.id] = record
        return record

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
        return self.records[key]


def in_memory_repository() -> Repository:
    """A fresh, empty in-memory repository."""
    return Repository(own=InMemoryOwnLocations(), partners=InMemoryPartnerLocations())
