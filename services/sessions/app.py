"""Composition root of the sessions service: our sessions (CPO sender) and partners' (eMSP receiver).

CPO side: the charger backend's events build, price and announce our sessions (cpo_rules.py,
cpo_inputs.py); a partner's GET of the list sees only the sessions of its own tokens. eMSP side:
the generic receiver (emsp.py).
"""

from __future__ import annotations

from typing import Any

from services.sessions import emsp
from services.sessions.cpo_inputs import SessionInputHandler
from services.sessions.cpo_lookups import StartLookups
from services.sessions.cpo_rules import SessionInputs, updated_of, view
from services.sessions.emsp import mark_of, partner_event, partner_sessions
from shared.contracts.base import Message
from shared.contracts.objects import SenderList
from shared.contracts.sessions import ChargingSession
from shared.messaging.rpc import RpcClient, RpcClientReadiness
from shared.modules.flat import owner_list, receiver_handlers
from shared.modules.mongo import MongoSenderStore
from shared.modules.outbox import Announcer
from shared.modules.service import module_service
from shared.ocpi.v2_1_1.modules import SESSIONS
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext

OWN_SESSIONS = "own_sessions"
# How long a start waits for the tokens, locations and tariffs services before the batch is held.
LOOKUP_TIMEOUT = 5.0


async def build(ctx: ServiceContext) -> list[Component]:
    """Both sides in one service: one RPC queue, one input queue."""
    own: MongoSenderStore[ChargingSession] = MongoSenderStore(
        ctx.db, OWN_SESSIONS, ChargingSession, "charging", updated_of, owner_path="charging.owner"
    )
    await own.ensure_indexes()
    partners = await partner_sessions(ctx.db)
    announcer: Announcer[Any] = Announcer(partners, ctx.broker.publish_event, partner_event, mark_of)

    requests: dict[type[Message], RpcHandler] = {
        SenderList: owner_list(own, view),
        **receiver_handlers(SESSIONS, partners, emsp.partner_event),
    }
    rpc = RpcClient(ctx.broker, timeout=LOOKUP_TIMEOUT)
    await rpc.start()
    rules = SessionInputs(ctx.settings.sessions_push_interval, ctx.settings.sessions_currency)
    inputs = SessionInputHandler(own, rules, StartLookups(rpc), ctx.broker.publish_event)
    service = await module_service(ctx, SESSIONS, announcer, requests, inputs)
    return [*service, RpcClientReadiness(rpc)]
