"""The admin API's ownership rules hold in storage, not only in code (review M3 and L11).

A party belongs to one partner unless the operator says it is shared, and a name to one live
partner: two admin calls at the same instant cannot both pass the check, because the database
refuses the second claim. A removed partner's party and name are free again.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient

from services.gateway.app import create_apps
from services.gateway.partners import PartnerRepository
from shared.settings import Role, load_settings
from tests.support.gateway_tokens import TEST_KEYS

ADMIN_TOKEN = secrets.token_hex(32)
Client = TestClient[web.Request, web.Application]
Document = dict[str, Any]
RACERS = 4
# How long each admin call waits between reading the registry and writing to it (see slow_checks).
WINDOW = 0.3


def _settings(namespace: str, amqp_url: str, mongo_url: str, **overrides: Any) -> Any:
    return load_settings(
        environ={},
        namespace=namespace,
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        admin_token=ADMIN_TOKEN,
        partner_token_keys=TEST_KEYS,
        outbound_allow_http=True,
        outbound_allow_private=True,
        **overrides,
    )


async def _started(settings: Any) -> AsyncIterator[Client]:
    ocpi, admin = create_apps(settings)  # the OCPI app runs the gateway's start and stop
    async with TestClient(TestServer(ocpi)), TestClient(TestServer(admin)) as admin_client:
        yield admin_client


@pytest.fixture
async def admin(namespace: str, amqp_url: str, mongo_url: str) -> AsyncIterator[Client]:
    """The admin API of a gateway playing both roles (NL/ABC), in this process."""
    async for client in _started(_settings(namespace, amqp_url, mongo_url)):
        yield client


@pytest.fixture
async def gateway_db(namespace: str, mongo_url: str) -> AsyncIterator[Any]:
    """The gateway's database, read by the tests as an oracle."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[f"{namespace}_gateway"]
    await client.close()


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check of a name or a party waits after its read, as a busy database may make it: calls
    started together have all read before any of them writes, so only the storage can refuse one."""
    for method in ("find_by_name_or_id", "owners_of"):
        checked = getattr(PartnerRepository, method)

        async def slow(self: PartnerRepository, *args: Any, _checked: Any = checked, **kwargs: Any) -> Any:
            found = await _checked(self, *args, **kwargs)
            await asyncio.sleep(WINDOW)
            return found

        monkeypatch.setattr(PartnerRepository, method, slow)


async def _call(admin: Client, method: str, path: str, body: object = None) -> Document:
    response = await admin.request(
        method, path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    answer: Document = await response.json()
    return answer


def _party() -> str:
    return uuid.uuid4().hex[:3].upper()


def _add(name: str, party_id: str, **extra: Any) -> Document:
    return {"name": name, "country_code": "SE", "party_id": party_id, "role": "EMSP", **extra}


async def _listed(admin: Client) -> dict[str, Document]:
    return {p["name"]: p for p in (await _call(admin, "GET", "/admin/partners"))["data"]}


async def test_concurrent_adds_claiming_one_party_leave_exactly_one_owner(
    admin: Client, slow_checks: None
) -> None:
    """Different partners, one party, at the same instant: one wins, the others hear whose it is."""
    party = _party()
    names = [f"racer-{i}" for i in range(RACERS)]
    answers = await asyncio.gather(*(_call(admin, "POST", "/admin/partners", _add(n, party)) for n in names))
    won = [n for n, a in zip(names, answers, strict=True) if a["status_code"] == 1000]
    assert len(won) == 1, answers
    for answer in answers:
        if answer["status_code"] != 1000:
            assert answer["status_code"] == 2001, answer
            message = answer["status_message"]
            assert f"SE/{party} belongs to partner {won[0]!r}" in message and "shared_party" in message, (
                answer
            )
    owners = [p for p in (await _listed(admin)).values() if p["party_id"] == party]
    assert [p["name"] for p in owners] == won


async def test_concurrent_hubs_claiming_overlapping_parties_leave_one_owner_of_each(
    admin: Client, slow_checks: None
) -> None:
    """A hub's extra parties are claimed like its main one; a refused hub keeps none of them."""
    shared, first, second = _party(), _party(), _party()
    hubs = [
        _add("hub-a", first, extra_parties=[{"country_code": "SE", "party_id": shared}]),
        _add("hub-b", second, extra_parties=[{"country_code": "SE", "party_id": shared}]),
    ]
    answers = await asyncio.gather(*(_call(admin, "POST", "/admin/partners", h) for h in hubs))
    assert sorted(a["status_code"] for a in answers) == [1000, 2001], answers
    loser = hubs[[a["status_code"] for a in answers].index(2001)]
    # The refused hub's own main party was released: another partner may take it.
    free = await _call(admin, "POST", "/admin/partners", _add("after", loser["party_id"]))
    assert free["status_code"] == 1000, free


