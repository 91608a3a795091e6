"""Outbound OCPI HTTP calls; the only module of the dispatcher that speaks aiohttp to partners."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp
import msgspec
import structlog

from shared.ocpi.v2_1_1.codec import encode

log = structlog.get_logger(__name__)


class _Envelope(msgspec.Struct):
    """The part of an OCPI response the dispatcher reads; lenient, so any partner's answer parses."""

    status_code: int | None = None
    status_message: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


_envelope = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True)
class Reply:
    """What came back from one call: HTTP status (None: no answer), envelope fields, Link header."""

    http_status: int | None
    status_code: int | None
    message: str
    request_id: str
    data: bytes = b"null"
    link: str | None = None

    @property
    def answered(self) -> bool:
        """The partner's server answered with a 2xx."""
        return self.http_status is not None and 200 <= self.http_status < 300


class OcpiClient:
    """Calls partners with their token; every call has a timeout and an X-Request-ID."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def call(self, method: str, url: str, token: str, body: object = None) -> Reply:
        """Send one request and read the OCPI envelope; network failures become a Reply without status."""
        request_id = uuid.uuid4().hex
        headers = {"Authorization": f"Token {token}", "X-Request-ID": request_id}
        data = None
        if body is not None:
            data = encode(body)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=self._timeout
            ) as response:
                payload = await response.read()
                status, link = response.status, response.headers.get("Link")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Reply(None, None, f"{type(exc).__name__}: {exc}".strip(), request_id)
        try:
            envelope = _envelope.decode(payload)
        except msgspec.DecodeError:
            text = payload[:120].decode("utf-8", errors="replace")
            return Reply(status, None, f"no OCPI envelope: {text!r}", request_id, link=link)
        message = envelope.status_message or ""
        return Reply(status, envelope.status_code, message, request_id, bytes(envelope.data), link)
