"""The CPO side of the tokens module: partners' tokens (the Receiver interface) and our chargers'
authorizations (ChargerAuthorize). services/tokens/app.py composes it with the eMSP side.

See services/tokens/README.md (CPO side) for the charger RPC, the whitelist table, the cache and the settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.tokens.cpo_authorize import ChargerAuthorizer
from services.tokens.cpo_cache import MISS_SECONDS, TokenCache
from services.tokens.cpo_changes import TokenChangesListener
from services.tokens.cpo_holders import TokenHolders
from services.tokens.cpo_lookup import TokenLookups
from services.tokens.cpo_realtime import RealtimeAuthorizer
from services.tokens.cpo_rules import mark_of, partner_event, updated_of
from shared.contracts.base import Message, Outcome
from shared.contracts.partners import Party
from shared.contracts.tokens import ChargerAuthorize, PartnerTokenImport, TokenLookup
from shared.messaging.rpc import RpcClient, RpcClientReadiness
from shared.modules.flat import import_whole, receiver_handlers
from shared.modules.mongo import MongoReceiverStore
from shared.modules.receiver import PartnerRecord, PartnerVersion, ReceiverStore
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Token
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext

PARTNER_TOKENS = "partner_tokens"


@dataclass(frozen=True)
class CpoSide:
    """What the tokens service's composition root wires of the CPO side."""

    store: ReceiverStore[Token]
    partner_event: Callable[[PartnerRecord[Token]], Message]
    mark_of: Callable[[Message], PartnerVersion | None]
    import_one: Callable[[PartnerTokenImport], Awaitable[Outcome]]
    object_requests: dict[type[Message], RpcHandler]
    other_requests: dict[type[Message], RpcHandler]
    components: list[Component]


async def build_cpo(ctx: ServiceContext) -> CpoSide:
    """The store with its indexes, the cache, the real-time client and the change listener."""
    settings = ctx.settings
    store = MongoReceiverStore(ctx.db, PARTNER_TOKENS, Token, "token", updated_of)
    await store.ensure_indexes()
    holders = TokenHolders(store.collection)
    await holders.ensure_indexes()
    cache = TokenCache(ttl=settings.tokens_cache_ttl, miss_ttl=MISS_SECONDS)

    def announce(record: PartnerRecord[Token]) -> Message:
        # The replica that stored the change knows it first: its cache follows before it replies.
        cache.changed(record.party, record.value, record.via, record.version)
        return partner_event(record)

    async def import_one(msg: PartnerTokenImport) -> Outcome:
        party = Party(msg.country_code, msg.party_id)
        return await import_whole(
            TOKENS, store, party, msg.token, msg.token.uid, announce, via=msg.partner_id
        )

    # Started here, not as a component: the RPC server may take a request before components start.
    rpc = RpcClient(ctx.broker, timeout=settings.tokens_realtime_deadline)
    await rpc.start()
    realtime = RealtimeAuthorizer(rpc, settings.tokens_realtime_deadline)
    authorize = ChargerAuthorizer(
        cache,
        holders.find,
        realtime.ask,
        realtime_for_allowed=settings.tokens_realtime_for_allowed,
        unknown_via=settings.tokens_unknown_via,
    )
    listener = await TokenChangesListener.declare(ctx.broker, cache)
    return CpoSide(
        store=store,
        partner_event=announce,
        mark_of=mark_of,
        import_one=import_one,
        object_requests=receiver_handlers(TOKENS, store, announce),
        other_requests={ChargerAuthorize: authorize, TokenLookup: TokenLookups(holders.find)},
        components=[RpcClientReadiness(rpc), listener],
    )
