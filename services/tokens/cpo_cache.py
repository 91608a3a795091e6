"""Partners' tokens by uid in this replica's memory: a charger's authorization without a database trip.

Bounded (least recently used out first) and aged: an entry answers at most `ttl` seconds after it was
read or changed, an unknown uid only `miss_ttl` (a token pushed a moment later must be found). Every
stored change reaches every replica as a PartnerTokenChanged on its broadcast queue (and the storing
replica at once): the entry is then replaced by the new state, or dropped to be read again.

A database read that began before a change of its uid may return the old state; it still answers its
own request but is not kept (the per-uid fence below), so a revocation cannot be undone by a read
that was in flight when it arrived.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from services.tokens.cpo_policy import Found, Holder
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.tokens import Token, TokenType

# (uid, type): what a charger reads, and how partners' tokens are looked up.
TokenKey = tuple[str, TokenType]
# The most entries a replica keeps (a token with its owner is well under a kilobyte).
CACHE_SIZE = 50_000
# How long an unknown uid is remembered: long enough to spare the database a burst of taps of a
# foreign card, short enough that a token pushed a moment later is found (its event drops it anyway).
MISS_SECONDS = 1.0
# How long a fence is kept: far longer than a database read may take.
FENCE_SECONDS = 60.0


@dataclass(frozen=True)
class Cached:
    """What the cache holds for a key: the lookup's result (None: unknown) and until when it holds."""

    found: Found
    expires: float


class TokenCache:
    """uid -> (party, token, connection) of this replica; see the module docstring."""

    def __init__(
        self, ttl: float, miss_ttl: float, size: int = CACHE_SIZE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._miss_ttl = min(miss_ttl, ttl)
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[TokenKey, Cached] = OrderedDict()
        # key -> (generation of its last change, when): lookups begun before it are not kept.
        self._fences: OrderedDict[TokenKey, tuple[int, float]] = OrderedDict()
        self._generation = 0
        # Lookups begun before the last `clear` are not kept either.
        self._floor = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: TokenKey) -> Cached | None:
        """The entry if it is still fresh; None when the database must be asked."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def begin(self) -> int:
        """Mark the start of a database lookup; pass the mark to `put`."""
        return self._generation

    def put(self, key: TokenKey, found: Found, begun: int) -> None:
        """Keep a lookup's result, unless its key changed since the lookup began."""
        fence = self._fences.get(key)
        if begun < self._floor or (fence is not None and fence[0] > begun):
            return
        self._store(key, found)

    def changed(self, party: Party, token: Token, via: str, version: int) -> None:
        """A stored change (ours or another replica's): replace the same party's older entry, else drop."""
        key = (token.uid, token.type)
        self._fence(key)
        entry = self._entries.get(key)
        if entry is None:
            return
        known = entry.found
        if isinstance(known, Holder) and known.party == party:
            if version > known.version:
                self._store(key, Holder(party=party, token=token, via=via, version=version))
            return
        # A miss, an ambiguity or another party's copy: which copy wins must be read again.
        del self._entries[key]

    def clear(self) -> None:
        """Forget everything (events may have been missed while the broker was away)."""
        self._entries.clear()
        self._fences.clear()
        self._generation += 1
        self._floor = self._generation

    def _store(self, key: TokenKey, found: Found) -> None:
        ttl = self._miss_ttl if found is None else self._ttl
        self._entries[key] = Cached(found, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def _fence(self, key: TokenKey) -> None:
        now = self._clock()
        self._generation += 1
        self._fences[key] = (self._generation, now)
        self._fences.move_to_end(key)
        while self._fences:
            oldest_key, (_, at) = next(iter(self._fences.items()))
            if now - at < FENCE_SECONDS:
                break
            del self._fences[oldest_key]
