"""Tokens messages: the company's inputs (eMSP side), re-sync imports, domain events, and the
authorization requests between the platform's processes and the company's systems.

Inputs carry an `event_id`, the idempotency key: a redelivered message changes nothing twice.
Tokens are never deleted (mod_tokens.md 2.1): a blocked or expired card is `valid: false`.
Our tokens are keyed by `uid` alone, as the receivers' URLs (`/tokens/{cc}/{pid}/{token_uid}`) are.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from shared.contracts.base import Message
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.tokens import Allowed, LocationReferences, Token, TokenType
from shared.ocpi.v2_1_1.types import DisplayText, NonNegativeInt64, String36

# ---- input from the company's systems (internal exchange), eMSP side ----------------------------


class TokenUpsert(Message, frozen=True, kw_only=True, tag="tokens.token.upsert"):
    """A token of ours was issued, or changed as a whole (a newer `last_updated` wins)."""

    event_id: str
    token: Token


class TokenBlock(Message, frozen=True, kw_only=True, tag="tokens.token.block"):
    """A card was blocked (lost, stolen, unpaid): valid becomes false, pushed to every CPO first."""

    event_id: str
    token_uid: String36
    # When it was blocked: the token's new last_updated; an older block changes nothing.
    at: datetime


class TokenExpire(Message, frozen=True, kw_only=True, tag="tokens.token.expire"):
    """A card's contract ended: valid becomes false, and real-time authorizations answer EXPIRED."""

    event_id: str
    token_uid: String36
    at: datetime


TokenInput = TokenUpsert | TokenBlock | TokenExpire


class PartnerTokenImport(Message, frozen=True, kw_only=True, tag="tokens.partner_token.import"):
    """A token pulled from an eMSP partner during a re-sync (CPO side)."""

    country_code: str
    party_id: str
    token: Token
    # The connection that serves the token's party (a direct partner, or a hub carrying it).
    partner_id: str = ""


# ---- domain events (events exchange) ------------------------------------------------------------


class TokenChanged(Message, frozen=True, kw_only=True, tag="tokens.token.changed"):
    """One of our tokens was issued or changed (eMSP side): its full state and version.

    `changed` names the Token fields that differ from the previous version (every field for a new
    token): the dispatcher PATCHes a CPO that has the previous version when only `valid`,
    `whitelist` and `last_updated` changed, and PUTs the whole token otherwise.
    """

    token: Token
    version: NonNegativeInt64
    changed: list[str]


class PartnerTokenChanged(Message, frozen=True, kw_only=True, tag="tokens.partner_token.changed"):
    """An eMSP partner's token changed in our copy (CPO side), for internal consumers.

    `version` grows by one per stored change; an event can come twice (after a crash).
    """

    country_code: str
    party_id: str
    token: Token
    version: NonNegativeInt64
    # The connection the token came through: sessions and CDRs of this token go only there.
    partner_id: str = ""


class Decider(enum.Enum):
    """Who made an authorization decision."""

    LOCAL = "LOCAL"  # from the token as we hold it (whitelist)
    REALTIME = "REALTIME"  # the token's eMSP answered a real-time request
    DELEGATE = "DELEGATE"  # the company's own system answered (eMSP side)
    FALLBACK = "FALLBACK"  # nobody answered in time: the configured or whitelist answer


class AuthorizationDecided(Message, frozen=True, kw_only=True, tag="tokens.authorization.decided"):
    """A decision on a token at one of our chargers (CPO side) or for a CPO partner (eMSP side)."""

    token_uid: str
    token_type: TokenType
    allowed: Allowed
    decider: Decider
    # Why, in words, for logs and support ("whitelist ALWAYS", "eMSP did not answer in 2.0 s", ...).
    reason: str
    location: LocationReferences | None = None
    # The token's owner and the connection serving it (CPO side; None when the token is unknown).
    owner: Party | None = None
    partner_id: str | None = None
    at: datetime


# ---- requests (RPC) -------------------------------------------------------------------------------


class RealtimeAuthorize(Message, frozen=True, kw_only=True, tag="tokens.authorize.realtime"):
    """gateway -> tokens (eMSP side): a CPO partner's POST /tokens/{token_uid}/authorize.

    Replies with an AuthorizationInfo (1000), HTTP 404 for a token we did not issue, or 2002 when
    the policy needs a location and none was given.
    """

    token_uid: str
    token_type: TokenType = TokenType.RFID
    location: LocationReferences | None = None
    # The CPO connection asking, for the log and the delegate.
    partner_id: str = ""


class DelegatedAuthorize(Message, frozen=True, kw_only=True, tag="tokens.authorize.delegated"):
    """tokens -> the company's authorizer (eMSP side, when TOKENS_AUTHORIZE_DELEGATE names it).

    The authorizer replies with an RpcReply whose data is an AuthorizationInfo, or with status 2002
    when it needs a location; no answer within TOKENS_AUTHORIZE_DEADLINE_SECONDS means the
    configured TOKENS_AUTHORIZE_FALLBACK.
    """

    token: Token
    location: LocationReferences | None = None
    partner_id: str = ""


class ChargerAuthorize(Message, frozen=True, kw_only=True, tag="tokens.charger.authorize"):
    """charger backend -> tokens (CPO side): may this token charge here? Replies a ChargerAuthorization."""

    token_uid: str
    token_type: TokenType = TokenType.RFID
    location: LocationReferences | None = None


class ChargerAuthorization(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to ChargerAuthorize (the data of the RpcReply)."""

    allowed: Allowed
    decider: Decider
    reason: str
    location: LocationReferences | None = None
    info: DisplayText | None = None
    owner: Party | None = None
    partner_id: str | None = None


class PartnerAuthorize(Message, frozen=True, kw_only=True, tag="dispatcher.tokens.authorize"):
    """tokens -> dispatcher (CPO side): POST the token's real-time authorization to its eMSP.

    Replies with the eMSP's AuthorizationInfo (1000); HTTP 404 when the eMSP does not know the
    token; status 3001 when the eMSP cannot be reached or did not answer within the call's deadline.
    """

    partner_id: str
    token_uid: str
    token_type: TokenType = TokenType.RFID
    location: LocationReferences | None = None


class TokenLookup(Message, frozen=True, kw_only=True, tag="tokens.token.lookup"):
    """sessions -> tokens (CPO side): whose token started a session at our charger?

    Replies a TokenHolder; HTTP 404 (status 2000) when no partner gave us the token, or several
    parties hold its uid and type as valid (nobody can be told which one's it is).
    """

    token_uid: String36
    token_type: TokenType = TokenType.RFID


class TokenHolder(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to TokenLookup (the data of the RpcReply)."""

    owner: Party
    # The connection that serves the owner (the eMSP itself, or a hub): sessions and CDRs go there.
    partner_id: str
    token: Token
