"""Small HTTP helpers for talking to a deployment the way partners and operators do."""

from __future__ import annotations

from typing import Any

import aiohttp

from deploy.local_stack import Deployment
from shared.sealing import Sealer


class Reply:
    """An HTTP response with its OCPI envelope decoded."""

    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def status_code(self) -> int | None:
        return self.body.get("status_code") if isinstance(self.body, dict) else None

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def message(self) -> str:
        return str(self.body.get("status_message") or "") if isinstance(self.body, dict) else ""

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


async def request(
    method: str,
    url: str,
    *,
    token: str | None = None,
    bearer: str | None = None,
    json: Any = None,
    data: bytes | None = None,
    seconds: float = 15.0,
) -> Reply:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
        session.request(method, url, json=json, data=data, headers=headers) as response,
    ):
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = await response.text()
        return Reply(response.status, body, dict(response.headers))


async def admin(
    deployment: Deployment, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> Reply:
    """Call a deployment's admin API as its operator."""
    return await request(
        method, deployment.admin_url + path, bearer=deployment.admin_token, json=body, data=raw, seconds=60
    )


async def add_partner(deployment: Deployment, name: str, country_code: str, party_id: str, role: str) -> str:
    """`ocpi-admin partner add --shared-party`: returns the TOKEN_A. Shared, because the tests connect
    the same two deployments (the same parties) several times."""
    reply = await admin(
        deployment,
        "POST",
        "/admin/partners",
        {
            "name": name,
            "country_code": country_code,
            "party_id": party_id,
            "role": role,
            "shared_party": True,
        },
    )
    assert reply.status_code == 1000, reply
    return str(reply.data["token_a"])


async def partners(deployment: Deployment) -> dict[str, Any]:
    reply = await admin(deployment, "GET", "/admin/partners")
    assert reply.status_code == 1000, reply
    return {p["name"]: p for p in reply.data}


async def their_token(mongo_url: str, deployment: Deployment, partner_name: str) -> str:
    """The token a deployment stored to call a partner (read by the test as an oracle, not by a service)."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        doc = await client[f"{deployment.namespace}_gateway"]["partners"].find_one({"name": partner_name})
        assert doc is not None, partner_name
        return opened_token(deployment, doc)
    finally:
        await client.close()


def opened_token(deployment: Deployment, doc: dict[str, Any]) -> str:
    """The token in a gateway's partner document, opened with the deployment's keys."""
    return Sealer.from_setting(deployment.partner_token_keys).open(doc["their_token_sealed"], doc["_id"])


async def register_with(cpo: Deployment, emsp: Deployment, token_a: str, b_name: str) -> None:
    """A registers with B (`ocpi-admin partner register`) with the TOKEN_A B's operator gave it."""
    reply = await admin(
        cpo,
        "POST",
        "/admin/registrations",
        {
            "versions_url": f"{emsp.public_url}/ocpi/versions",
            "token": token_a,
            "name": b_name,
            "role": "EMSP",
            "parties": [{"country_code": emsp.country_code, "party_id": emsp.party_id}],
            "shared_party": True,
        },
    )
    assert reply.status_code == 1000, reply


async def connect(
    cpo: Deployment, emsp: Deployment, mongo_url: str, suffix: str
) -> tuple[str, str, str, str]:
    """B adds A, A registers with B. Returns (A's name at B, B's name at A, A->B token, B->A token)."""
    a_name, b_name = f"cpo-{suffix}", f"emsp-{suffix}"
    token_a = await add_partner(emsp, a_name, cpo.country_code, cpo.party_id, "CPO")
    await register_with(cpo, emsp, token_a, b_name)
    return (
        a_name,
        b_name,
        await their_token(mongo_url, cpo, b_name),
        await their_token(mongo_url, emsp, a_name),
    )
