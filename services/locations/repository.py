"""Where the locations service keeps its objects: our own locations and partners' copies.

Both stores are the generic ones of shared/modules (compare-and-set, event-id idempotency, outbox
marks); this file only names them for locations and gives the in-memory pair for unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.modules.memory import MemoryReceiverStore, MemorySenderStore
from shared.modules.receiver import ReceiverStore
from shared.modules.sender import SenderStore
from shared.ocpi.v2_1_1.locations import Location


def updated_of(location: Location) -> datetime:
    """The last_updated a location is filtered and paged by."""
    return location.last_updated


@dataclass(frozen=True)
class Repository:
    """Everything the handlers store."""

    own: SenderStore[Location]
    partners: ReceiverStore[Location]


def in_memory_repository() -> Repository:
    """A fresh, empty in-memory repository."""
    own: MemorySenderStore[Location] = MemorySenderStore(updated_of)
    partners: MemoryReceiverStore[Location] = MemoryReceiverStore()
    return Repository(own=own, partners=partners)
