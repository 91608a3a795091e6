"""Input limits of every OCPI module route, checked at the gateway before any RPC (security review L19
and L13): every id in a URL within the spec's length, and no partner object whose last_updated lies
far ahead of our clock.

The routes are read from the gateway's router, so a route added later is checked too; the lengths
are the spec's (mod_*.md, "Request Parameters"), written out here rather than read from the module
table, so that the test checks the table as well. No module service runs: a spy stands in for the
RPC client, and a request that passes the gateway's checks gets 503/3000 from it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_apps
from services.gateway.partners import ConnectionStatus, PartnerRepository, new_partner
from services.gateway.state import GATEWAY
from services.gateway.tokens import token_hash
from shared.contracts.base import RpcReply
from shared.messaging.rpc import RpcUnavailable
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.tokens import Token
from shared.sealing import Sealer
from shared.settings import Role, load_settings
from shared.storage import connect_mongo, service_database
from tests.support.cdrs import cdr
from tests.support.dispatcher_billing import session
from tests.support.gateway_tokens import TEST_KEYS
from tests.support.objects import location, tariff

pytestmark = pytest.mark.integration

# The spec's length of every id a module URL names: CiString(2)/(3) of the party (credentials.md),
# string(39) location_id and evse_uid, string(36) connector_id (mod_locations.md 3.1.2), string(36)
# tariff_id, token_uid and session_id (mod_tariffs.md 3.1.2, mod_tokens.md 3.1.2 and 2.2.2,
# mod_sessions.md 3.1.2), CiString(36) for the CDR id of the Location a CDR POST answers (mod_cdrs.md 3.1).
SPEC_ID_LENGTHS = {
    "country_code": 2,
    "party_id": 3,
    "location_id": 39,
    "evse_uid": 39,
    "connector_id": 36,
    "tariff_id": 36,
    "token_uid": 36,
    "session_id": 36,
    "cdr_id": 36,
}
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

CPO_TOKEN = secrets.token_hex(16)
EMSP_TOKEN = secrets.token_hex(16)
PLACEHOLDER = re.compile(r"\{(\w+)\}")
Client = TestClient[web.Request, web.Application]


@dataclass(frozen=True)
class Caller:
    token: str
    country_code: str
    party_id: str


# A route under /ocpi/cpo/ serves eMSP partners, one under /ocpi/emsp/ serves CPO partners.
CALLERS = {"cpo": Caller(EMSP_TOKEN, "DE", "EMP"), "emsp": Caller(CPO_TOKEN, "NL", "CPA")}


class RpcSpy:
    """Stands in for the gateway's RPC client: records each call and answers none."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def call(self, service: str, request: msgspec.Struct, wait_for: float | None = None) -> RpcReply:
        self.calls.append((service, request))
        raise RpcUnavailable("no module service runs in this test")


@dataclass
class Gateway:
    client: Client
    rpc: RpcSpy
    routes: list[tuple[str, str]]  # (method, URL template) of every OCPI route with an id in it


