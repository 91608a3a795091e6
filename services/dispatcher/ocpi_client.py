"""Outbound OCPI HTTP calls; the only module of the dispatcher that speaks aiohttp to partners."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import aiohttp
import msgspec
import structlog

from shared.outbound_http import PartnerCaller, PartnerCallFailed

log = structlog.get_logger(__name__)
# A partner's status_message travels on in details, events and documents: keep it short (L8).
MAX_MESSAGE = 500
# A Location header longer than this is no URL we pass on (it would travel in an event): dropped.
MAX_LOCATION = 2048


class _Envelope(msgspec.Struct):
    """The part of an OCPI response the dispatcher reads; lenient, so any partner's answer parses."""

    status_code: int | None = None
    status_message: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


_envelope = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True)
class Reply:
    """What came back from one call: HTTP status (None: no answer), envelope fields, the Link and
    Location headers."""

    http_status: int | None
    status_code: int | None
    message: str
    request_id: str
    data: bytes = b"null"
    link: str | None = None
    # Why no usable answer came, in one word ("timeout", "unreachable", ...); None when one came.
    failure: str | None = None
    # Where the partner keeps what a POST created (None: no header, or one over MAX_LOCATION).
    location: str | None = None

    @property
    def answered(self) -> bool:
        """The partner's server answered with a 2xx."""
        return self.http_status is not None and 200 <= self.http_status < 300


class OcpiClient:
    """Calls partners with their token; every call has a timeout, a body cap and an X-Request-ID."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float, max_body: int) -> None:
        self._caller = PartnerCaller(session, timeout, max_body)

    async def call(
        self,
        method: str,
        url: str,
        token: str,
        body: object = None,
        request_id: str | None = None,
        seconds: float | None = None,
    ) -> Reply:
        """Send one request and read the OCPI envelope; every failure becomes a Reply that is not OK.

        `request_id` (X-Request-ID) is the request behind what is sent, when there is one, so the
        partner's logs and ours meet; otherwise a fresh one. `seconds` replaces the usual timeout
        (a call made for someone who waits no longer than that)."""
        request_id = request_id or uuid.uuid4().hex
        caller = self._caller if seconds is None else replace(self._caller, seconds=seconds)
        try:
            answer = await caller.call(method, url, token, body=body, request_id=request_id)
        except PartnerCallFailed as exc:
            # A redirect keeps its 3xx status for the detail; classify() counts it as failed.
            return Reply(exc.http_status, None, str(exc)[:MAX_MESSAGE], request_id, failure=exc.reason)
        status, link, payload = answer.http_status, answer.link, answer.body
        location = answer.location if answer.location and len(answer.location) <= MAX_LOCATION else None
        try:
            envelope = _envelope.decode(payload)
        except msgspec.DecodeError:
            text = payload[:120].decode("utf-8", errors="replace")
            return Reply(
                status, None, f"no OCPI envelope: {text!r}", request_id, link=link, location=location
            )
        except RecursionError:
            # msgspec gives up on JSON nested ~1000 deep with RecursionError, not DecodeError (L1).
            log.warning("partner_answer_refused", reason="too_deep", method=method, url=url[:200])
            return Reply(None, None, "answer nested too deep", request_id, failure="too_deep")
        message = (envelope.status_message or "")[:MAX_MESSAGE]
        return Reply(
            status, envelope.status_code, message, request_id, bytes(envelope.data), link, location=location
        )
