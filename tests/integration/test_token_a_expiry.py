"""A TOKEN_A expires TOKEN_A_TTL_SECONDS after it was issued (review L18): refused like an unknown
token everywhere a TOKEN_A is accepted; the operator sees it expired and can issue a new one."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient

from services.gateway.app import create_apps
from shared.settings import load_settings
from tests.support.gateway_tokens import TEST_KEYS

ADMIN_TOKEN = secrets.token_hex(32)
TTL = timedelta(days=7)
Client = TestClient[web.Request, web.Application]
Document = dict[str, Any]
# What a partner calls with a TOKEN_A: versions, version details, credentials GET and POST.
CREDENTIALS_BODY = {
    "token": "their-token-for-us",
    "url": "http://127.0.0.1:9/ocpi/versions",  # nobody answers: a POST that passes auth gets 3001
    "business_details": {"name": "Partner"},
    "party_id": "PAR",
    "country_code": "DE",
}


@pytest.fixture
async def apps(namespace: str, amqp_url: str, mongo_url: str) -> AsyncIterator[tuple[Client, Client]]:
    settings = load_settings(
        environ={},
        namespace=namespace,
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        admin_token=ADMIN_TOKEN,
        partner_token_keys=TEST_KEYS,
        token_a_ttl=TTL.total_seconds(),
        outbound_allow_http=True,
        outbound_allow_private=True,
    )
    ocpi, admin = create_apps(settings)
    async with TestClient(TestServer(ocpi)) as ocpi_client, TestClient(TestServer(admin)) as admin_client:
        yield ocpi_client, admin_client


@pytest.fixture
async def partners(namespace: str, mongo_url: str) -> AsyncIterator[Any]:
    """The gateway's partner collection, to move a partner's issue time into the past."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
    yield client[f"{namespace}_gateway"]["partners"]
    await client.close()


