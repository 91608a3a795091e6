"""A gateway with the production outbound policy (M1): a TOKEN_A holder cannot make it call
internal addresses, and learns nothing about them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deploy.local_stack import Deployment
from tests.conftest import NAMESPACES
from tests.support.deployments import new_deployment, running
from tests.support.hostile import Server
from tests.support.http import add_partner, request


@pytest.fixture(scope="module")
def strict(amqp_url: str, mongo_url: str) -> Iterator[Deployment]:
    """A gateway that refuses http and non-public partner URLs, as the image does by default."""
    deployment = new_deployment(amqp_url, mongo_url, "NL", "SSR", "CPO")
    deployment.extra_env.update(OUTBOUND_ALLOW_HTTP="false", OUTBOUND_ALLOW_PRIVATE="false")
    NAMESPACES.add(deployment.namespace)
    with running(deployment, "S ", ("gateway",)):
        yield deployment


def _credentials(url: str, party_id: str) -> dict[str, object]:
    return {
        "token": "their-token",
        "url": url,
        "party_id": party_id,
        "country_code": "DE",
        "business_details": {"name": "Scanner"},
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:15672/api/overview",
        "https://127.0.0.1:1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/ocpi/versions",
        "https://[::1]:8080/ocpi/versions",
        "https://localhost:8080/ocpi/versions",
    ],
)
async def test_a_token_a_holder_cannot_make_the_gateway_call_internal_addresses(
    strict: Deployment, url: str
) -> None:
    """2001 naming the rule, no port or error in it, and the TOKEN_A stays usable."""
    party_id = uuid.uuid4().hex[:3].upper()
    token_a = await add_partner(strict, f"scanner-{party_id}", "DE", party_id, "EMSP")
    async with Server() as listening:
        reply = await request(
            "POST",
            f"{strict.public_url}/ocpi/2.1.1/credentials",
            token=token_a,
            json=_credentials(url, party_id),
        )
        assert listening.hits == 0
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "not allowed" in reply.message
    for leak in ("15672", "Connect", "refused", "HTTP 4"):
        assert leak not in reply.message, reply.message
    assert (await request("GET", f"{strict.public_url}/ocpi/versions", token=token_a)).status == 200


async def test_a_listening_local_server_is_never_called(strict: Deployment) -> None:
    party_id = uuid.uuid4().hex[:3].upper()
    token_a = await add_partner(strict, f"scanner-{party_id}", "DE", party_id, "EMSP")
    async with Server() as listening:
        body = _credentials(f"{listening.url}/ocpi/versions", party_id)
        reply = await request("POST", f"{strict.public_url}/ocpi/2.1.1/credentials", token=token_a, json=body)
    assert reply.status_code == 2001, reply
    assert listening.hits == 0
