"""A minimal OCPI partner that registers with a deployment and accepts whatever it is sent.

The fuzz test needs registered partners it may break (their credentials PUT and DELETE) and whose
party no other test reads: this server answers the handshake's versions and version-details calls
and every push or pull afterwards with an empty 1000, so the deployment treats it as a partner.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from deploy.local_stack import Deployment
from tests.support.http import add_partner, request

MODULES = ("credentials", "locations", "tariffs", "tokens")


def _envelope(data: Any) -> web.Response:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return web.json_response({"status_code": 1000, "timestamp": stamp, "data": data})


def _app(modules: tuple[str, ...], calls: list[tuple[str, str]] | None) -> web.Application:
    async def versions(request: web.Request) -> web.Response:
        return _envelope([{"version": "2.1.1", "url": f"{_base(request)}/2.1.1"}])

    async def details(request: web.Request) -> web.Response:
        endpoints = [{"identifier": m, "url": f"{_base(request)}/2.1.1/{m}"} for m in modules]
        return _envelope({"version": "2.1.1", "endpoints": endpoints})

    async def anything(request: web.Request) -> web.Response:
        if calls is not None:
            calls.append((request.method, request.path))
        return _envelope([] if request.method == "GET" else None)

    app = web.Application()
    app.router.add_get("/versions", versions)
    app.router.add_get("/2.1.1", details)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def _base(request: web.Request) -> str:
    return f"http://{request.host}"


@asynccontextmanager
async def fake_partner(
    modules: tuple[str, ...] = MODULES, calls: list[tuple[str, str]] | None = None
) -> AsyncIterator[str]:
    """Run the partner on loopback, offering `modules`; yields its versions URL. Every call after
    the handshake is appended to `calls` (method, path) when given."""
    server = TestServer(_app(modules, calls), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/versions"
    finally:
        await server.close()


async def register_throwaway(
    deployment: Deployment, versions_url: str, role: str, country_code: str, party_id: str
) -> str:
    """Add a partner of `role` for the party and complete its handshake; returns its token at us."""
    token_a = await add_partner(deployment, f"fuzz-{uuid.uuid4().hex[:6]}", country_code, party_id, role)
    body = {
        "token": uuid.uuid4().hex,
        "url": versions_url,
        "party_id": party_id,
        "country_code": country_code,
        "business_details": {"name": "Fuzz throwaway"},
    }
    reply = await request("POST", f"{deployment.public_url}/ocpi/2.1.1/credentials", token=token_a, json=body)
    assert reply.status_code == 1000, reply
    return str(reply.data["token"])
