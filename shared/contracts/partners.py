"""Messages about roaming partners: published by the gateway, which owns the partner registry."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from shared.contracts.base import Message
from shared.settings import Role


class Party(msgspec.Struct, frozen=True):
    """An OCPI party: the owner of client-owned objects."""

    country_code: str
    party_id: str


class PartnerRegistered(Message, frozen=True, kw_only=True, tag="credentials.partner.registered"):
    """A partner completed the credentials handshake, or updated it (PUT): its current connection."""

    partner_id: str
    name: str
    role: Role
    parties: list[Party]
    versions_url: str
    version: str
    endpoints: dict[str, str]
    # No token: it never travels on the events exchange (review M5). The dispatcher asks the gateway
    # for it (PartnerTokenGet) and gets it sealed.
    registered_at: datetime


# The gateway's routing key on the rpc exchange: it answers PartnerTokenGet.
GATEWAY_SERVICE = "credentials"


class PartnerTokenGet(Message, frozen=True, kw_only=True, tag="credentials.partner.token"):
    """Request (RPC) to the gateway: the token a registered partner gave us, to call it with."""

    partner_id: str


class PartnerToken(msgspec.Struct, frozen=True, kw_only=True):
    """The reply's data: the token sealed under PARTNER_TOKEN_KEYS with the partner id as context
    (shared/sealing.py); only the gateway and the dispatcher hold the keys that open it."""

    partner_id: str
    sealed: str


class PartnerUnregistered(Message, frozen=True, kw_only=True, tag="credentials.partner.unregistered"):
    """The partner's credentials were deleted: nothing may be pushed to it any more."""

    partner_id: str
    # Orders it against PartnerRegistered.registered_at: replicas may see the two reordered.
    unregistered_at: datetime | None = None


class TokensRevoked(Message, frozen=True, kw_only=True, tag="credentials.token.revoked"):
    """Tokens (by their hash) that stopped working: every gateway replica drops them from its cache."""

    token_hashes: list[str]


class SyncState(enum.Enum):
    IN_SYNC = "IN_SYNC"
    RETRYING = "RETRYING"
    OUT_OF_SYNC = "OUT_OF_SYNC"


class PartnerSyncStateChanged(
    Message, frozen=True, kw_only=True, tag="dispatcher.partner.sync_state_changed"
):
    """The dispatcher's view of a partner: whether pushes reach it."""

    partner_id: str
    state: SyncState
    detail: str = ""
    at: datetime


class PullRequested(Message, frozen=True, kw_only=True, tag="dispatcher.module.pull"):
    """Pull a partner's objects of one module (re-sync); sent by the gateway for the operator."""

    partner_id: str
    module: str = "locations"
    full: bool = False
