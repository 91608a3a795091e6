"""Request id, one summary log line per request, and every error rendered as an OCPI envelope."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from services.gateway.responses import OcpiError, envelope
from shared.errors import OcpiFailure, TooManyRequests, answer_of
from shared.messaging.headers import current_request_id, new_request_id

log = structlog.get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# A caller's id travels into every log line and AMQP header: short, and safe in both (L5).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def sane_request_id(given: str | None) -> str:
    """The caller's X-Request-ID when it is 1-64 of [A-Za-z0-9._-], otherwise a fresh one."""
    if given and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


@web.middleware
async def ocpi_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id, turn exceptions into OCPI errors, log one line."""
    request_id = sane_request_id(request.headers.get("X-Request-ID"))
    token = current_request_id.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except OcpiError as exc:
            response = envelope(None, exc.status_code, exc.message, exc.http_status)
        except OcpiFailure as exc:
            http_status, status_code = answer_of(exc)
            response = envelope(None, status_code, exc.message, http_status)
            if isinstance(exc, TooManyRequests):
                response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        except web.HTTPException as exc:
            # Unknown route (404), wrong method (405), body too large (413): still an OCPI envelope.
            response = envelope(None, 2000, exc.reason, exc.status)
        except Exception:
            log.exception("request_failed", method=request.method, path=request.path)
            response = envelope(None, 3000, "Internal server error", 500)
        response.headers["X-Request-ID"] = request_id
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        current_request_id.reset(token)
