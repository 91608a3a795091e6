"""Our tokens at B (the eMSP) as its CPO partner A sees them: version details, the list, real-time
authorization and its bad input; the operator's `ocpi-admin tokens load`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.tokens import Token
from tests.conftest import Connection
from tests.support.authorizer import Authorizer
from tests.support.http import Reply, admin, request
from tests.support.objects import now
from tests.support.waiting import eventually


def _token(uid: str, **fields: Any) -> dict[str, Any]:
    base = {"uid": uid, "type": "RFID", "auth_id": f"DE-EMB-{uid}", "issuer": "EMB", "valid": True,
            "whitelist": "NEVER", "last_updated": now()}  # fmt: skip
    return to_builtins(Token(**{**base, **fields}))


def _tokens_url(connection: Connection) -> str:
    return f"{connection.pair.emsp.public_url}/ocpi/emsp/2.1.1/tokens"


async def _authorize(
    connection: Connection, uid: str, query: str = "", body: Any = None, raw: bytes | None = None
) -> Reply:
    url = f"{_tokens_url(connection)}/{uid}/authorize{query}"
    return await request("POST", url, token=connection.cpo_to_emsp_token, json=body, data=raw)


async def test_version_details_offer_tokens_to_the_cpo_partner(connection: Connection) -> None:
    """B's version details for A (a CPO) list B's eMSP tokens endpoint."""
    reply = await request(
        "GET", f"{connection.pair.emsp.public_url}/ocpi/2.1.1", token=connection.cpo_to_emsp_token
    )
    endpoints = {e["identifier"]: e["url"] for e in reply.data["endpoints"]}
    assert endpoints["tokens"] == _tokens_url(connection)


async def test_loaded_tokens_are_listed_and_authorized(
    connection: Connection, authorizer: Authorizer
) -> None:
    """`tokens load` at B: A lists them (paged, X-Total-Count) and authorizes them (B's authorizer
    allows them); unknown is 404/2000."""
    uids = [f"TOK-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    authorizer.allows.update(uids)
    body = json.dumps([_token(uid) for uid in uids]).encode()
    loaded = await admin(connection.pair.emsp, "POST", "/admin/tokens", raw=body)
    assert (loaded.status, loaded.data) == (200, {"published": 3}), loaded

    async def listed() -> bool:
        reply = await request(
            "GET", f"{_tokens_url(connection)}?limit=1000", token=connection.cpo_to_emsp_token
        )
        return set(uids) <= {t["uid"] for t in reply.data}

    await eventually(listed, 15, "the loaded tokens in B's list")
    # With a date filter the count is exact (the unfiltered one may lag behind creations, see
    # MongoSenderStore.count); the Link keeps the filter.
    query = "?limit=1&date_from=2020-01-01T00:00:00Z"
    first = await request("GET", f"{_tokens_url(connection)}{query}", token=connection.cpo_to_emsp_token)
    assert first.status == 200 and int(first.headers["X-Total-Count"]) >= 3, first.headers
    assert "date_from=2020-01-01" in first.headers["Link"]

    where = {"location_id": "LOC1", "evse_uids": ["E1"]}
    allowed = await _authorize(connection, uids[0], "?type=RFID", where)
    assert (allowed.status, allowed.status_code) == (200, 1000), allowed
    assert allowed.data == {"allowed": "ALLOWED", "location": where}
    anywhere = await _authorize(connection, uids[1], raw=b"")
    assert anywhere.data == {"allowed": "ALLOWED"}
    unknown = await _authorize(connection, "NOT-OURS", body=where)
    assert (unknown.status, unknown.status_code) == (404, 2000), unknown
    other_type = await _authorize(connection, uids[2], "?type=OTHER")
    assert (other_type.status, other_type.status_code) == (404, 2000), other_type


@pytest.mark.parametrize(
    ("uid", "query", "raw", "field"),
    [
        ("T" * 37, "", b"", "token_uid"),
        ("T1", "?type=APP", b"", "type"),
        ("T1", "", b'{"location_id": ', "JSON"),
        ("T1", "", b"{}", "location_id"),
        ("T1", "", b'{"location_id": "' + b"L" * 40 + b'"}', "location_id"),
        ("T1", "", b'{"location_id": "L1", "evse_uids": "E1"}', "evse_uids"),
        ("T1", "", b"[]", "LocationReferences"),
    ],
)
async def test_bad_authorization_requests_are_400_2001_naming_the_field(
    connection: Connection, uid: str, query: str, raw: bytes, field: str
) -> None:
    """A token_uid over 36, a bad type, a body that is not a LocationReferences: 400/2001, nothing asked."""
    reply = await _authorize(connection, uid, query, raw=raw)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert field in reply.message, reply


async def test_only_registered_cpo_partners_may_authorize(connection: Connection) -> None:
    """No token is 401; B's tokens are not A's to authorize at A (A is no eMSP of B's)."""
    url = f"{_tokens_url(connection)}/T1/authorize"
    assert (await request("POST", url)).status == 401
    at_a = f"{connection.pair.cpo.public_url}/ocpi/emsp/2.1.1/tokens/T1/authorize"
    reply = await request("POST", at_a, token=connection.emsp_to_cpo_token)
    assert reply.status == 403, reply


async def test_a_bad_tokens_file_is_refused_and_publishes_nothing(connection: Connection) -> None:
    """One token without auth_id: 400/2001 naming it, and none of the file's tokens appears."""
    uid = f"BAD-{uuid.uuid4().hex[:8]}"
    broken = _token("NO-AUTH")
    del broken["auth_id"]
    body = json.dumps([_token(uid), broken]).encode()
    reply = await admin(connection.pair.emsp, "POST", "/admin/tokens", raw=body)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "auth_id" in reply.message
    # A good file loaded after it: once its token is listed, one of the bad file's would be too.
    good = f"GOOD-{uuid.uuid4().hex[:8]}"
    await admin(connection.pair.emsp, "POST", "/admin/tokens", raw=json.dumps([_token(good)]).encode())

    async def uids() -> set[str]:
        listed = await request(
            "GET", f"{_tokens_url(connection)}?limit=1000", token=connection.cpo_to_emsp_token
        )
        return {t["uid"] for t in listed.data}

    await eventually(lambda: _has(uids(), good), 15, "the good token in B's list")
    assert uid not in await uids()


async def _has(found: Any, uid: str) -> bool:
    return uid in await found
