"""The gateway's token cache never keeps a lookup that a revocation overtook (security review L6).

A request whose token is not cached reads the registry; a revocation (a credentials DELETE or PUT,
an admin remove or rotate, on this replica or announced by another) may arrive while that read is in
flight. The read may still answer its own request, but what it returned is the state from before
the revocation and must not be cached, or the revoked token would work for another CACHE_TTL.
"""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.auth import FENCE_SECONDS, Principal, TokenCache, TokenKind, authenticate
from services.gateway.partners import ConnectionStatus, Partner, new_partner
from services.gateway.tokens import token_hash
from shared.errors import Unauthorized
from shared.settings import Role

TOKEN = "token-of-the-partner"
HASH = token_hash(TOKEN)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connected() -> Partner:
    return new_partner("P", Role.EMSP, "DE", "EMP", token_hash=HASH, status=ConnectionStatus.CONNECTED)


class SlowRegistry:
    """The partner registry with a read the test holds: `hold()` makes the next lookup read the
    current state at once, then wait until `release()` before it returns (a slow database)."""

    def __init__(self, partner: Partner | None) -> None:
        self.partner = partner
        self.lookups = 0
        self._gate: asyncio.Event | None = None
        self._held = asyncio.Event()
        self.reading = asyncio.Event()

    def hold(self) -> None:
        self._held = self._gate = asyncio.Event()
        self.reading.clear()

    def release(self) -> None:
        self._held.set()

    async def by_token_hash(self, hashed: str) -> Partner | None:
        self.lookups += 1
        found = self.partner if self.partner is not None and hashed == HASH else None
        if self._gate is not None:
            gate, self._gate = self._gate, None
            self.reading.set()
            await gate.wait()
        return found


async def _revoked_during_the_lookup(revoke: str) -> tuple[SlowRegistry, Principal]:
    """Authenticate with a lookup held open; revoke (by token hash or by partner) meanwhile."""
    registry = SlowRegistry(connected())
    cache = TokenCache()
    registry.hold()
    request = asyncio.create_task(authenticate(f"Token {TOKEN}", registry, cache))  # type: ignore[arg-type]
    await registry.reading.wait()
    # The revocation commits and is applied to this replica's cache while the read is in flight.
    partner_id = registry.partner.id if registry.partner else ""
    registry.partner = None
    if revoke == "token":
        cache.drop([HASH])
    else:
        cache.drop_partner(partner_id)
    registry.release()
    principal = await request
    # The next request must read again, and find the token gone.
    with pytest.raises(Unauthorized):
        await authenticate(f"Token {TOKEN}", registry, cache)  # type: ignore[arg-type]
    return registry, principal


@pytest.mark.parametrize("revoke", ["token", "partner"])
async def test_a_revocation_during_the_lookup_is_not_undone_by_its_result(revoke: str) -> None:
    """The read that began before the revocation answers its own request but is not cached: the
    next request with the revoked token reads the registry again and gets 401."""
    registry, principal = await _revoked_during_the_lookup(revoke)
    assert principal.kind is TokenKind.CREDENTIALS  # its own request: read before the revocation
    assert registry.lookups == 2


async def test_a_lookup_begun_after_a_revocation_is_cached() -> None:
    """The fence holds back only reads older than it: a later read of the same token is kept."""
    registry = SlowRegistry(connected())
    cache = TokenCache()
    cache.drop([HASH])
    cache.drop_partner(registry.partner.id if registry.partner else "")
    for _ in range(3):
        await authenticate(f"Token {TOKEN}", registry, cache)  # type: ignore[arg-type]
    assert registry.lookups == 1


def test_a_revocation_of_another_token_or_partner_does_not_hold_back_this_one() -> None:
    """Fences are per token hash and per partner."""
    cache = TokenCache()
    begun = cache.begin()
    cache.drop([token_hash("someone-else")])
    cache.drop_partner("another-partner")
    principal = Principal(partner=connected(), kind=TokenKind.CREDENTIALS, token_hash=HASH)
    cache.put(principal, begun)
    assert cache.get(HASH) == principal


def test_fences_are_forgotten_after_a_while_and_older_lookups_are_never_kept() -> None:
    """Fences do not pile up: one older than FENCE_SECONDS goes at the next revocation. A lookup
    that began before a forgotten fence is not kept either (it may be the one the fence was for)."""
    clock = Clock()
    cache = TokenCache(clock=clock)
    principal = Principal(partner=connected(), kind=TokenKind.CREDENTIALS, token_hash=HASH)
    ancient = cache.begin()
    cache.drop([HASH])
    for n in range(1000):
        clock.now += FENCE_SECONDS / 100
        cache.drop([token_hash(f"other-{n}")])
    assert cache.fences <= 101
    cache.put(principal, ancient)
    assert cache.get(HASH) is None
    cache.put(principal, cache.begin())
    assert cache.get(HASH) == principal
