"""Who is calling: the token in `Authorization: Token ...` resolved to a partner, with a cache."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from services.gateway.partners import ConnectionStatus, Partner, PartnerRepository
from services.gateway.responses import unauthorized
from services.gateway.tokens import parse_authorization, same_hash, token_hash

# The cache is invalidated by broker events within milliseconds; the TTL only bounds the damage
# of an event that never arrived (a replica that was disconnected from the broker at the time).
CACHE_TTL = 30.0


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
    """Token hash -> principal, per gateway replica; dropped entries come from TokensRevoked events."""

    def __init__(self, ttl: float = CACHE_TTL) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, hashed: str) -> Principal | None:
        entry = self._entries.get(hashed)
        if entry is None:
            return None
        principal, expires = entry
        if time.monotonic() > expires:
            del self._entries[hashed]
            return None
        return principal

    def put(self, principal: Principal) -> None:
        self._entries[principal.token_hash] = (principal, time.monotonic() + self._ttl)

    def drop(self, hashes: list[str]) -> None:
        for hashed in hashes:
            self._entries.pop(hashed, None)

    def drop_partner(self, partner_id: str) -> None:
        for hashed in [h for h, (p, _) in self._entries.items() if p.partner.id == partner_id]:
            del self._entries[hashed]


async def authenticate(header: str | None, repo: PartnerRepository, cache: TokenCache) -> Principal:
    """Resolve the Authorization header or raise a 401 OCPI error."""
    token = parse_authorization(header)
    if token is None:
        raise unauthorized("Missing or malformed Authorization header; expected 'Token <token>'")
    hashed = token_hash(token)
    principal = cache.get(hashed)
    if principal is not None:
        return principal
    partner = await repo.by_token_hash(hashed)
    kind = _kind_of(partner, hashed) if partner else None
    if partner is None or kind is None:
        raise unauthorized("Unknown token")
    principal = Principal(partner=partner, kind=kind, token_hash=hashed)
    cache.put(principal)
    return principal
