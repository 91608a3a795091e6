"""The gateway's edge: request ids we accept (L5/L19) and the body cap from settings (L1)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_apps
from shared.messaging.headers import current_request_id
from shared.settings import load_settings
from tests.support.gateway_tokens import TEST_KEYS

SANE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CAP = 4096
RATE, BURST = 2.0, 10


async def _echo(request: web.Request) -> web.Response:
    """Reads the body (where the cap applies) and shows the request id the handlers see."""
    body = await request.read()
    return web.json_response({"request_id": current_request_id.get(), "size": len(body)})


ADMIN_TOKEN = secrets.token_hex(32)
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def apps(namespace: str, amqp_url: str, mongo_url: str) -> AsyncIterator[tuple[Client, Client]]:
    """The OCPI app (with an echo route) and the admin app, sharing one lifecycle as in the gateway."""
    settings = load_settings(
        environ={},
        namespace=namespace,
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        admin_token=ADMIN_TOKEN,
        partner_token_keys=TEST_KEYS,
        inbound_max_body_bytes=CAP,
        inbound_rate_per_token=RATE,
        inbound_rate_burst=BURST,
    )
    ocpi, admin = create_apps(settings)
    ocpi.router.add_post("/echo", _echo)
    async with TestClient(TestServer(ocpi)) as ocpi_client, TestClient(TestServer(admin)) as admin_client:
        yield ocpi_client, admin_client


@pytest.fixture
def client(apps: tuple[Client, Client]) -> Client:
    return apps[0]


@pytest.mark.parametrize(
    "given",
    ["a" * 65, "has space", "semi;colon", "slash/es", "ünïcode", 'quote"d', "tab\tbed", ""],
)
async def test_an_unsafe_request_id_is_replaced(
    client: TestClient[web.Request, web.Application], given: str
) -> None:
    """Too long, or outside [A-Za-z0-9._-]: a fresh id is used for logs, messages and the answer."""
    response = await client.post("/echo", data=b"{}", headers={"X-Request-ID": given})
    used = (await response.json())["request_id"]
    assert used != given and SANE.match(used)
    assert response.headers["X-Request-ID"] == used


async def test_a_non_utf8_request_id_is_replaced(client: TestClient[web.Request, web.Application]) -> None:
    """Bytes that would not encode in an AMQP header never reach one."""
    response = await client.post(
        "/echo", data=b"{}", headers={"X-Request-ID": b"abc\xff\xfe".decode("latin-1")}
    )
    used = (await response.json())["request_id"]
    assert SANE.match(used) and "abc" != used


async def test_a_sane_request_id_is_kept(client: TestClient[web.Request, web.Application]) -> None:
    given = "Req-2026.12_01-" + "x" * 49  # 64 characters
    response = await client.post("/echo", data=b"{}", headers={"X-Request-ID": given})
    assert (await response.json())["request_id"] == given
    assert response.headers["X-Request-ID"] == given


async def test_a_body_over_the_configured_cap_is_a_413_in_an_ocpi_envelope(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert (await (await client.post("/echo", data=b"x" * CAP)).json())["size"] == CAP
    response = await client.post("/echo", data=b"x" * (CAP + 1))
    assert response.status == 413
    assert (await response.json())["status_code"] == 2000


async def test_deeply_nested_json_to_the_admin_api_is_a_2001_not_a_500(apps: tuple[Client, Client]) -> None:
    """msgspec raises RecursionError (not DecodeError) at ~1000 levels, even in an unknown field (L1)."""
    deep = b'{"name": "x", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await apps[1].post(
        "/admin/partners", data=deep, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert response.status == 400
    assert (await response.json())["status_code"] == 2001


async def _token_a(admin: Client, name: str, party_id: str) -> str:
    response = await admin.post(
        "/admin/partners",
        json={"name": name, "country_code": "DE", "party_id": party_id, "role": "EMSP"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    body = await response.json()
    assert body["status_code"] == 1000, body
    return str(body["data"]["token_a"])


async def test_a_flooding_token_gets_429_and_another_partner_is_served(apps: tuple[Client, Client]) -> None:
    """Past its burst a token is answered 429 in a 2.1.1 envelope with Retry-After (M6/L7), before
    any lookup; another partner's token, in the same moment, is served as usual."""
    client, admin = apps
    flooder = await _token_a(admin, "flooder", "FLD")
    quiet = await _token_a(admin, "quiet", "QUI")

    async def versions(token: str) -> tuple[int, dict[str, object], str | None]:
        response = await client.get("/ocpi/versions", headers={"Authorization": f"Token {token}"})
        return response.status, await response.json(), response.headers.get("Retry-After")

    flood = await asyncio.gather(*(versions(flooder) for _ in range(BURST + 20)))
    assert sorted(status for status, _, _ in flood) == [200] * BURST + [429] * 20
    _, body, retry_after = next(answer for answer in flood if answer[0] == 429)
    assert body["status_code"] == 2000 and "timestamp" in body, body
    assert retry_after is not None and int(retry_after) >= 1
    assert [status for status, _, _ in [await versions(quiet) for _ in range(5)]] == [200] * 5
