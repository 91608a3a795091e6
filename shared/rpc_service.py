"""A service whose gateway requests are a tagged union dispatched through a handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import structlog

from shared.contracts.base import Message, Outcome, error
from shared.errors import InvalidInput, failure_reply
from shared.messaging.rpc import PublishedHook, RpcServer
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.service import ServiceContext

log = structlog.get_logger(__name__)
RpcHandler = Callable[[Any], Awaitable[Outcome]]


def rpc_server(
    ctx: ServiceContext,
    request_type: Any,
    handlers: Mapping[type[Message], RpcHandler],
    on_published: PublishedHook | None = None,
    prefetch: int = 16,
) -> RpcServer:
    """An RpcServer for `ctx.name` decoding `request_type` and calling the handler for its class;
    `prefetch` requests are handled at a time."""
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(request_type)

    async def handle(body: bytes) -> Outcome:
        try:
            request = decoder.decode(body)
        except msgspec.ValidationError as exc:
            # Well-formed JSON of the wrong shape (a missing field, a value out of bounds): the caller
            # waits for an answer, so it gets a 2001 naming the field rather than a dead letter.
            # Unreadable JSON stays a poison message (RpcServer dead-letters it).
            return Outcome(reply=failure_reply(InvalidInput(f"invalid request: {exc}")))
        handler = handlers.get(type(request))
        if handler is None:
            return Outcome(
                reply=error(OcpiStatus.SERVER_ERROR, f"{ctx.name} cannot handle {type(request).__name__}")
            )
        return await handler(request)

    return RpcServer(ctx.broker, ctx.name, handle, prefetch=prefetch, on_published=on_published)
