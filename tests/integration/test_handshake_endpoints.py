"""Endpoint identifiers a partner lists become keys of stored documents: only OCPI module ids are
kept (review L12), so `$x` or `a.b` never reach MongoDB and custom modules cannot fail a handshake."""

from __future__ import annotations

from aiohttp import web

from services.gateway.handshake import discover
from services.gateway.partner_client import PartnerClient
from shared.outbound_http import outbound_session
from shared.outbound_policy import OutboundPolicy
from shared.settings import Role
from tests.support.hostile import Server


def _envelope(data: object) -> web.Response:
    return web.json_response({"data": data, "status_code": 1000, "timestamp": "2026-12-01T00:00:00Z"})


async def test_only_ocpi_module_identifiers_are_kept() -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        base = f"http://{request.host}/ocpi"
        if request.path.endswith("/versions"):
            return _envelope([{"version": "2.1.1", "url": f"{base}/2.1.1"}])
        endpoints = [
            {"identifier": "credentials", "url": f"{base}/credentials"},
            {"identifier": "locations", "url": f"{base}/locations"},
            {"identifier": "$where", "url": f"{base}/x"},
            {"identifier": "a.b", "url": f"{base}/y"},
            # A custom module at a URL our policy would refuse: ignored, so it fails nothing.
            {"identifier": "chargingprofiles", "url": "http://169.254.169.254/latest"},
        ]
        return _envelope({"version": "2.1.1", "endpoints": endpoints})

    async with (
        outbound_session(OutboundPolicy(allow_http=True, allow_private=True)) as session,
        Server(answer) as server,
    ):
        found = await discover(
            PartnerClient(session, max_body=1 << 20), f"{server.url}/ocpi/versions", "t", Role.EMSP
        )
    assert set(found.endpoints) == {"credentials", "locations"}