async def _admin(admin: Client, method: str, path: str, body: object = None) -> Document:
    response = await admin.request(
        method, path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    answer: Document = await response.json()
    return answer


async def _add(admin: Client, name: str) -> str:
    body = {"name": name, "country_code": "DE", "party_id": "PAR", "role": "EMSP", "shared_party": True}
    answer = await _admin(admin, "POST", "/admin/partners", body)
    assert answer["status_code"] == 1000, answer
    return str(answer["data"]["token_a"])


async def _call(client: Client, method: str, path: str, token: str) -> tuple[int, Document]:
    body = CREDENTIALS_BODY if method == "POST" else None
    response = await client.request(method, path, json=body, headers={"Authorization": f"Token {token}"})
    answer: Document = await response.json()
    answer.pop("timestamp")
    return response.status, answer


ROUTES = [
    ("GET", "/ocpi/versions"),
    ("GET", "/ocpi/2.1.1"),
    ("GET", "/ocpi/2.1.1/credentials"),
    ("POST", "/ocpi/2.1.1/credentials"),
    ("PUT", "/ocpi/2.1.1/credentials"),
    ("DELETE", "/ocpi/2.1.1/credentials"),
]


async def test_a_token_a_older_than_the_ttl_is_refused_like_an_unknown_token(
    apps: tuple[Client, Client], partners: Any
) -> None:
    """On every handshake route, twice (the second from the unknown-token memory), the answer to an
    expired TOKEN_A is the answer to a token that never existed: 401, same status code and message."""
    client, admin = apps
    token_a = await _add(admin, "expired")
    issued = datetime.now(UTC) - TTL - timedelta(minutes=1)
    await partners.update_one({"name": "expired"}, {"$set": {"token_a_issued_at": issued}})
    unknown = secrets.token_urlsafe(32)
    for method, path in ROUTES * 2:
        expired_answer = await _call(client, method, path, token_a)
        unknown_answer = await _call(client, method, path, unknown)
        assert expired_answer[0] == 401, (method, path, expired_answer)
        assert expired_answer == unknown_answer, (method, path)


async def test_a_token_a_within_the_ttl_works(apps: tuple[Client, Client], partners: Any) -> None:
    """A day before it expires the TOKEN_A still reads versions and reaches the registration."""
    client, admin = apps
    token_a = await _add(admin, "fresh")
    issued = datetime.now(UTC) - TTL + timedelta(days=1)
    await partners.update_one({"name": "fresh"}, {"$set": {"token_a_issued_at": issued}})
    assert (await _call(client, "GET", "/ocpi/versions", token_a))[0] == 200
    assert (await _call(client, "GET", "/ocpi/2.1.1", token_a))[0] == 200
    _, answer = await _call(client, "POST", "/ocpi/2.1.1/credentials", token_a)
    # Past authentication: our call to its (unreachable) versions URL is what failed.
    assert answer["status_code"] == 3001, answer


async def test_a_partner_stored_without_an_issue_time_counts_from_its_creation(
    apps: tuple[Client, Client], partners: Any
) -> None:
    """Partners added before TOKEN_As expired have no issue time: their creation time is used."""
    client, admin = apps
    old, recent = await _add(admin, "old"), await _add(admin, "recent")
    long_ago = datetime.now(UTC) - TTL - timedelta(days=30)
    await partners.update_one(
        {"name": "old"}, {"$unset": {"token_a_issued_at": ""}, "$set": {"created_at": long_ago}}
    )
    await partners.update_one({"name": "recent"}, {"$unset": {"token_a_issued_at": ""}})
    assert (await _call(client, "GET", "/ocpi/versions", old))[0] == 401
    assert (await _call(client, "GET", "/ocpi/versions", recent))[0] == 200


async def test_the_operator_sees_the_expiry_and_issues_a_new_token_a(
    apps: tuple[Client, Client], partners: Any
) -> None:
    """`partner list` shows the TOKEN_A expired; `partner token` issues a new one that works, and
    the old one stays refused."""
    client, admin = apps
    old = await _add(admin, "late")
    await partners.update_one({"name": "late"}, {"$set": {"token_a_issued_at": datetime.now(UTC) - TTL * 2}})
    listed = {p["name"]: p for p in (await _admin(admin, "GET", "/admin/partners"))["data"]}
    assert listed["late"]["status"] == "PENDING"
    assert listed["late"]["token_a_expired"] is True
    assert listed["late"]["token_a_expires_at"] is not None

    issued = await _admin(admin, "POST", "/admin/partners/late/token")
    assert issued["status_code"] == 1000, issued
    new = issued["data"]["token_a"]
    assert new != old and issued["data"]["partner"]["token_a_expired"] is False
    assert issued["data"]["versions_url"].endswith("/ocpi/versions")
    assert (await _call(client, "GET", "/ocpi/versions", new))[0] == 200
    assert (await _call(client, "GET", "/ocpi/versions", old))[0] == 401
    shown = (await _admin(admin, "GET", "/admin/partners/late"))["data"]
    expires = datetime.fromisoformat(shown["token_a_expires_at"])
    assert TTL - timedelta(minutes=1) < expires - datetime.now(UTC) <= TTL


async def test_a_new_token_a_is_only_for_a_partner_that_has_not_registered(
    apps: tuple[Client, Client], partners: Any
) -> None:
    """A connected partner has no TOKEN_A to replace: 405, and its record is unchanged."""
    _, admin = apps
    await _add(admin, "connected")
    await partners.update_one(
        {"name": "connected"},
        {"$set": {"status": "CONNECTED", "token_a_hash": None, "token_hash": "h" * 64}},
    )
    answer = await _admin(admin, "POST", "/admin/partners/connected/token")
    assert answer["status_code"] == 2000 and "registered" in answer["status_message"], answer
    assert (await partners.find_one({"name": "connected"}))["token_a_hash"] is None
    shown = (await _admin(admin, "GET", "/admin/partners/connected"))["data"]
    assert shown["token_a_expires_at"] is None and shown["token_a_expired"] is False
