"""Composition root of the locations service: repository, outbox, the RPC server, the input queue."""

from __future__ import annotations

from typing import Any

from services.locations.handlers import (
    REQUESTS,
    RULES,
    Handler,
    handle_partner_location_import,
    mark_of,
    partner_changed,
)
from services.locations.mongo import mongo_repository
from services.locations.repository import Repository
from shared.contracts.base import Message, Outcome
from shared.modules.outbox import Announcer
from shared.modules.service import InputHandler, Publish, module_service
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.modules import LOCATIONS
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext


def input_handler(repo: Repository, publish: Publish, announcer: Announcer[Any]) -> InputHandler[Location]:
    """The handler of the input queue: our inputs in batches, partners' imports one by one."""

    async def import_one(msg: Any) -> Outcome:
        return await handle_partner_location_import(msg, repo)

    return InputHandler(LOCATIONS, repo.own, RULES, import_one, publish, announcer)


async def build(ctx: ServiceContext) -> list[Component]:
    """Wire the repository into the generic module service."""
    repo = await mongo_repository(ctx.db)
    announcer: Announcer[Location] = Announcer(
        repo.partners, ctx.broker.publish_event, partner_changed, mark_of
    )

    def bound(handler: Handler) -> RpcHandler:
        async def handle(request: Any) -> Outcome:
            return await handler(request, repo)

        return handle

    requests: dict[type[Message], RpcHandler] = {kind: bound(handler) for kind, handler in REQUESTS.items()}
    inputs = input_handler(repo, ctx.broker.publish_event, announcer)
    return await module_service(ctx, LOCATIONS, announcer, requests, inputs)
