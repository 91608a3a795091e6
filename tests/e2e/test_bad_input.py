"""Bad input on credentials and admin calls: HTTP 400, status 2001 naming the field, nothing stored."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Pair
from tests.support.http import add_partner, admin, partners, request

GOOD = {
    "token": "their-token",
    "url": "http://127.0.0.1:9/ocpi/versions",
    "party_id": "BAD",
    "country_code": "FR",
    "business_details": {"name": "Bad Input Ltd"},
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON"),
        ({k: v for k, v in GOOD.items() if k != "token"}, "token"),
        ({**GOOD, "party_id": 42}, "party_id"),
        ({**GOOD, "party_id": "TOOLONG"}, "party_id"),
        ({**GOOD, "url": "not a url"}, "url"),
        ({**GOOD, "business_details": {}}, "name"),
    ],
)
async def test_bad_credentials_are_refused_and_change_nothing(pair: Pair, body: object, field: str) -> None:
    """Each broken credentials POST is a 400/2001 whose message names the problem; TOKEN_A stays pending."""
    name = f"bad-{uuid.uuid4().hex[:6]}"
    token_a = await add_partner(pair.emsp, name, "FR", "BAD", "CPO")
    url = f"{pair.emsp.public_url}/ocpi/2.1.1/credentials"
    if isinstance(body, bytes):
        reply = await request("POST", url, token=token_a, data=body)
    else:
        reply = await request("POST", url, token=token_a, json=body)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert field in reply.message
    assert (await partners(pair.emsp))[name]["status"] == "PENDING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"name": "x", ', "JSON"),
        ({"name": "x", "country_code": "NL", "role": "CPO"}, "party_id"),
        ({"name": "x", "country_code": "NL", "party_id": "ABCD", "role": "CPO"}, "party_id"),
        ({"name": "x", "country_code": "NL", "party_id": "ABC", "role": "HUB"}, "role"),
        ({"name": 5, "country_code": "NL", "party_id": "ABC", "role": "CPO"}, "name"),
    ],
)
async def test_bad_admin_partner_add(pair: Pair, body: object, field: str) -> None:
    """The admin API validates like the OCPI API: 400/2001 naming the field, no partner created."""
    before = await partners(pair.emsp)
    if isinstance(body, bytes):
        reply = await admin(pair.emsp, "POST", "/admin/partners", raw=body)
    else:
        reply = await admin(pair.emsp, "POST", "/admin/partners", body)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert field in reply.message
    assert await partners(pair.emsp) == before


async def test_bad_admin_registration_url(pair: Pair) -> None:
    """A versions_url that is not a URL is refused before any call goes out."""
    body = {"versions_url": "ftp:/x y", "token": "t", "parties": [{"country_code": "DE", "party_id": "BAD"}]}
    reply = await admin(pair.cpo, "POST", "/admin/registrations", body)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "versions_url" in reply.message


async def test_missing_or_unknown_token_is_401_in_the_envelope(pair: Pair) -> None:
    """No Authorization header, a wrong scheme or an unknown token: 401 with an OCPI body."""
    url = f"{pair.cpo.public_url}/ocpi/versions"
    for reply in (
        await request("GET", url),
        await request("GET", url, bearer="x"),
        await request("GET", url, token="nope"),
    ):
        assert reply.status == 401 and reply.status_code == 2000 and "timestamp" in reply.body


async def test_admin_api_requires_the_admin_token(pair: Pair) -> None:
    """Without the operator's token the admin API answers 401."""
    reply = await request("GET", f"{pair.cpo.admin_url}/admin/partners", bearer="wrong")
    assert reply.status == 401
