"""The CDR POST at the gateway (eMSP interface) with the cdrs service's eMSP side behind it: the
Location header, GET at it, a bad body refused naming the field, and the admin disputes list."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_apps
from services.gateway.partners import ConnectionStatus, PartnerRepository, new_partner
from services.gateway.tokens import token_hash
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.sealing import Sealer
from shared.settings import Role, load_settings
from shared.storage import connect_mongo, service_database
from tests.integration.test_cdrs_emsp_service import emsp_only
from tests.support.cdrs import cdr
from tests.support.gateway_tokens import TEST_KEYS
from tests.support.module_service import module_service

pytestmark = pytest.mark.integration

ADMIN_TOKEN = secrets.token_hex(32)
CPO_TOKEN = secrets.token_hex(16)
PUBLIC = "https://emsp.example"
CDRS_URL = "/ocpi/emsp/2.1.1/cdrs"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def gateway(amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[tuple[Client, Client]]:
    """The gateway's OCPI and admin apps, a connected CPO partner NL/CPA, and the cdrs service."""
    settings = load_settings(
        environ={}, namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url,
        admin_token=ADMIN_TOKEN, partner_token_keys=TEST_KEYS, public_url=PUBLIC,
    )  # fmt: skip
    mongo = connect_mongo(mongo_url)
    partner = new_partner(
        "cpa", Role.CPO, "NL", "CPA", status=ConnectionStatus.CONNECTED, token_hash=token_hash(CPO_TOKEN)
    )
    sealer = Sealer.from_setting(TEST_KEYS)
    await PartnerRepository(service_database(mongo, namespace, "gateway"), sealer).add(partner)
    ocpi, admin = create_apps(settings)
    async with (
        module_service("cdrs", emsp_only(), amqp_url, mongo_url, namespace),
        TestClient(TestServer(ocpi)) as ocpi_client,
        TestClient(TestServer(admin)) as admin_client,
    ):
        yield ocpi_client, admin_client
    await mongo.drop_database(service_database(mongo, namespace, "gateway").name)
    await mongo.close()


def as_cpo() -> dict[str, str]:
    return {"Authorization": f"Token {CPO_TOKEN}"}


async def test_post_answers_the_location_where_get_finds_the_cdr(gateway: tuple[Client, Client]) -> None:
    """POST: HTTP 201, 1000, Location below our public URL; GET there returns the CDR; the admin
    disputes list answers (no tariff anywhere: UNCHECKED, so not disputed)."""
    ocpi, admin = gateway
    response = await ocpi.post(CDRS_URL, json=to_builtins(cdr()), headers=as_cpo())
    body = await response.json()
    assert (response.status, body["status_code"]) == (201, 1000), body
    location = response.headers["Location"]
    assert location == f"{PUBLIC}{CDRS_URL}/NL/CPA/CDR-1"
    found = await ocpi.get(location.removeprefix(PUBLIC), headers=as_cpo())
    assert found.status == 200 and (await found.json())["data"]["id"] == "CDR-1"
    again = await ocpi.post(CDRS_URL, json=to_builtins(cdr()), headers=as_cpo())
    assert (again.status, again.headers["Location"]) == (200, location)
    disputes = await admin.get("/admin/cdrs/disputes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert disputes.status == 200 and (await disputes.json())["data"] == []


@pytest.mark.parametrize(("field", "value"), [("total_cost", -1.0), ("total_energy", "lots")])
async def test_a_bad_cdr_is_refused_naming_the_field_and_stores_nothing(
    gateway: tuple[Client, Client], field: str, value: Any
) -> None:
    """A negative or mistyped total: HTTP 400 / 2001 naming the field; the CDR is not stored."""
    ocpi, _ = gateway
    document = to_builtins(cdr())
    document[field] = value
    response = await ocpi.post(CDRS_URL, json=document, headers=as_cpo())
    body = await response.json()
    assert (response.status, body["status_code"]) == (400, 2001)
    assert field in body["status_message"]
    missing = await ocpi.get(f"{CDRS_URL}/NL/CPA/CDR-1", headers=as_cpo())
    assert missing.status == 404
