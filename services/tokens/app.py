"""Composition root of the tokens service: our drivers' tokens (eMSP sender) and partners' tokens
at our chargers (CPO receiver), on the generic module machinery of shared/modules.

services/tokens/emsp.py builds the eMSP side (our tokens, the company's inputs, real-time
authorization for CPO partners); services/tokens/cpo.py the CPO side (partners' tokens, the
chargers' authorization). This file only wires the two into one module service.
"""

from __future__ import annotations

from services.tokens.cpo import build_cpo
from services.tokens.emsp import build_emsp
from shared.modules.outbox import Announcer
from shared.modules.service import InputHandler, module_service
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Token
from shared.service import Component, ServiceContext

# Requests one replica handles at a time (the RPC queue's prefetch).
REQUESTS_IN_FLIGHT = 128


async def build(ctx: ServiceContext) -> list[Component]:
    """Both sides of the module in one service: one RPC queue, one input queue."""
    cpo = await build_cpo(ctx)
    emsp = await build_emsp(ctx)
    announcer: Announcer[Token] = Announcer(
        cpo.store, ctx.broker.publish_event, cpo.partner_event, cpo.mark_of
    )
    inputs = InputHandler(TOKENS, emsp.store, emsp.rules, cpo.import_one, ctx.broker.publish_event, announcer)
    requests = {**emsp.object_requests, **cpo.object_requests}
    other = {**emsp.other_requests, **cpo.other_requests}
    # A real-time authorization waits for the eMSP (up to TOKENS_REALTIME_DEADLINE_SECONDS) or the
    # company's authorizer: many may be in flight while cached answers keep flowing.
    service = await module_service(
        ctx, TOKENS, announcer, requests, inputs, other, prefetch=REQUESTS_IN_FLIGHT
    )
    return [*service, *cpo.components]
