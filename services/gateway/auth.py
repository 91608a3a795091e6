"""Who is calling: the token in `Authorization: Token ...` resolved to a partner, with a cache."""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.partners import ConnectionStatus, Partner, PartnerRepository
from services.gateway.ratelimit import TokenBuckets
from services.gateway.responses import unauthorized
from services.gateway.tokens import parse_authorization, same_hash, token_hash
from shared.errors import TooManyRequests

# The cache is invalidated by broker events within milliseconds; the TTL only bounds the damage
# of an event that never arrived (a replica that was disconnected from the broker at the time).
CACHE_TTL = 30.0
# An unknown token is answered 401 from memory for this long (L7): a flood of wrong tokens costs no
# database lookup each. Safe because every token we issue is fresh random: nobody can have
# presented it before we stored it, so a remembered miss never hides a token that became valid.
UNKNOWN_TTL = 5.0
UNKNOWN_MAX = 10_000
# How long a revocation is remembered against lookups that were in flight when it came (L6): far
# longer than a registry read may take. A lookup older than a forgotten fence is not kept either.
FENCE_SECONDS = 60.0
# The one answer to a token we do not accept, whether it never existed or its TOKEN_A expired.
UNKNOWN = "Unknown token"


class TokenKind(enum.Enum):
    TOKEN_A = "TOKEN_A"  # handed over offline, valid for the handshake only
    CREDENTIALS = "CREDENTIALS"  # issued by us in a handshake (TOKEN_C, or TOKEN_B while we register)
    RETIRED = "RETIRED"  # belonged to a partner that unregistered: credentials PUT/DELETE get 405


@dataclass(frozen=True)
class Principal:
    partner: Partner
    kind: TokenKind
    token_hash: str

    @property
    def registered(self) -> bool:
        return self.kind is TokenKind.CREDENTIALS and self.partner.status is ConnectionStatus.CONNECTED


def _kind_of(partner: Partner, hashed: str) -> TokenKind | None:
    if partner.token_hash and same_hash(partner.token_hash, hashed):
        return TokenKind.CREDENTIALS
    if any(same_hash(h, hashed) for h in partner.next_token_hashes):
        return TokenKind.CREDENTIALS  # offered in a rotation whose answer is not stored yet
    if partner.token_a_hash and same_hash(partner.token_a_hash, hashed):
        return TokenKind.TOKEN_A
    if any(same_hash(h, hashed) for h in partner.retired_token_hashes):
        return TokenKind.RETIRED
    return None


class TokenCache:
    """Token hash -> principal, per gateway replica; dropped entries come from TokensRevoked events.

    A registry read that began before a revocation (of its token hash, or of its partner's cached
    entries) may return the state from before it. It still answers its own request but is not kept
    (the fences below): otherwise a revocation that came during the read would be undone by it and
    the revoked token would work for another `ttl` (L6).
    """

    def __init__(
        self,
        ttl: float = CACHE_TTL,
        unknown_ttl: float = UNKNOWN_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._unknown_ttl = unknown_ttl
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}
        # Hashes looked up and not found, with when that stops counting; oldest first.
        self._unknown: dict[str, float] = {}
        # ("token", hash) or ("partner", id) -> (generation of its last revocation, when), oldest
        # first: a lookup begun before that generation is not kept.
        self._fences: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._generation = 0
        # Lookups begun before this generation are not kept (their fence may be forgotten).
        self._floor = 0

    @property
    def fences(self) -> int:
        return len(self._fences)

    def is_unknown(self, hashed: str) -> bool:
        """Looked up a moment ago and not found."""
        expires = self._unknown.get(hashed)
        if expires is None:
            return False
        if self._clock() > expires:
            del self._unknown[hashed]
            return False
        return True

    def put_unknown(self, hashed: str) -> None:
        self._unknown[hashed] = self._clock() + self._unknown_ttl
        while len(self._unknown) > UNKNOWN_MAX:
            del self._unknown[next(iter(self._unknown))]

    def get(self, hashed: str) -> Principal | None:
        entry = self._entries.get(hashed)
        if entry is None:
            return None
        principal, expires = entry
        if self._clock() > expires:
            del self._entries[hashed]
            return None
        return principal

    def begin(self) -> int:
        """Mark the start of a registry lookup; pass the mark to `put`."""
        return self._generation

    def put(self, principal: Principal, begun: int) -> None:
        """Keep a lookup's result, unless its token or its partner was revoked since it began."""
        if begun < self._floor:
            return
        for key in (("token", principal.token_hash), ("partner", principal.partner.id)):
            fence = self._fences.get(key)
            if fence is not None and fence[0] > begun:
                return
        self._entries[principal.token_hash] = (principal, self._clock() + self._ttl)

    def drop(self, hashes: list[str]) -> None:
        for hashed in hashes:
            self._entries.pop(hashed, None)
            self._fence(("token", hashed))

    def drop_partner(self, partner_id: str) -> None:
        for hashed in [h for h, (p, _) in self._entries.items() if p.partner.id == partner_id]:
            del self._entries[hashed]
        self._fence(("partner", partner_id))

    def _fence(self, key: tuple[str, str]) -> None:
        now = self._clock()
        self._generation += 1
        self._fences[key] = (self._generation, now)
        self._fences.move_to_end(key)
        while self._fences:
            oldest, (generation, at) = next(iter(self._fences.items()))
            if now - at < FENCE_SECONDS:
                break
            del self._fences[oldest]
            self._floor = max(self._floor, generation)


async def authenticate(
    header: str | None,
    repo: PartnerRepository,
    cache: TokenCache,
    budgets: TokenBuckets | None = None,
    *,
    token_a_ttl: float | None = None,
) -> Principal:
    """Resolve the Authorization header, or raise a 401 (unknown token) or a 429 (over its budget).

    A TOKEN_A older than `token_a_ttl` seconds is answered exactly as an unknown token (L18): the
    caller cannot tell an expired TOKEN_A from one that never existed.
    """
    token = parse_authorization(header)
    if token is None:
        raise unauthorized("Missing or malformed Authorization header; expected 'Token <token>'")
    hashed = token_hash(token)
    wait = budgets.take(hashed) if budgets is not None else None
    if wait is not None:
        raise TooManyRequests("Too many requests with this token; slow down", retry_after=wait)
    principal = cache.get(hashed)
    if principal is None:
        if cache.is_unknown(hashed):
            raise unauthorized(UNKNOWN)
        begun = cache.begin()
        partner = await repo.by_token_hash(hashed)
        kind = _kind_of(partner, hashed) if partner else None
        if partner is None or kind is None:
            cache.put_unknown(hashed)
            raise unauthorized(UNKNOWN)
        principal = Principal(partner=partner, kind=kind, token_hash=hashed)
        cache.put(principal, begun)
    if token_a_ttl is not None and _expired(principal, token_a_ttl):
        # Remembered as unknown too: an expired TOKEN_A never becomes valid again (a new one is a
        # new random token), and the flood protection of unknown tokens covers it as well.
        cache.drop([hashed])
        cache.put_unknown(hashed)
        raise unauthorized(UNKNOWN)
    return principal


def _expired(principal: Principal, token_a_ttl: float) -> bool:
    return principal.kind is TokenKind.TOKEN_A and principal.partner.token_a_expired(token_a_ttl)
