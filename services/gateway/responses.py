"""The OCPI response envelope on the wire, and the errors that turn into one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from shared.errors import InvalidInput, MethodNotAllowed, OcpiFailure, Unauthorized
from shared.ocpi.v2_1_1.codec import encode


class Envelope(msgspec.Struct, omit_defaults=True):
    """OCPI 2.1.1 response: data is already-encoded JSON so service replies pass through untouched."""

    status_code: int
    timestamp: str
    data: msgspec.Raw | None = None
    status_message: str | None = None


_envelope_encoder = msgspec.json.Encoder()


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(
    raw_data: bytes | None,
    status_code: int = 1000,
    message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OCPI response; `raw_data` is JSON bytes (or None for no data)."""
    body = Envelope(
        status_code=status_code,
        timestamp=now_text(),
        data=msgspec.Raw(raw_data) if raw_data is not None else None,
        status_message=message,
    )
    return web.Response(
        body=_envelope_encoder.encode(body),
        status=http_status,
        content_type="application/json",
        headers=headers,
    )


def success(data: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    """1000 with `data` encoded the OCPI way (UTC timestamps with Z)."""
    return envelope(encode(data) if data is not None else None, headers=headers)


class OcpiError(Exception):
    """Raised anywhere in a request with a code of its own (the credentials handshake's 3001-3003);
    the middleware renders it as an OCPI envelope. Failures in shared/errors.py's table are raised
    as themselves."""

    def __init__(self, status_code: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status


def unauthorized(message: str = "Unknown or missing token") -> OcpiFailure:
    return Unauthorized(message)


def not_allowed(message: str) -> OcpiFailure:
    return MethodNotAllowed(message)


def invalid(message: str) -> OcpiFailure:
    """2001: invalid or missing parameters; HTTP 400 so clients that only read HTTP see it too."""
    return InvalidInput(message)


def bad_body(what: str, exc: msgspec.DecodeError) -> OcpiFailure:
    """A 2001 that tells broken JSON apart from a valid document that breaks the schema."""
    if isinstance(exc, msgspec.ValidationError):
        return invalid(f"Invalid {what}: {exc}")
    return invalid(f"Malformed JSON in the {what}: {exc}")
