"""The bounded outbound call (shared/outbound_http.py) and both partner clients against real local servers."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from services.dispatcher.domain import Answer, classify
from services.dispatcher.ocpi_client import OcpiClient
from services.gateway.partner_client import PartnerApiError, PartnerClient
from shared.outbound_http import PartnerCallFailed, fetch, outbound_session
from tests.support.hostile import BOMB_EXPANDED, Server, hostile_answer

CAP = 1 << 20
# Generous next to the 1 MiB cap, tiny next to the 1 GiB bomb and the 50 MiB bodies.
PEAK_LIMIT = 32 << 20
# Every call in these tests ends well within this, or the test fails instead of hanging.
PATIENCE = 30.0


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with outbound_session() as s:
        yield s


@pytest.fixture
def traced() -> Iterator[None]:
    """Python allocations are traced for the test; its peak is read with tracemalloc.get_traced_memory()."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


async def _fetch(session: aiohttp.ClientSession, url: str, seconds: float = 10.0) -> bytes:
    call = fetch(session, "GET", url, headers={}, data=None, seconds=seconds, max_body=CAP)
    answer = await asyncio.wait_for(call, PATIENCE)
    return answer.body


async def _refusal(session: aiohttp.ClientSession, url: str, seconds: float = 10.0) -> PartnerCallFailed:
    with pytest.raises(PartnerCallFailed) as caught:
        await _fetch(session, url, seconds)
    return caught.value


@pytest.mark.parametrize("kind", ["bomb", "huge", "huge_chunked"])
async def test_an_oversize_answer_fails_with_bounded_memory(
    session: aiohttp.ClientSession, traced: None, kind: str
) -> None:
    """A gzip bomb (1 GiB inflated) or 50 MiB body is refused as too large, without holding it in memory."""
    async with Server(hostile_answer(kind)) as server:
        tracemalloc.reset_peak()
        failed = await _refusal(session, server.url + "/ocpi/versions")
        peak = tracemalloc.get_traced_memory()[1]
    assert failed.reason == "too_large", failed
    assert peak < PEAK_LIMIT, f"peak {peak} bytes for an answer of up to {BOMB_EXPANDED}"


async def test_a_redirect_is_not_followed(session: aiohttp.ClientSession) -> None:
    """A 307 to another host is a failed call and the other host is never asked."""
    async with (
        Server(host="127.0.0.2") as elsewhere,
        Server(hostile_answer("redirect", elsewhere.url)) as server,
    ):
        failed = await _refusal(session, server.url + "/ocpi/versions")
    assert (failed.reason, failed.http_status) == ("redirect", 307)
    assert elsewhere.hits == 0


async def test_a_trickle_is_cut_by_the_total_timeout(session: aiohttp.ClientSession) -> None:
    """A server that sends a byte every 0.5 s for 60 s is cut off by a 2 s total timeout."""
    async with Server(hostile_answer("trickle")) as server:
        failed = await _refusal(session, server.url + "/ocpi/versions", seconds=2.0)
    assert failed.reason == "timeout"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("", lambda b: b),
    ],
)
async def test_a_compressed_answer_within_the_cap_is_inflated(
    session: aiohttp.ClientSession, encoding: str, compress: object
) -> None:
    """gzip, zlib deflate, raw deflate and plain answers under the cap arrive whole."""
    body = b'{"status_code": 1000, "data": "' + b"x" * (CAP // 2) + b'"}'
    assert callable(compress)
    wire: bytes = compress(body)

    async def answer(_: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": encoding} if encoding else {}
        return web.Response(body=wire, headers=headers, content_type="application/json")

    async with Server(answer) as server:
        assert await _fetch(session, server.url) == body


async def test_corrupt_or_unknown_encodings_fail(session: aiohttp.ClientSession) -> None:
    """A corrupt gzip body and a Content-Encoding we do not speak are failed calls."""

    async def corrupt(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})

    async def brotli(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"whatever", headers={"Content-Encoding": "br"})

    async with Server(corrupt) as bad, Server(brotli) as unknown:
        assert (await _refusal(session, bad.url)).reason == "bad_encoding"
        assert (await _refusal(session, unknown.url)).reason == "bad_encoding"


@pytest.mark.parametrize("kind", ["bomb", "huge_chunked", "redirect", "deep"])
async def test_the_dispatcher_client_turns_a_hostile_answer_into_a_failed_reply(
    session: aiohttp.ClientSession, kind: str
) -> None:
    """OcpiClient.call never raises on a hostile answer; the Reply classifies as FAILED."""
    client = OcpiClient(session, 5.0, CAP)
    async with Server(host="127.0.0.2") as elsewhere, Server(hostile_answer(kind, elsewhere.url)) as server:
        reply = await asyncio.wait_for(client.call("PUT", server.url + "/loc", "t", {"id": "L"}), PATIENCE)
    assert classify(reply.http_status, reply.status_code) is Answer.FAILED, reply
    assert not reply.answered


async def test_the_dispatcher_client_keeps_at_most_500_characters_of_status_message(
    session: aiohttp.ClientSession,
) -> None:
    """A partner's 100 KB status_message is cut to 500 characters in the Reply."""

    async def chatty(_: web.Request) -> web.StreamResponse:
        return web.json_response({"status_code": 2000, "status_message": "m" * 100_000})

    async with Server(chatty) as server:
        reply = await asyncio.wait_for(OcpiClient(session, 5.0, CAP).call("GET", server.url, "t"), PATIENCE)
    assert reply.status_code == 2000 and len(reply.message) == 500


@pytest.mark.parametrize("kind", ["bomb", "huge", "redirect", "trickle", "deep"])
async def test_the_handshake_client_raises_only_partner_api_error(
    session: aiohttp.ClientSession, kind: str
) -> None:
    """PartnerClient.versions on a hostile answer raises PartnerApiError and nothing else."""
    client = PartnerClient(session, timeout=2.0, max_body=CAP)
    async with Server(host="127.0.0.2") as elsewhere, Server(hostile_answer(kind, elsewhere.url)) as server:
        with pytest.raises(PartnerApiError):
            await asyncio.wait_for(client.versions(server.url + "/ocpi/versions", "t"), PATIENCE)
    assert elsewhere.hits == 0