@pytest.fixture
async def gateway(amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[Gateway]:
    settings = load_settings(
        environ={}, namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url, partner_token_keys=TEST_KEYS
    )
    mongo = connect_mongo(mongo_url)
    sealer = Sealer.from_setting(TEST_KEYS)
    partners = PartnerRepository(service_database(mongo, namespace, "gateway"), sealer)
    for name, role, caller in (("cpa", Role.CPO, CALLERS["emsp"]), ("emp", Role.EMSP, CALLERS["cpo"])):
        await partners.add(
            new_partner(
                name, role, caller.country_code, caller.party_id,
                status=ConnectionStatus.CONNECTED, token_hash=token_hash(caller.token),
            )
        )  # fmt: skip
    ocpi, _ = create_apps(settings)
    routes = sorted(
        {
            (route.method, route.resource.canonical)
            for route in ocpi.router.routes()
            if route.resource is not None
            and route.method != "HEAD"
            and route.resource.canonical.startswith("/ocpi/")
            and PLACEHOLDER.search(route.resource.canonical)
        }
    )
    spy = RpcSpy()
    async with TestClient(TestServer(ocpi)) as client:
        client.app[GATEWAY].rpc.call = spy.call  # type: ignore[method-assign]
        yield Gateway(client, spy, routes)
    await mongo.drop_database(service_database(mongo, namespace, "gateway").name)
    await mongo.close()


def _caller(template: str) -> Caller:
    return CALLERS[template.split("/")[2]]


def _url(template: str, longer: str | None = None) -> str:
    """The template with each id at the spec's length (the caller's own party), `longer` one over."""
    caller = _caller(template)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        length = SPEC_ID_LENGTHS[name]
        if name == longer:
            return "X" * (length + 1)
        if name == "country_code":
            return caller.country_code
        if name == "party_id":
            return caller.party_id
        return "X" * length

    return PLACEHOLDER.sub(value, template)


async def _ask(gateway: Gateway, method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Token {_caller(url).token}"}
    response = await gateway.client.request(method, url, json=body, headers=headers)
    return response.status, await response.json()


async def test_every_route_kind_is_checked(gateway: Gateway) -> None:
    """The router holds every kind of route the review names, and every id of them has a spec length."""
    templates = {template for _, template in gateway.routes}
    for expected in (
        "/ocpi/cpo/2.1.1/locations/{location_id}/{evse_uid}/{connector_id}",  # Sender GET by id
        "/ocpi/emsp/2.1.1/locations/{country_code}/{party_id}/{location_id}/{evse_uid}/{connector_id}",
        "/ocpi/emsp/2.1.1/tokens/{token_uid}/authorize",
        "/ocpi/emsp/2.1.1/cdrs/{country_code}/{party_id}/{cdr_id}",  # the Location a CDR POST answers
        "/ocpi/emsp/2.1.1/sessions/{country_code}/{party_id}/{session_id}",
        "/ocpi/emsp/2.1.1/tariffs/{country_code}/{party_id}/{tariff_id}",
        "/ocpi/cpo/2.1.1/tokens/{country_code}/{party_id}/{token_uid}",
    ):
        assert expected in templates
    names = {name for template in templates for name in PLACEHOLDER.findall(template)}
    assert names <= SPEC_ID_LENGTHS.keys(), names - SPEC_ID_LENGTHS.keys()


async def test_an_id_one_longer_than_the_spec_allows_is_400_2001_before_any_rpc(gateway: Gateway) -> None:
    """On every route and method, each id one character over its spec length: HTTP 400, OCPI 2001
    naming the parameter, and no call to any service (before: a too long country_code or party_id
    of a Receiver route was 403/2000, "not a party of this partner")."""
    checked = []
    for method, template in gateway.routes:
        for name in PLACEHOLDER.findall(template):
            status, body = await _ask(gateway, method, _url(template, longer=name))
            checked.append(
                (method, template, name, status, body.get("status_code"), body.get("status_message"))
            )
    wrong = [c for c in checked if c[3:5] != (400, 2001) or c[2] not in (c[5] or "")]
    assert not wrong, wrong
    assert gateway.rpc.calls == []
    assert len(checked) > 40


async def test_ids_at_the_spec_length_pass_to_the_service(gateway: Gateway) -> None:
    """The same routes with every id at exactly its spec length reach the service (here: the spy, so
    503/3000). PUT, PATCH and POST are left out: without a body they stop at the body check."""
    asked = 0
    for method, template in gateway.routes:
        if method in ("PUT", "PATCH") or (method == "POST" and not template.endswith("/authorize")):
            continue
        status, body = await _ask(gateway, method, _url(template))
        assert (status, body["status_code"]) == (503, 3000), (method, template, body)
        asked += 1
    assert len(gateway.rpc.calls) == asked > 10


def _token(at: datetime) -> Token:
    return msgspec.convert(
        {"uid": "012345678", "type": "RFID", "auth_id": "DE-EMP-C0001", "issuer": "EMP",
         "valid": True, "whitelist": "ALLOWED", "last_updated": at},
        Token,
    )  # fmt: skip


def _objects(at: datetime) -> dict[str, tuple[str, Any]]:
    """A valid object of each module stamped `at`, with the id its URL names."""
    located = location("L1", ["E1"], at=at)
    return {
        "locations": ("L1", to_builtins(located)),
        "tariffs": ("T1", to_builtins(tariff("T1", at=at))),
        "tokens": ("012345678", to_builtins(_token(at))),
        "sessions": ("S1", to_builtins(msgspec.structs.replace(session("S1"), last_updated=at))),
        "cdrs": ("CDR-1", to_builtins(cdr(last_updated=at))),
    }


def _receiver_url(module: str, object_id: str) -> str:
    role = "cpo" if module == "tokens" else "emsp"
    if module == "cdrs":
        return f"/ocpi/{role}/2.1.1/cdrs"
    caller = CALLERS[role]
    return f"/ocpi/{role}/2.1.1/{module}/{caller.country_code}/{caller.party_id}/{object_id}"


@pytest.mark.parametrize("module", ["locations", "tariffs", "tokens", "sessions", "cdrs"])
async def test_a_far_future_last_updated_is_400_2001_before_any_rpc(gateway: Gateway, module: str) -> None:
    """A PUT (POST for CDRs) and a PATCH of every module stamped 9999-12-31: 400/2001 naming
    last_updated, and no service is asked; the same object stamped a minute ahead (clock skew)
    passes on to the service."""
    object_id, body = _objects(FAR_FUTURE)[module]
    url = _receiver_url(module, object_id)
    method = "POST" if module == "cdrs" else "PUT"
    status, answer = await _ask(gateway, method, url, body)
    assert (status, answer["status_code"]) == (400, 2001), answer
    assert "last_updated" in answer["status_message"]
    if module != "cdrs":
        status, answer = await _ask(gateway, "PATCH", url, {"last_updated": body["last_updated"]})
        assert (status, answer["status_code"]) == (400, 2001), answer
        assert "last_updated" in answer["status_message"]
    assert gateway.rpc.calls == []

    _, skewed = _objects(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1))[module]
    status, answer = await _ask(gateway, method, url, skewed)
    assert (status, answer["status_code"]) == (503, 3000), answer
    assert len(gateway.rpc.calls) == 1
