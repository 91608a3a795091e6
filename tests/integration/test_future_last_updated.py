"""A partner's PUT or PATCH stamped 9999-12-31 cannot freeze its location (security review L13): the
gateway answers 400/2001, our copy is unchanged, and a later normal update still applies. The gateway
and the locations service run in this process."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_apps
from services.gateway.partners import ConnectionStatus, PartnerRepository, new_partner
from services.gateway.tokens import token_hash
from services.locations.app import build
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.types import format_datetime, utc_now
from shared.sealing import Sealer
from shared.settings import Role, load_settings
from shared.storage import connect_mongo, service_database
from tests.support.gateway_tokens import TEST_KEYS
from tests.support.module_service import module_service
from tests.support.objects import location

pytestmark = pytest.mark.integration

CPO_TOKEN = secrets.token_hex(16)
URL = "/ocpi/emsp/2.1.1/locations/NL/CPA/L1"
FAR_FUTURE = "9999-12-31T23:59:59Z"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[Client]:
    """The gateway's OCPI app with a connected CPO partner NL/CPA, and the locations service."""
    settings = load_settings(
        environ={}, namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url, partner_token_keys=TEST_KEYS
    )
    mongo = connect_mongo(mongo_url)
    partner = new_partner(
        "cpa", Role.CPO, "NL", "CPA", status=ConnectionStatus.CONNECTED, token_hash=token_hash(CPO_TOKEN)
    )
    sealer = Sealer.from_setting(TEST_KEYS)
    await PartnerRepository(service_database(mongo, namespace, "gateway"), sealer).add(partner)
    ocpi, _ = create_apps(settings)
    async with (
        module_service("locations", build, amqp_url, mongo_url, namespace),
        TestClient(TestServer(ocpi)) as ocpi_client,
    ):
        yield ocpi_client
    await mongo.drop_database(service_database(mongo, namespace, "gateway").name)
    await mongo.close()


async def _call(client: Client, method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    response = await client.request(method, url, json=body, headers={"Authorization": f"Token {CPO_TOKEN}"})
    return response.status, await response.json()


async def test_a_far_future_put_or_patch_changes_nothing_and_a_later_update_applies(client: Client) -> None:
    before = utc_now() - timedelta(hours=1)
    stored = to_builtins(location("L1", ["E1"], at=before))
    assert (await _call(client, "PUT", URL, stored))[0] == 201

    frozen = {**stored, "name": "Frozen", "last_updated": FAR_FUTURE}
    status, answer = await _call(client, "PUT", URL, frozen)
    assert (status, answer["status_code"]) == (400, 2001) and "last_updated" in answer["status_message"]
    patch = {"status": "CHARGING", "last_updated": FAR_FUTURE}
    status, answer = await _call(client, "PATCH", URL + "/E1", patch)
    assert (status, answer["status_code"]) == (400, 2001) and "last_updated" in answer["status_message"]
    status, answer = await _call(client, "GET", URL)
    assert status == 200 and answer["data"] == stored  # unchanged

    now = format_datetime(utc_now())
    status, answer = await _call(client, "PUT", URL, {**stored, "name": "Later", "last_updated": now})
    assert (status, answer["status_code"]) == (200, 1000), answer
    status, answer = await _call(client, "PATCH", URL + "/E1", {"status": "CHARGING", "last_updated": now})
    assert (status, answer["status_code"]) == (200, 1000), answer
    status, answer = await _call(client, "GET", URL)
    assert answer["data"]["name"] == "Later" and answer["data"]["last_updated"] == now
    assert answer["data"]["evses"][0]["status"] == "CHARGING"
