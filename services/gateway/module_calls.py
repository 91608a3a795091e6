"""Turning a partner's module call into an RPC to the owning service, and its reply into HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from urllib.parse import urlencode

import msgspec
import structlog
from aiohttp import web

from services.gateway.responses import OcpiError, bad_body, envelope, invalid
from services.gateway.state import Gateway
from shared.contracts.base import Message
from shared.messaging.rpc import RpcTimeout
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.types import to_utc

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def call_service(
    gateway: Gateway, service: str, request: Message, base_url: str | None = None
) -> web.Response:
    """RPC to `service`; a service that does not answer in time becomes a 3000 within our timeout."""
    try:
        reply = await gateway.rpc.call(service, request)
    except RpcTimeout as exc:
        log.warning("rpc_timeout", service=service, reason=str(exc))
        raise OcpiError(3000, f"The {service} service did not answer in time", http_status=503) from exc
    headers = dict(reply.headers)
    if reply.total_count is not None:
        headers["X-Total-Count"] = str(reply.total_count)
    if reply.limit is not None:
        headers["X-Limit"] = str(reply.limit)
    if reply.next_query is not None and base_url is not None:
        headers["Link"] = f'<{base_url}?{urlencode(reply.next_query)}>; rel="next"'
    return envelope(reply.data, reply.status_code, reply.status_message, reply.http_status, headers)


def parse_body(body: bytes, type_: type[T], what: str) -> T:
    """Decode and validate a request body; the error names the field."""
    if not body:
        raise invalid(f"Request body is empty; a {what} object is required")
    try:
        return decode(body, type_)
    except msgspec.DecodeError as exc:
        raise bad_body(what, exc) from exc


class PageQuery(msgspec.Struct, frozen=True):
    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None
    cursor: str | None


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise invalid(f"{name} must not be negative")
    return value


def _datetime(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return to_utc(datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+")))
    except ValueError:
        raise invalid(f"{name} must be an OCPI DateTime like 2019-01-01T00:00:00Z, got {raw!r}") from None


def page_query(request: web.Request, cap: int) -> PageQuery:
    """Pagination parameters; a limit above the cap is lowered to it (X-Limit tells the client)."""
    limit = _int(request, "limit", cap)
    cursor = request.query.get("cursor") or None
    if cursor is not None and (len(cursor) > 64 or not cursor.replace("-", "").replace("_", "").isalnum()):
        raise invalid("cursor is not one we issued")
    return PageQuery(
        offset=_int(request, "offset", 0),
        limit=max(1, min(limit, cap)),
        date_from=_datetime(request, "date_from"),
        date_to=_datetime(request, "date_to"),
        cursor=cursor,
    )