async def test_concurrent_shared_adds_all_win(admin: Client, slow_checks: None) -> None:
    """With shared_party the operator allows two owners: the storage does not refuse them."""
    party = _party()
    assert (await _call(admin, "POST", "/admin/partners", _add("first", party)))["status_code"] == 1000
    bodies = [_add(f"sharer-{i}", party, shared_party=True) for i in range(RACERS)]
    answers = await asyncio.gather(*(_call(admin, "POST", "/admin/partners", b) for b in bodies))
    assert [a["status_code"] for a in answers] == [1000] * RACERS, answers
    alone = await _call(admin, "POST", "/admin/partners", _add("alone", party))
    assert alone["status_code"] == 2001, alone


async def test_concurrent_adds_of_one_name_leave_exactly_one_partner(
    admin: Client, slow_checks: None
) -> None:
    """One name, different parties, at the same instant: one partner, the others get a clear 2001."""
    bodies = [_add("twin", _party()) for _ in range(RACERS)]
    answers = await asyncio.gather(*(_call(admin, "POST", "/admin/partners", b) for b in bodies))
    assert sorted(a["status_code"] for a in answers) == [1000] + [2001] * (RACERS - 1), answers
    for answer in answers:
        if answer["status_code"] == 2001:
            assert "a partner called 'twin' exists already" in answer["status_message"], answer
    winner = bodies[[a["status_code"] for a in answers].index(1000)]
    listed = await _listed(admin)
    assert listed["twin"]["party_id"] == winner["party_id"]
    # The losers' parties were not kept: each may be claimed by another partner.
    for body in bodies:
        if body is not winner:
            again = await _call(
                admin, "POST", "/admin/partners", _add(f"next-{body['party_id']}", body["party_id"])
            )
            assert again["status_code"] == 1000, again


async def test_a_removed_partners_party_and_name_can_be_claimed_again(admin: Client, gateway_db: Any) -> None:
    party = _party()
    assert (await _call(admin, "POST", "/admin/partners", _add("leaving", party)))["status_code"] == 1000
    assert (await _call(admin, "DELETE", "/admin/partners/leaving"))["status_code"] == 1000
    again = await _call(admin, "POST", "/admin/partners", _add("leaving", party))
    assert again["status_code"] == 1000, again
    assert await gateway_db["party_claims"].count_documents({"_id": f"SE/{party}"}) == 1


async def test_a_claim_left_by_a_removed_partner_does_not_block_its_party(
    admin: Client, gateway_db: Any
) -> None:
    """A gateway that died between committing a removal and releasing the claims left them behind:
    the owner is removed, so the claim no longer counts."""
    party = _party()
    assert (await _call(admin, "POST", "/admin/partners", _add("ghost", party)))["status_code"] == 1000
    # The removal's commit, as a gateway that died right after it left it (its claims not released).
    await gateway_db["partners"].update_one({"name": "ghost"}, {"$set": {"removed_at": datetime.now(UTC)}})
    claimed = await _call(admin, "POST", "/admin/partners", _add("heir", party))
    assert claimed["status_code"] == 1000, claimed


async def test_partners_stored_before_claims_existed_get_their_claims_at_start(
    namespace: str, amqp_url: str, mongo_url: str, gateway_db: Any
) -> None:
    """A gateway upgraded in place files the parties its partners already own; a name repeated by
    old partners does not keep it from starting (the check in code still refuses new repeats)."""
    settings = _settings(namespace, amqp_url, mongo_url)
    party = _party()
    async for admin in _started(settings):
        added = await _call(admin, "POST", "/admin/partners", _add("old", party))
        assert added["status_code"] == 1000, added
    stored = await gateway_db["partners"].find_one({"name": "old"})
    await gateway_db["party_claims"].delete_many({})
    await gateway_db["partners"].drop_indexes()
    await gateway_db["partners"].insert_one(
        {**stored, "_id": "copy-of-old", "party_id": _party(), "token_a_hash": None}
    )
    async for admin in _started(settings):
        refused = await _call(admin, "POST", "/admin/partners", _add("new", party))
        assert refused["status_code"] == 2001 and "'old'" in refused["status_message"], refused
        assert await gateway_db["party_claims"].count_documents({"_id": f"SE/{party}"}) == 1


async def test_register_checks_that_we_play_the_counter_role(
    namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """A CPO-only deployment cannot register with a CPO: refused before any call, like add."""
    settings = _settings(namespace, amqp_url, mongo_url, roles=(Role.CPO,))
    body = {
        "versions_url": "http://127.0.0.1:9/ocpi/versions",  # nobody answers: no call may be made
        "token": "token-a",
        "name": "cpo-partner",
        "role": "CPO",
        "parties": [{"country_code": "DE", "party_id": _party()}],
    }
    async for admin in _started(settings):
        answer = await _call(admin, "POST", "/admin/registrations", body)
        assert answer["status_code"] == 2001, answer
        assert "role" in answer["status_message"] and "not EMSP" in answer["status_message"], answer


def _envelope(data: Any) -> web.Response:
    return web.json_response({"data": data, "status_code": 1000, "timestamp": "2026-12-02T00:00:00Z"})


class SlowPartner:
    """An eMSP partner that is slow to show its versions (the registration claims last) and
    records every credentials call."""

    def __init__(self, party_id: str) -> None:
        self.party_id = party_id
        self.credentials_calls: list[str] = []
        self._server = TestServer(self._app(), host="127.0.0.1")

    @property
    def versions_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/versions"

    def _app(self) -> web.Application:
        async def versions(request: web.Request) -> web.Response:
            await asyncio.sleep(WINDOW)
            return _envelope([{"version": "2.1.1", "url": f"http://{request.host}/2.1.1"}])

        async def details(request: web.Request) -> web.Response:
            modules = ("credentials", "locations")
            endpoints = [{"identifier": m, "url": f"http://{request.host}/2.1.1/{m}"} for m in modules]
            return _envelope({"version": "2.1.1", "endpoints": endpoints})

        async def credentials(request: web.Request) -> web.Response:
            self.credentials_calls.append(request.method)
            return _envelope(
                {
                    "token": "their-token",
                    "url": self.versions_url,
                    "party_id": self.party_id,
                    "country_code": "SE",
                    "business_details": {"name": "Slow partner"},
                }
            )

        app = web.Application()
        app.router.add_get("/versions", versions)
        app.router.add_get("/2.1.1", details)
        app.router.add_route("*", "/2.1.1/credentials", credentials)
        return app

    async def __aenter__(self) -> SlowPartner:
        await self._server.start_server()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._server.close()


async def test_a_registration_racing_an_add_for_one_party_keeps_nothing(
    admin: Client, slow_checks: None
) -> None:
    """`partner register` and `partner add` name one party at the same instant: both pass the check,
    the add claims it first (the partner is slow to answer), and the registration is refused before
    our credentials reach the partner (nothing to undo there)."""
    party = _party()
    async with SlowPartner(party) as partner:
        body = {
            "versions_url": partner.versions_url,
            "token": "token-a",
            "name": "registered",
            "role": "EMSP",
            "parties": [{"country_code": "SE", "party_id": party}],
        }
        registered, added = await asyncio.gather(
            _call(admin, "POST", "/admin/registrations", body),
            _call(admin, "POST", "/admin/partners", _add("added", party)),
        )
    assert added["status_code"] == 1000, added
    assert registered["status_code"] == 2001, registered
    assert f"SE/{party} belongs to partner 'added'" in registered["status_message"], registered
    assert partner.credentials_calls == []
    assert set(await _listed(admin)) == {"added"}


async def test_a_name_quoted_by_the_cli_reaches_that_partner(admin: Client) -> None:
    """What `ocpi-admin partner ...` sends for a name holding '/', '?', '#', '%' or a space (one
    quoted segment) names that partner, and only it."""
    name = "hub/a b?c#d%e"
    assert (await _call(admin, "POST", "/admin/partners", _add(name, _party())))["status_code"] == 1000
    assert (await _call(admin, "POST", "/admin/partners", _add("hub", _party())))["status_code"] == 1000
    path = f"/admin/partners/{urllib.parse.quote(name, safe='')}"
    response = await admin.get(
        yarl.URL(path, encoded=True), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    answer = await response.json()
    assert answer["status_code"] == 1000 and answer["data"]["name"] == name, answer
