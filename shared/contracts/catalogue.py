"""The message catalogue: every message type of the platform, listed once.

Queue bindings (shared/messaging/queues.py), the dispatcher's decoder and the AsyncAPI document
(docs/generate_asyncapi.py) derive from these tables, so a new message is bound, decoded and documented
where it is listed here.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from shared.contracts.base import Message
from shared.contracts.cdrs import (
    CdrCreated,
    CdrDelivered,
    CdrDisputesList,
    PartnerCdrDisputed,
    PartnerCdrReceived,
)
from shared.contracts.locations import (
    LocationChanged,
    LocationInput,
    PartnerLocationChanged,
    PartnerLocationImport,
)
from shared.contracts.partners import (
    PartnerRegistered,
    PartnerSyncStateChanged,
    PartnerTokenGet,
    PartnerUnregistered,
    PullRequested,
    TokensRevoked,
)
from shared.contracts.sessions import PartnerSessionChanged, SessionChanged, SessionEnded, SessionInput
from shared.contracts.tariffs import (
    PartnerTariffChanged,
    PartnerTariffImport,
    PartnerTariffRemoved,
    TariffChanged,
    TariffInput,
    TariffRemoved,
)
from shared.contracts.tokens import (
    AuthorizationDecided,
    ChargerAuthorize,
    DelegatedAuthorize,
    PartnerAuthorize,
    PartnerTokenChanged,
    PartnerTokenImport,
    RealtimeAuthorize,
    TokenChanged,
    TokenInput,
    TokenLookup,
)
from shared.ocpi.v2_1_1.versions import ModuleID

# What the company's systems publish on the internal exchange, per module (its service consumes them).
INPUTS: dict[ModuleID, tuple[type[Message], ...]] = {
    ModuleID.LOCATIONS: get_args(LocationInput),
    ModuleID.TARIFFS: get_args(TariffInput),
    ModuleID.TOKENS: get_args(TokenInput),
    # The charger backend's session events (CPO side).
    ModuleID.SESSIONS: get_args(SessionInput),
}

# The message a re-sync pull publishes (internal exchange) for each object it reads from a partner.
# Sessions and CDRs are pushed to us only (their lists need dates and hold a partner's own).
IMPORTS: dict[ModuleID, type[Message]] = {
    ModuleID.LOCATIONS: PartnerLocationImport,
    ModuleID.TARIFFS: PartnerTariffImport,
    ModuleID.TOKENS: PartnerTokenImport,
}

# Events about our own objects (events exchange): the dispatcher pushes them to partners.
PUSHED: dict[ModuleID, tuple[type[Message], ...]] = {
    ModuleID.LOCATIONS: (LocationChanged,),
    ModuleID.TARIFFS: (TariffChanged, TariffRemoved),
    ModuleID.TOKENS: (TokenChanged,),
    ModuleID.SESSIONS: (SessionChanged,),
    ModuleID.CDRS: (CdrCreated,),
}

# Events about partners' objects as we store them (events exchange), for internal consumers.
PARTNER_OBJECT_EVENTS: dict[ModuleID, tuple[type[Message], ...]] = {
    ModuleID.LOCATIONS: (PartnerLocationChanged,),
    ModuleID.TARIFFS: (PartnerTariffChanged, PartnerTariffRemoved),
    ModuleID.TOKENS: (PartnerTokenChanged,),
    ModuleID.SESSIONS: (PartnerSessionChanged,),
    ModuleID.CDRS: (PartnerCdrReceived,),
}

# The billing chain's events (events exchange): an ended session (the cdrs service makes its CDR),
# a CDR the eMSP took (the dispatcher tells the cdrs service where), a received CDR whose price we
# dispute (for the billing team).
BILLING_EVENTS: tuple[type[Message], ...] = (SessionEnded, CdrDelivered, PartnerCdrDisputed)

# Decisions the platform took (events exchange), for internal consumers.
DECISION_EVENTS: tuple[type[Message], ...] = (AuthorizationDecided,)

# Requests (RPC) with their documented replies: from the company's systems to a service
# (ChargerAuthorize), from a service to the company's systems (DelegatedAuthorize), and between
# the platform's own processes (the gateway's RealtimeAuthorize, the tokens service's PartnerAuthorize,
# the admin API's CdrDisputesList, the dispatcher's PartnerTokenGet to the gateway).
REQUESTS: tuple[type[Message], ...] = (
    ChargerAuthorize,
    DelegatedAuthorize,
    RealtimeAuthorize,
    PartnerAuthorize,
    TokenLookup,
    CdrDisputesList,
    PartnerTokenGet,
)

# Events about the partners themselves (events exchange).
PARTNER_EVENTS: tuple[type[Message], ...] = (PartnerRegistered, PartnerUnregistered, PartnerSyncStateChanged)

# Traffic between the platform's own processes, not part of the documented catalogue (it may change
# without a new tag): cache invalidation across gateway replicas and the operator's re-sync requests
# (events exchange); the imports of IMPORTS travel on the internal exchange.
PLATFORM_INTERNAL: tuple[type[Message], ...] = (TokensRevoked, PullRequested)


def flat(table: dict[ModuleID, tuple[type[Message], ...]]) -> tuple[type[Message], ...]:
    """The message types of every module of a table, in table order."""
    return tuple(kind for kinds in table.values() for kind in kinds)


def decoder(*types: type[Message]) -> msgspec.json.Decoder[Any]:
    """A decoder of the tagged union of `types`."""
    union: Any = types[0]
    for kind in types[1:]:
        union = union | kind
    return msgspec.json.Decoder(union)
