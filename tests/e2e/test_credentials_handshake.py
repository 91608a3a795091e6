"""The credentials handshake between two real deployments, and what each token may do afterwards."""

from __future__ import annotations

import uuid

from tests.conftest import Pair
from tests.support.http import add_partner, admin, partners, request, their_token


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_full_handshake_rotation_and_unregistration(pair: Pair) -> None:
    """B adds A, A registers with TOKEN_A, both see each other; rotate, re-POST and DELETE behave per spec."""
    a_name, b_name = _name("cpo-a"), _name("emsp-b")
    token_a = await add_partner(pair.emsp, a_name, "NL", "CPA", "CPO")
    b_versions = f"{pair.emsp.public_url}/ocpi/versions"
    registered = await admin(
        pair.cpo,
        "POST",
        "/admin/registrations",
        {
            "versions_url": b_versions,
            "token": token_a,
            "name": b_name,
            "role": "EMSP",
            "parties": [{"country_code": "DE", "party_id": "EMB"}],
            "shared_party": True,
        },
    )
    assert registered.status_code == 1000, registered

    at_a, at_b = (await partners(pair.cpo))[b_name], (await partners(pair.emsp))[a_name]
    assert at_a["status"] == "CONNECTED" and at_b["status"] == "CONNECTED"
    assert at_a["endpoints"]["locations"] == f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations"
    assert at_b["endpoints"]["locations"] == f"{pair.cpo.public_url}/ocpi/cpo/2.1.1/locations"
    assert (at_a["country_code"], at_a["party_id"]) == ("DE", "EMB")

    version_url = f"{pair.emsp.public_url}/ocpi/2.1.1"
    credentials_url = f"{version_url}/credentials"
    assert (await request("GET", b_versions, token=token_a)).status == 401

    token_c = await their_token(pair.mongo_url, pair.cpo, b_name)
    detail = await request("GET", version_url, token=token_c)
    assert detail.status == 200 and detail.status_code == 1000
    identifiers = {e["identifier"] for e in detail.data["endpoints"]}
    assert identifiers == {"credentials", "locations", "tariffs", "tokens", "sessions", "cdrs"}
    assert (await request("GET", credentials_url, token=token_c)).data["token"] == token_c

    rotated = await admin(pair.cpo, "POST", f"/admin/partners/{b_name}/rotate")
    assert rotated.status_code == 1000, rotated
    new_token_c = await their_token(pair.mongo_url, pair.cpo, b_name)
    assert new_token_c != token_c
    assert (await request("GET", version_url, token=token_c)).status == 401
    assert (await request("GET", version_url, token=new_token_c)).status_code == 1000

    second_post = await request("POST", credentials_url, token=new_token_c, json={"token": "x"})
    assert second_post.status == 405

    deleted = await request("DELETE", credentials_url, token=new_token_c)
    assert deleted.status == 200 and deleted.status_code == 1000
    assert (await request("GET", version_url, token=new_token_c)).status == 401
    assert (
        await request("GET", f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations/NL/CPA/x", token=new_token_c)
    ).status == 401
    assert (await request("DELETE", credentials_url, token=new_token_c)).status == 405
    assert (await partners(pair.emsp))[a_name]["status"] == "UNREGISTERED"


async def test_token_of_one_deployment_is_unknown_at_the_other(pair: Pair) -> None:
    """A TOKEN_A issued by A does not authenticate at B."""
    token_a = await add_partner(pair.cpo, _name("someone"), "BE", "SOM", "EMSP")
    assert (await request("GET", f"{pair.cpo.public_url}/ocpi/versions", token=token_a)).status == 200
    assert (await request("GET", f"{pair.emsp.public_url}/ocpi/versions", token=token_a)).status == 401


async def test_registration_towards_a_partner_that_is_down(pair: Pair) -> None:
    """Registering with a versions URL nobody answers gives 3001 and stores nothing."""
    before = await partners(pair.cpo)
    reply = await admin(
        pair.cpo,
        "POST",
        "/admin/registrations",
        {
            "versions_url": "http://127.0.0.1:9/ocpi/versions",
            "token": "whatever",
            "name": _name("down"),
            "parties": [{"country_code": "DE", "party_id": "DWN"}],
        },
    )
    assert reply.status_code == 3001, reply
    assert await partners(pair.cpo) == before


async def test_inbound_registration_whose_callback_is_down(pair: Pair) -> None:
    """A POST whose versions URL is unreachable answers 3001; TOKEN_A stays usable, nothing else is stored."""
    name = _name("flaky")
    token_a = await add_partner(pair.emsp, name, "FR", "FLK", "CPO")
    body = {
        "token": "their-token",
        "url": "http://127.0.0.1:9/ocpi/versions",
        "party_id": "FLK",
        "country_code": "FR",
        "business_details": {"name": "Flaky"},
    }
    credentials_url = f"{pair.emsp.public_url}/ocpi/2.1.1/credentials"
    reply = await request("POST", credentials_url, token=token_a, json=body)
    assert reply.status_code == 3001, reply
    stored = (await partners(pair.emsp))[name]
    assert stored["status"] == "PENDING" and stored["endpoints"] == {}
    assert (await request("GET", f"{pair.emsp.public_url}/ocpi/versions", token=token_a)).status == 200


async def test_token_a_cannot_update_or_delete(pair: Pair) -> None:
    """Before the handshake, PUT and DELETE are 405 and module endpoints 401."""
    token_a = await add_partner(pair.emsp, _name("early"), "FR", "ERL", "CPO")
    credentials_url = f"{pair.emsp.public_url}/ocpi/2.1.1/credentials"
    assert (await request("PUT", credentials_url, token=token_a, json={})).status == 405
    assert (await request("DELETE", credentials_url, token=token_a)).status == 405
    modules = f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations/FR/ERL/x"
    assert (await request("GET", modules, token=token_a)).status == 401
