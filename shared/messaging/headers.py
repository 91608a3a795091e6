"""Message header names and the request-id context that travels with them."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

REQUEST_ID = "x-request-id"
DEADLINE = "x-deadline"
ERROR = "x-error"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
# While an RPC request is handled: when its caller stops waiting (epoch seconds), None when unsaid.
# A handler that calls out bounds its own calls by it.
current_deadline: ContextVar[float | None] = ContextVar("current_deadline", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex
