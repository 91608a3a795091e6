"""Calls to a partner's server with limits: body size (on the wire and inflated), total time, no redirects,
and only to URLs and addresses the outbound policy allows (shared/outbound_policy.py).

Both the gateway's handshake client and the dispatcher's OCPI client go through `fetch`. A partner
controls what it answers, so anything it can make us hold in memory or wait for is capped here; an
answer over a limit is a failed call (`PartnerCallFailed`), never a crash.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver

from shared.ocpi.v2_1_1.codec import encode
from shared.outbound_policy import (
    AddressNotAllowed,
    OutboundPolicy,
    PolicedResolver,
    UrlNotAllowed,
    policed_socket,
)

log = structlog.get_logger(__name__)

# Only what we can inflate with a bound; without brotli or zstd installed aiohttp might still ask
# for them in a later version, so the header is ours.
ACCEPT_ENCODING = "gzip, deflate"
_CHUNK = 64 * 1024


class PartnerCallFailed(Exception):
    """A call got no usable answer; `reason` is one word for logs and metrics, the text says more."""

    def __init__(self, reason: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.http_status = http_status


@dataclass(frozen=True)
class PartnerAnswer:
    """A complete answer: HTTP status, the headers we use, and the body, inflated and within the cap."""

    http_status: int
    body: bytes
    link: str | None = None
    # Where the receiver keeps what a POST created (an eMSP's answer to a CDR, mod_cdrs.md 2.2.2).
    location: str | None = None


class PolicedConnector(aiohttp.TCPConnector):
    """A connector that resolves and connects only where its `policy` allows (see outbound_policy)."""

    def __init__(self, policy: OutboundPolicy, names: AbstractResolver | None = None, **kwargs: Any) -> None:
        super().__init__(
            resolver=PolicedResolver(policy, names), socket_factory=policed_socket(policy), **kwargs
        )
        self.policy = policy


# The policy of sessions made without one: strict until the process's settings say otherwise
# (run_service and the gateway set it at start; the tests' conftest allows local addresses).
_process_policy = OutboundPolicy()


def set_process_policy(policy: OutboundPolicy) -> None:
    """The policy of every session and call of this process that names none."""
    global _process_policy
    _process_policy = policy


def process_policy() -> OutboundPolicy:
    return _process_policy


def outbound_session(
    policy: OutboundPolicy | None = None,
    *,
    resolver: AbstractResolver | None = None,
    limit: int = 100,
    limit_per_host: int = 0,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """The process's session towards partners: policed addresses (M1), and it never inflates bodies
    itself (`fetch` does, bounded). `resolver` resolves names (tests give their own). It always
    connects through a PolicedConnector: callers choose its limits, not the connector."""
    policed = PolicedConnector(
        policy or _process_policy, resolver, limit=limit, limit_per_host=limit_per_host
    )
    return aiohttp.ClientSession(connector=policed, auto_decompress=False, **kwargs)


def policy_of(session: aiohttp.ClientSession) -> OutboundPolicy:
    """The policy a session connects under (the process's for a session not made by outbound_session)."""
    connector = session.connector
    return connector.policy if isinstance(connector, PolicedConnector) else _process_policy


async def fetch(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    data: bytes | None,
    seconds: float,
    max_body: int,
) -> PartnerAnswer:
    """One call, read whole within `seconds` and `max_body` bytes; a 3xx is a failure; a URL or
    address the session's policy refuses is a failure before anything is sent."""
    headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
    try:
        policy_of(session).check_url(url)
    except UrlNotAllowed as exc:
        failed = PartnerCallFailed("not_allowed", f"URL not allowed: {exc}")
        _refused(failed, method, url)
        raise failed from exc
    try:
        # aiohttp's total timeout covers the body too; asyncio's also covers our own inflating.
        async with asyncio.timeout(seconds):
            async with session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
                allow_redirects=False,
                auto_decompress=False,
            ) as response:
                if 300 <= response.status < 400:
                    raise PartnerCallFailed(
                        "redirect", f"redirect (HTTP {response.status}) not followed", response.status
                    )
                body = await read_body(response, max_body)
                return PartnerAnswer(
                    response.status, body, response.headers.get("Link"), response.headers.get("Location")
                )
    except PartnerCallFailed as exc:
        _refused(exc, method, url)
        raise
    except TimeoutError as exc:
        failed = PartnerCallFailed("timeout", f"no complete answer within {seconds:g}s")
        _refused(failed, method, url)
        raise failed from exc
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        if _address_refused(exc):
            failed = PartnerCallFailed("address_not_allowed", f"URL not allowed: its address {exc}")
            _refused(failed, method, url)
            raise failed from exc
        # Refused connections, resets, bad URLs: the partner is down or misconfigured, as before.
        raise PartnerCallFailed("unreachable", f"{type(exc).__name__}: {exc}".strip()) from exc


def _address_refused(exc: BaseException) -> bool:
    """Whether the policy refused the resolved or connected address (aiohttp wraps it once or twice)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AddressNotAllowed):
            return True
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(seen.os_error, AddressNotAllowed):
            return True
        seen = seen.__cause__
    return False


@dataclass(frozen=True)
class PartnerCaller:
    """OCPI calls to partners with the process's session and limits: `fetch` with the OCPI headers
    (the token the partner gave us, X-Request-ID) and a JSON body."""

    session: aiohttp.ClientSession
    seconds: float
    max_body: int

    async def call(
        self, method: str, url: str, token: str, *, body: object = None, request_id: str = ""
    ) -> PartnerAnswer:
        headers = {"Authorization": f"Token {token}", "X-Request-ID": request_id}
        data = None
        if body is not None:
            data = encode(body)
            headers["Content-Type"] = "application/json"
        return await fetch(
            self.session,
            method,
            url,
            headers=headers,
            data=data,
            seconds=self.seconds,
            max_body=self.max_body,
        )


async def read_body(response: aiohttp.ClientResponse, max_body: int) -> bytes:
    """The body, inflated if gzip or deflate, refused once the wire or inflated size passes `max_body`."""
    declared = response.content_length
    if declared is not None and declared > max_body:
        raise PartnerCallFailed("too_large", f"answer of {declared} bytes is over the {max_body} cap")
    inflater = _inflater(response.headers.get("Content-Encoding", ""))
    received = 0
    parts: list[bytes] = []
    size = 0
    while chunk := await response.content.read(_CHUNK):
        received += len(chunk)
        if received > max_body:
            raise PartnerCallFailed("too_large", f"answer over the {max_body} bytes cap")
        if inflater is not None:
            chunk = inflater.feed(chunk, max_body - size)
        size += len(chunk)
        if size > max_body:
            raise PartnerCallFailed("too_large", f"answer inflates past the {max_body} bytes cap")
        parts.append(chunk)
    if inflater is not None:
        tail = inflater.finish(max_body - size)
        parts.append(tail)
    return b"".join(parts)


class _Inflater:
    """A zlib stream that never returns more than it is allowed to (a gzip bomb stops at the cap)."""

    def __init__(self, wbits: int, sniff_raw: bool) -> None:
        self._wbits = wbits
        self._sniff_raw = sniff_raw
        self._zlib: Any = None if sniff_raw else zlib.decompressobj(wbits)

    def feed(self, chunk: bytes, room: int) -> bytes:
        """Inflate `chunk`; at most `room` + 1 bytes come back (one more tells the caller it is over)."""
        if self._zlib is None:
            # HTTP "deflate" should be zlib-wrapped, but some servers send raw deflate: the first
            # byte of a zlib stream names the deflate method (low nibble 8).
            wbits = self._wbits if chunk and chunk[0] & 0x0F == 8 else -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(wbits)
        try:
            out = self._zlib.decompress(chunk, room + 1)
        except zlib.error as exc:
            raise PartnerCallFailed("bad_encoding", f"the compressed answer is corrupt: {exc}") from exc
        if len(out) > room:
            return bytes(out)
        # Input that did not fit in `room` waits in unconsumed_tail; any of it means over the cap,
        # unless it inflates to nothing (the end of the stream).
        while self._zlib.unconsumed_tail and len(out) <= room:
            try:
                out += self._zlib.decompress(self._zlib.unconsumed_tail, room + 1 - len(out))
            except zlib.error as exc:
                raise PartnerCallFailed("bad_encoding", f"the compressed answer is corrupt: {exc}") from exc
        return bytes(out)

    def finish(self, room: int) -> bytes:
        """What zlib still holds once the body has ended; the stream must be complete."""
        if self._zlib is None:
            return b""
        out = self._zlib.flush()
        if len(out) > room:
            raise PartnerCallFailed("too_large", "answer inflates past the cap")
        if not self._zlib.eof:
            raise PartnerCallFailed("bad_encoding", "the compressed answer ends early")
        return bytes(out)


def _inflater(encoding: str) -> _Inflater | None:
    """How to inflate a body of this Content-Encoding; anything but gzip and deflate is refused."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return _Inflater(16 + zlib.MAX_WBITS, sniff_raw=False)
    if name == "deflate":
        return _Inflater(zlib.MAX_WBITS, sniff_raw=True)
    raise PartnerCallFailed("bad_encoding", f"Content-Encoding {encoding[:40]!r} is not supported")


def _refused(exc: PartnerCallFailed, method: str, url: str) -> None:
    """One warning per refused answer, so operators see which partner URL is oversize, slow or redirecting."""
    log.warning("partner_answer_refused", reason=exc.reason, method=method, url=url[:200], detail=str(exc))
