"""Pure rules of an authorization at our chargers (CPO side): whom to ask, and what the answer is.

The Token's `whitelist` (mod_tokens.md 4.4) says how far we may decide alone:

- ALWAYS: from the token as we hold it; real-time is not allowed.
- ALLOWED: from the token; the eMSP is asked too when TOKENS_REALTIME_FOR_ALLOWED is on, and its
  answer wins when it comes in time.
- ALLOWED_OFFLINE: the eMSP decides; only when it cannot be reached or is too slow, the token does.
- NEVER: only the eMSP decides; no answer in time is a refusal.

A token we hold as `valid: false` is refused here at once whatever its whitelist: the eMSP itself
told us the card is blocked, and a revocation must hold even while the eMSP is slow or down.
The eMSP's answer is always final, with the location narrowed as it returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from services.tokens.decision import Decision
from shared.contracts.base import RpcReply
from shared.contracts.partners import Party
from shared.contracts.tokens import Decider
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tokens import Allowed, AuthorizationInfo, LocationReferences, Token, WhitelistType
from shared.ocpi.v2_1_1.types import to_utc


@dataclass(frozen=True)
class Holder:
    """A partner token as we hold it: its owner, the connection it came through, its stored version."""

    party: Party
    token: Token
    via: str
    version: int


@dataclass(frozen=True)
class Ambiguous:
    """Several parties hold the uid as valid: we cannot tell whose card is at the charger."""

    parties: tuple[Party, ...]


# What a lookup by uid finds: the holder, an ambiguity, or nothing (None).
Found = Holder | Ambiguous | None


@dataclass(frozen=True)
class Answered:
    """The eMSP (or hub) answered: final."""

    info: AuthorizationInfo


@dataclass(frozen=True)
class NotKnown:
    """The eMSP (or hub) answered that it does not know the token: final, refused."""

    reason: str


@dataclass(frozen=True)
class NoAnswer:
    """Nobody answered in time (slow, unreachable, dispatcher down): the whitelist decides."""

    reason: str


RealtimeAnswer = Answered | NotKnown | NoAnswer


def choose_holder(holders: Sequence[Holder]) -> Found:
    """Whose token a uid (and type) is, when several parties hold it.

    Uids are unique only within one eMSP (mod_tokens.md 3.2), and cheap RFID cards share uids. Only
    a valid copy can be billed to its owner: when exactly one copy is valid it is the card; when all
    are blocked, the newest copy refuses it; when several are valid, nobody can tell whose card it
    is and whom to send the session and CDR to, so it is refused (Ambiguous) rather than guessed.
    """
    if not holders:
        return None
    valid = [holder for holder in holders if holder.token.valid]
    if len(valid) > 1:
        return Ambiguous(tuple(holder.party for holder in valid))
    if valid:
        return valid[0]
    return max(holders, key=lambda holder: to_utc(holder.token.last_updated))


def realtime_target(found: Found, *, realtime_for_allowed: bool, unknown_via: str) -> str | None:
    """The connection to ask in real time (the token's own, or the hub for unknown tokens); None: nobody."""
    if found is None:
        return unknown_via or None
    if isinstance(found, Ambiguous) or not found.token.valid:
        return None
    whitelist = found.token.whitelist
    if whitelist is WhitelistType.ALWAYS or (whitelist is WhitelistType.ALLOWED and not realtime_for_allowed):
        return None
    return found.via


def decide(found: Found, location: LocationReferences | None, answer: RealtimeAnswer | None) -> Decision:
    """The decision, from what we hold and the real-time answer (None when nobody was asked)."""
    if isinstance(found, Ambiguous):
        names = ", ".join(f"{party.country_code}/{party.party_id}" for party in found.parties)
        return Decision(Allowed.NOT_ALLOWED, Decider.LOCAL, f"uid held by several parties: {names}")
    if found is None:
        return _unknown(answer)
    token = found.token
    if not token.valid:
        return Decision(Allowed.BLOCKED, Decider.LOCAL, "token not valid")
    whitelist = f"whitelist {token.whitelist.value}"
    if isinstance(answer, Answered):
        return _answered(answer.info, "eMSP")
    if isinstance(answer, NotKnown):
        return Decision(Allowed.NOT_ALLOWED, Decider.REALTIME, answer.reason)
    if answer is None:
        return Decision(Allowed.ALLOWED, Decider.LOCAL, whitelist, location)
    why = f"{whitelist}, no real-time answer: {answer.reason}"
    if token.whitelist is WhitelistType.NEVER:
        return Decision(Allowed.NOT_ALLOWED, Decider.FALLBACK, why)
    return Decision(Allowed.ALLOWED, Decider.FALLBACK, why, location)


def _unknown(answer: RealtimeAnswer | None) -> Decision:
    if answer is None:
        return Decision(Allowed.NOT_ALLOWED, Decider.LOCAL, "unknown token")
    if isinstance(answer, Answered):
        return _answered(answer.info, "hub")
    if isinstance(answer, NotKnown):
        return Decision(Allowed.NOT_ALLOWED, Decider.REALTIME, "unknown token at the hub")
    why = f"unknown token, no real-time answer: {answer.reason}"
    return Decision(Allowed.NOT_ALLOWED, Decider.FALLBACK, why)


def _answered(info: AuthorizationInfo, who: str) -> Decision:
    reason = f"{who} answered {info.allowed.value}"
    return Decision(info.allowed, Decider.REALTIME, reason, info.location, info.info)


def read_reply(reply: RpcReply) -> RealtimeAnswer:
    """The dispatcher's reply to a PartnerAuthorize (contract in shared/contracts/tokens.py).

    1000: the eMSP's AuthorizationInfo. HTTP 404: it does not know the token. Another 2xxx: the
    eMSP answered but would not decide (2002: it wants a location): refused, as it is an answer.
    3xxx (3001: unreachable or too slow) or an unreadable answer: no answer.
    """
    if reply.status_code == OcpiStatus.SUCCESS:
        try:
            return Answered(decode(bytes(reply.data), AuthorizationInfo))
        except msgspec.DecodeError as exc:
            return NoAnswer(f"unreadable answer from the eMSP: {exc}")
    if reply.http_status == 404:
        return NotKnown("the eMSP does not know the token")
    if 2000 <= reply.status_code < 3000:
        return Answered(AuthorizationInfo(allowed=Allowed.NOT_ALLOWED))
    return NoAnswer(f"no answer from the eMSP ({reply.status_code}: {reply.status_message or ''})")
