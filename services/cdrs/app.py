"""Composition root of the cdrs service: our CDRs (CPO side, cpo.py) and partners' CDRs of our
drivers, checked against the tariff (eMSP side, emsp.py), in one service: one RPC queue, and the
events queue of the CPO side (`cdrs.events`: ended sessions, deliveries)."""

from __future__ import annotations

from services.cdrs.cpo import CdrEventHandler, own_cdrs
from services.cdrs.cpo_rules import view
from services.cdrs.emsp import build_emsp
from shared.contracts.base import Message
from shared.contracts.objects import SenderList
from shared.messaging.queues import CDRS_EVENTS
from shared.modules.flat import owner_list
from shared.modules.service import module_service
from shared.ocpi.v2_1_1.modules import CDRS
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext


async def build(ctx: ServiceContext) -> list[Component]:
    """Both sides on the generic module service."""
    own = await own_cdrs(ctx)
    emsp = await build_emsp(ctx)
    requests: dict[type[Message], RpcHandler] = {SenderList: owner_list(own, view), **emsp.object_requests}
    events = CdrEventHandler(own, ctx.broker.publish_event)
    service = await module_service(
        ctx,
        CDRS,
        emsp.announcer,
        requests,
        events,
        emsp.other_requests,
        input_queue=CDRS_EVENTS,
    )
    return [*service, *(c for c in emsp.components if c is not emsp.announcer)]
