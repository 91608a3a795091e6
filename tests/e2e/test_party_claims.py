"""Party ownership is the operator's to decide (M3): a partner owns only the parties named for it,
and no two partners own one party unless the operator says so."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Pair
from tests.support.http import add_partner, admin, partners


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _party() -> str:
    """A party id no other test uses."""
    return uuid.uuid4().hex[:3].upper()


def _added(name: str, country_code: str, party_id: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "country_code": country_code, "party_id": party_id, "role": "EMSP", **extra}


async def test_a_party_owned_by_another_partner_is_refused_unless_shared(pair: Pair) -> None:
    """The refusal names the owner; with shared_party the operator allows it."""
    party, first = _party(), _name("owner")
    assert (await admin(pair.cpo, "POST", "/admin/partners", _added(first, "SE", party))).status_code == 1000
    before = await partners(pair.cpo)
    refused = await admin(pair.cpo, "POST", "/admin/partners", _added(_name("claimer"), "SE", party))
    assert (refused.status, refused.status_code) == (400, 2001), refused
    assert f"SE/{party}" in refused.message and first in refused.message
    assert await partners(pair.cpo) == before
    hub = _added(_name("hub"), "SE", _party(), extra_parties=[{"country_code": "SE", "party_id": party}])
    assert (await admin(pair.cpo, "POST", "/admin/partners", hub)).status_code == 2001
    shared = await admin(pair.cpo, "POST", "/admin/partners", {**hub, "shared_party": True})
    assert shared.status_code == 1000, shared


async def test_our_own_party_is_never_a_partners(pair: Pair) -> None:
    own = _added(_name("mirror"), pair.cpo.country_code, pair.cpo.party_id)
    for body in (own, {**own, "shared_party": True}):
        reply = await admin(pair.cpo, "POST", "/admin/partners", body)
        assert reply.status_code == 2001 and "our own" in reply.message, reply


def _registration(
    pair: Pair, token_a: str, name: str, parties: list[dict[str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "versions_url": f"{pair.emsp.public_url}/ocpi/versions",
        "token": token_a,
        "name": name,
        "role": "EMSP",
        "parties": parties,
        **extra,
    }


async def test_a_registered_partner_may_not_claim_a_party_the_operator_did_not_name(pair: Pair) -> None:
    """B answers our credentials POST as DE/EMB; the operator named another party: refused, nothing
    stays at A, and A unregisters at B (B had accepted the POST)."""
    a_name, b_name = _name("cpo"), _name("emsp")
    token_a = await add_partner(pair.emsp, a_name, pair.cpo.country_code, pair.cpo.party_id, "CPO")
    before = await partners(pair.cpo)
    body = _registration(pair, token_a, b_name, [{"country_code": "DE", "party_id": _party()}])
    reply = await admin(pair.cpo, "POST", "/admin/registrations", body)
    assert reply.status_code == 2001, reply
    assert "DE/EMB" in reply.message
    assert await partners(pair.cpo) == before
    assert (await partners(pair.emsp))[a_name]["status"] == "UNREGISTERED"


async def test_a_registration_may_not_take_a_party_another_partner_owns(pair: Pair) -> None:
    """Refused before any call: the TOKEN_A stays unused at B."""
    owner = _name("owner")
    assert (
        await admin(pair.cpo, "POST", "/admin/partners", _added(owner, "DE", "EMB", shared_party=True))
    ).status_code == 1000
    a_name = _name("cpo")
    token_a = await add_partner(pair.emsp, a_name, pair.cpo.country_code, pair.cpo.party_id, "CPO")
    body = _registration(pair, token_a, _name("emsp"), [{"country_code": "DE", "party_id": "EMB"}])
    reply = await admin(pair.cpo, "POST", "/admin/registrations", body)
    assert reply.status_code == 2001 and owner in reply.message, reply
    assert (await partners(pair.emsp))[a_name]["status"] == "PENDING"
    shared = await admin(pair.cpo, "POST", "/admin/registrations", {**body, "shared_party": True})
    assert shared.status_code == 1000, shared
    assert (await partners(pair.cpo))[body["name"]]["parties"] == [{"country_code": "DE", "party_id": "EMB"}]
