"""Partner answers that attack the caller: a gzip bomb, a huge body, a redirect, a trickle, deep JSON.

Every answer starts like a successful OCPI envelope, so a client without limits would take it for a
success; the servers stream what they send and stay small in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import zlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from tests.support.servers import free_port

HOSTILE_KINDS = ("bomb", "huge", "huge_chunked", "redirect", "trickle", "deep")
# A successful envelope with `data: null`; what follows it is JSON whitespace, so it stays valid.
ENVELOPE_OPEN = b'{"status_code": 1000, "timestamp": "2024-05-01T12:00:00Z", "data": null'
BOMB_EXPANDED = 1 << 30  # 1 GiB once decompressed
HUGE = 50 << 20  # 50 MiB on the wire
TRICKLE_SECONDS = 60.0

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def gzip_bomb(expanded: int = BOMB_EXPANDED) -> bytes:
    """About 1 MB of gzip that inflates to `expanded` bytes: the envelope, then spaces.

    Built from one compressed 16 MiB block repeated: after a full flush, deflate starts afresh, so
    the same input gives the same bytes, and nothing of the expanded size is ever held in memory.
    """
    block = 1 << 24
    spaces = b" " * block
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = compressor.compress(ENVELOPE_OPEN + b"}") + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(spaces) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = (expanded - len(ENVELOPE_OPEN) - 1) // block
    crc = zlib.crc32(ENVELOPE_OPEN + b"}")
    for _ in range(blocks):
        crc = zlib.crc32(spaces, crc)
    size = len(ENVELOPE_OPEN) + 1 + blocks * block
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return gzip_header + head + repeated * blocks + compressor.flush() + trailer


def deep_json(depth: int = 5000) -> bytes:
    """A successful envelope with an unknown field nesting `depth` lists: msgspec skips unknown fields
    recursively and raises RecursionError, not DecodeError, on it."""
    return ENVELOPE_OPEN + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


async def _bomb(_: web.Request) -> web.StreamResponse:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return web.Response(body=gzip_bomb(), headers=headers)


async def _stream_huge(request: web.Request, declare_length: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if declare_length:
        response.content_length = HUGE
    await response.prepare(request)
    chunk = b" " * (1 << 20)
    with contextlib.suppress(ConnectionError):
        await response.write(ENVELOPE_OPEN + b"}")
        for _ in range((HUGE - len(ENVELOPE_OPEN) - 1) // len(chunk)):
            await response.write(chunk)
        await response.write_eof()
    return response


async def _huge(request: web.Request) -> web.StreamResponse:
    return await _stream_huge(request, declare_length=True)


async def _huge_chunked(request: web.Request) -> web.StreamResponse:
    return await _stream_huge(request, declare_length=False)


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        await response.write(ENVELOPE_OPEN)
        for _ in range(int(TRICKLE_SECONDS / 0.5)):
            await asyncio.sleep(0.5)
            await response.write(b" ")
        await response.write(b"}")
        await response.write_eof()
    return response


async def _deep(_: web.Request) -> web.StreamResponse:
    return web.Response(body=deep_json(), content_type="application/json")


def hostile_answer(kind: str, elsewhere: str = "") -> Answer:
    """The handler of one kind of hostile answer; `redirect` sends the caller to `elsewhere`."""

    async def _redirect(_: web.Request) -> web.StreamResponse:
        # 307 keeps method and body: a client that follows it sends the same call to another host.
        return web.Response(status=307, headers={"Location": elsewhere})

    answers: dict[str, Answer] = {
        "bomb": _bomb,
        "huge": _huge,
        "huge_chunked": _huge_chunked,
        "redirect": _redirect,
        "trickle": _trickle,
        "deep": _deep,
    }
    return answers[kind]


class Server:
    """One catch-all HTTP server on a free port of `host`; counts the requests it gets."""

    def __init__(self, answer: Answer | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.hits = 0
        self._answer = answer or _success
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Its root URL."""
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        await request.read()
        return await self._answer(request)

    async def __aenter__(self) -> Server:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _success(_: web.Request) -> web.StreamResponse:
    return web.Response(body=ENVELOPE_OPEN + b"}", content_type="application/json")
