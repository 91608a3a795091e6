"""Composition root of the sessions service.

The sessions module's handlers arrive with its own issue; until then the process runs the platform's
service skeleton: topology, its request queue, MongoDB, health endpoints and a graceful stop.
"""

from __future__ import annotations

from shared.contracts.base import Message
from shared.rpc_service import rpc_server
from shared.service import Component, ServiceContext


async def build(ctx: ServiceContext) -> list[Component]:
    await ctx.db.command("ping")
    return [rpc_server(ctx, Message, {})]
