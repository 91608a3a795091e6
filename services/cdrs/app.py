"""Composition root of the cdrs service: our CDRs (CPO side, cpo.py).

The eMSP side (partners' CDRs of our drivers, checked against the tariff) joins here.
"""

from __future__ import annotations

from typing import Any

from services.cdrs.cpo import CdrEventHandler, list_handler, own_cdrs
from shared.contracts.base import Message
from shared.contracts.objects import SenderList
from shared.messaging.queues import CDRS_EVENTS
from shared.modules.memory import MemoryReceiverStore
from shared.modules.outbox import Announcer
from shared.modules.service import module_service
from shared.ocpi.v2_1_1.modules import CDRS
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext


async def build(ctx: ServiceContext) -> list[Component]:
    """One RPC queue for both sides; the events queue for the CPO side."""
    own = await own_cdrs(ctx)
    requests: dict[type[Message], RpcHandler] = {SenderList: list_handler(own)}
    announcer: Announcer[Any] = Announcer(
        MemoryReceiverStore(), ctx.broker.publish_event, lambda record: None, lambda event: None
    )
    events = CdrEventHandler(own, ctx.broker.publish_event)
    return await module_service(ctx, CDRS, announcer, requests, events, input_queue=CDRS_EVENTS)
