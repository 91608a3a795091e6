"""The eMSP side of the tokens service: our drivers' tokens, the company's inputs, the GET list for
CPO partners, and their real-time authorizations (wired into one module service by app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.tokens.emsp_authorize import AskDelegate, authorize_handler
from services.tokens.emsp_decisions import Policy
from services.tokens.emsp_rules import TokenInputs
from services.tokens.emsp_store import mongo_tokens
from shared.contracts.base import Message, RpcReply
from shared.contracts.tokens import DelegatedAuthorize, RealtimeAuthorize
from shared.messaging.rpc import RpcClient
from shared.modules.flat import sender_handlers
from shared.modules.sender import InputRules, SenderStore
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Allowed
from shared.rpc_service import RpcHandler
from shared.service import ServiceContext
from shared.settings import Settings

RULES = TokenInputs()


@dataclass(frozen=True)
class EmspSide:
    """What app.py wires: the store and rules of our tokens, and the requests the side answers."""

    store: SenderStore[Any]
    rules: InputRules[Any, Any]
    # The generic requests of the Sender interface (the GET list).
    object_requests: dict[type[Message], RpcHandler]
    # RealtimeAuthorize, from the gateway.
    other_requests: dict[type[Message], RpcHandler]


def policy_of(settings: Settings) -> Policy:
    """The authorization policy of the deployment (TOKENS_AUTHORIZE_*)."""
    return Policy(
        requires_location=settings.tokens_authorize_requires_location,
        delegate=settings.tokens_authorize_delegate,
        deadline=settings.tokens_authorize_deadline,
        fallback=Allowed(settings.tokens_authorize_fallback),
    )


async def delegate_of(ctx: ServiceContext, policy: Policy) -> AskDelegate | None:
    """How to ask the delegate: an RPC client of the service's own (None without a delegate)."""
    if not policy.delegate:
        return None
    # Its own client: replies come on this process's direct reply-to consumer, started here
    # (the broker is connected before the composition root runs).
    rpc = RpcClient(ctx.broker, policy.deadline)
    await rpc.start()

    async def ask(request: DelegatedAuthorize) -> RpcReply:
        return await rpc.call(policy.delegate, request, wait_for=policy.deadline)

    return ask


async def build_emsp(ctx: ServiceContext) -> EmspSide:
    """Our tokens in `own_tokens`, the list and the real-time authorization."""
    store = await mongo_tokens(ctx.db)
    policy = policy_of(ctx.settings)
    handler = authorize_handler(store, policy, await delegate_of(ctx, policy))
    return EmspSide(
        store=store,
        rules=RULES,
        object_requests=sender_handlers(TOKENS, store),
        other_requests={RealtimeAuthorize: handler},
    )
