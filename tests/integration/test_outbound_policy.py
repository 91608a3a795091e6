"""The outbound URL policy (M1) on real calls: refused before anything reaches the target, checked on
the address actually connected to, and partners get no internal detail back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from services.gateway.handshake import discover
from services.gateway.partner_client import PartnerClient
from services.gateway.responses import OcpiError
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.outbound_http import (
    PartnerCallFailed,
    fetch,
    outbound_session,
    process_policy,
    set_process_policy,
)
from shared.outbound_policy import OutboundPolicy
from shared.settings import Role
from tests.support.hostile import Server
from tests.support.servers import free_port

STRICT = OutboundPolicy()
HTTP_ONLY = OutboundPolicy(allow_http=True)
LOCAL = OutboundPolicy(allow_http=True, allow_private=True)
CAP = 1 << 20
PATIENCE = 30.0


class _Names(AbstractResolver):
    """A DNS of our own: `partner.test` resolves to loopback (what a rebinding partner would arrange)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


async def _call(session: aiohttp.ClientSession, url: str) -> bytes:
    call = fetch(session, "GET", url, headers={}, data=None, seconds=5.0, max_body=CAP)
    return (await asyncio.wait_for(call, PATIENCE)).body


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server() as s:
        yield s


@pytest.mark.parametrize("policy", [STRICT, HTTP_ONLY], ids=["strict", "http-only"])
async def test_a_loopback_url_is_refused_before_any_connection(
    server: Server, policy: OutboundPolicy
) -> None:
    async with outbound_session(policy) as session:
        with pytest.raises(PartnerCallFailed) as caught:
            await _call(session, server.url + "/ocpi/versions")
    assert caught.value.reason == "not_allowed"
    assert server.hits == 0


async def test_a_name_resolving_to_loopback_is_refused_after_resolution(server: Server) -> None:
    """The name passes the static check; the resolved address does not, and nothing is connected."""
    names = _Names("127.0.0.1")
    async with outbound_session(HTTP_ONLY, resolver=names) as session:
        with pytest.raises(PartnerCallFailed) as caught:
            await _call(session, f"http://partner.test:{server.port}/ocpi/versions")
    assert caught.value.reason == "address_not_allowed"
    assert names.asked == ["partner.test"]
    assert server.hits == 0


async def test_the_local_policy_lets_two_local_deployments_connect(server: Server) -> None:
    names = _Names("127.0.0.1")
    async with outbound_session(LOCAL, resolver=names) as session:
        await _call(session, server.url + "/ocpi/versions")
        await _call(session, f"http://partner.test:{server.port}/ocpi/versions")
    assert server.hits == 2


async def test_limits_given_by_the_caller_keep_the_session_policed(server: Server) -> None:
    """The dispatcher asks for limits of its own; the session still connects through the policy."""
    async with outbound_session(STRICT, limit=7, limit_per_host=3) as session:
        assert session.connector is not None and session.connector.limit == 7
        with pytest.raises(PartnerCallFailed):
            await _call(session, server.url)
    assert server.hits == 0


async def _versions_failure(client: PartnerClient, url: str) -> OcpiError:
    with pytest.raises(OcpiError) as caught:
        await asyncio.wait_for(discover(client, url, "token", Role.EMSP), PATIENCE)
    return caught.value


async def test_a_refused_url_is_a_2001_naming_the_rule_not_a_connect_error() -> None:
    async with outbound_session(STRICT) as session:
        error = await _versions_failure(
            PartnerClient(session, max_body=CAP), "http://127.0.0.1:15672/api/overview"
        )
    assert error.status_code == OcpiStatus.INVALID_OR_MISSING_PARAMETERS
    assert "not allowed" in error.message and "15672" not in error.message


async def _unauthorized(_: web.Request) -> web.StreamResponse:
    return web.json_response({"error": "not here"}, status=401)


async def _answer_with(status_message: str) -> Any:
    async def answer(_: web.Request) -> web.StreamResponse:
        return web.json_response({"status_code": 2001, "status_message": status_message})

    return answer


async def test_errors_sent_back_to_a_partner_carry_no_internal_detail() -> None:
    """A closed port, a third host's HTTP status, an unreadable body and a name that does not resolve
    all read the same to the partner: no connect error, no address, no status."""
    closed = free_port()
    async with (
        outbound_session(LOCAL) as session,
        Server(_unauthorized) as unauthorized,
        Server(await _answer_with("internal secret 10.1.2.3")) as chatty,
    ):
        client = PartnerClient(session, max_body=CAP, timeout=3.0)
        messages = [
            (await _versions_failure(client, f"http://127.0.0.1:{closed}/")).message,
            (await _versions_failure(client, unauthorized.url + "/api/overview")).message,
            (await _versions_failure(client, chatty.url + "/")).message,
            (await _versions_failure(client, "http://no-such-host.invalid/")).message,
        ]
    for message in messages:
        for leak in ("127.0.0.1", str(closed), "401", "Connect", "refused", "10.1.2.3", "HTTP", "invalid"):
            assert leak not in message, message
    assert len(set(messages)) == 1, messages


async def test_sessions_made_without_a_policy_follow_the_process_policy(server: Server) -> None:
    """The dispatcher makes its session as below; run_service sets the process policy from settings."""
    previous = process_policy()
    set_process_policy(STRICT)
    try:
        async with outbound_session(limit=200, limit_per_host=32) as session:
            with pytest.raises(PartnerCallFailed):
                await _call(session, server.url)
    finally:
        set_process_policy(previous)
    assert server.hits == 0
