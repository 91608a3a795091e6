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
from shared.contracts.base import Message, RpcReply
from shared.messaging.rpc import RpcTimeout, RpcUnavailable
from shared.modules.clock import ahead_of_clock
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.types import INT32_MAX, to_utc

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: The largest offset or limit a query may name: any more is refused (2001), never passed on.
QUERY_INT_MAX = INT32_MAX


async def call_service(
    gateway: Gateway,
    service: str,
    request: Message,
    base_url: str | None = None,
    location_base: str | None = None,
) -> web.Response:
    """RPC to `service`; a service that does not answer in time becomes a 3000 within our timeout.

    `location_base`: a created object's `Location` header is this URL followed by the path the
    service answered in its `Location` header (a path below the module's URL)."""
    try:
        reply = await gateway.rpc.call(service, request)
    except RpcUnavailable as exc:
        log.warning("rpc_unavailable", service=service, reason=str(exc))
        raise OcpiError(3000, f"The {service} service cannot be reached right now", http_status=503) from exc
    except RpcTimeout as exc:
        log.warning("rpc_timeout", service=service, reason=str(exc))
        raise OcpiError(3000, f"The {service} service did not answer in time", http_status=503) from exc
    headers = dict(reply.headers)
    if reply.total_count is not None:
        headers["X-Total-Count"] = str(reply.total_count)
    if reply.limit is not None:
        headers["X-Limit"] = str(reply.limit)
    if location_base is not None and "Location" in headers:
        headers["Location"] = f"{location_base}/{headers['Location'].lstrip('/')}"
    if reply.next_query is not None and base_url is not None:
        headers["Link"] = f'<{base_url}?{urlencode(reply.next_query)}>; rel="next"'
    return envelope(
        forwarded_data(reply), reply.status_code, reply.status_message, reply.http_status, headers
    )


def forwarded_data(reply: RpcReply) -> bytes | None:
    """A reply's `data` for the envelope; none when it is JSON null (a service's error or a write), so
    every answer without data looks alike: the gateway's own errors omit the field too."""
    data = bytes(reply.data)
    return None if data.strip() == b"null" else data


def parse_body(body: bytes, type_: type[T], what: str) -> T:
    """Decode and validate a request body; the error names the field."""
    if not body:
        raise invalid(f"Request body is empty; a {what} object is required")
    try:
        # JSON nested too deep is a TooDeep (a DecodeError) from decode, before msgspec walks it.
        return decode(body, type_)
    except msgspec.DecodeError as exc:
        raise bad_body(what, exc) from exc


def refuse_future_last_updated(obj: msgspec.Struct | None) -> None:
    """A 2001 naming the field when a `last_updated` in `obj` (at any depth) is ahead of our clock
    by more than FUTURE_TOLERANCE (shared/modules/clock.py)."""
    reason = ahead_of_clock(obj)
    if reason is not None:
        raise invalid(f"Invalid {type(obj).__name__}: {reason}")


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
    if value > QUERY_INT_MAX:
        raise invalid(f"{name} must be at most {QUERY_INT_MAX}")
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
