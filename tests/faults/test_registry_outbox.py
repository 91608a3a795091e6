"""Registry changes whose gateway dies between the database write and the publish (H4).

A gateway replica is started with the failpoint `gateway.after_registry_commit` armed: it exits
right after committing a partner change, before any event about it is published. The change must
still reach the dispatcher and every other gateway replica, and an admin remove must be repeatable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from deploy.local_stack import Deployment
from shared.failpoints import ENV, KILLED
from tests.conftest import Pair
from tests.support.deployments import running
from tests.support.http import add_partner, admin, connect, partners, request
from tests.support.servers import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults
FAILPOINT = "gateway.after_registry_commit"


def _replica(deployment: Deployment, failpoint: bool) -> Deployment:
    """Another gateway of the same deployment, on ports of its own, with the failpoint armed or not."""
    env = {k: v for k, v in deployment.extra_env.items() if k != ENV}
    if failpoint:
        env[ENV] = FAILPOINT
    return dataclasses.replace(deployment, gateway_port=free_port(), admin_port=free_port(), extra_env=env)


@contextmanager
def _doomed_gateway(deployment: Deployment, label: str) -> Iterator[Deployment]:
    """A gateway replica with the failpoint armed; on leaving, it must have died at the failpoint."""
    doomed = _replica(deployment, failpoint=True)
    with running(doomed, label, services=("gateway",)) as stack:
        yield doomed
        process = stack.processes["gateway"]
        assert process.wait(30) == KILLED, "the gateway did not die at the failpoint"


async def _dispatcher_partner(pair: Pair, deployment: Deployment, partner_id: str) -> dict[str, Any] | None:
    """The dispatcher's projection of one partner (read by the test as an oracle, not by a service)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pair.mongo_url, tz_aware=True)
    try:
        return await client[f"{deployment.namespace}_dispatcher"]["partners"].find_one({"_id": partner_id})
    finally:
        await client.close()


async def _dies_midway(call: Any) -> None:
    """Run an HTTP call against a gateway that dies while answering; its answer does not matter."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        await call


async def test_credentials_post_killed_after_commit_reaches_dispatcher_and_other_replica(pair: Pair) -> None:
    """A POST whose gateway dies right after the commit still registers the partner at the dispatcher
    and revokes the used TOKEN_A on the other replica."""
    suffix = uuid.uuid4().hex[:6]
    a_name, b_name = f"cpo-pk-{suffix}", f"emsp-pk-{suffix}"
    token_a = await add_partner(pair.emsp, a_name, pair.cpo.country_code, pair.cpo.party_id, "CPO")
    a_id = (await partners(pair.emsp))[a_name]["id"]
    versions_1 = f"{pair.emsp.public_url}/ocpi/versions"
    with _doomed_gateway(pair.emsp, "B2 ") as doomed:
        # Replica 1 has the TOKEN_A cached; only a TokensRevoked can make it refuse it within the TTL.
        assert (await request("GET", versions_1, token=token_a)).status_code == 1000
        body = {
            "versions_url": f"{doomed.public_url}/ocpi/versions",
            "token": token_a,
            "name": b_name,
            "parties": [{"country_code": pair.emsp.country_code, "party_id": pair.emsp.party_id}],
            "shared_party": True,
        }
        await _dies_midway(admin(pair.cpo, "POST", "/admin/registrations", {**body, "role": "EMSP"}))

    with running(_replica(pair.emsp, failpoint=False), "B2 ", services=("gateway",)):

        async def registered() -> bool:
            doc = await _dispatcher_partner(pair, pair.emsp, a_id)
            return doc is not None and not doc.get("tombstone")

        await eventually(registered, 60, "the dispatcher knows the partner", pause=0.2)
        # Bounded well below the cache TTL (30 s): the refusal comes from the event, not from expiry.
        await eventually(
            lambda: _status(versions_1, token_a, 401), 15, "replica 1 refuses the used TOKEN_A", pause=0.2
        )
    await admin(pair.emsp, "DELETE", f"/admin/partners/{a_name}")  # no pulls from a partner A forgot


async def _status(url: str, token: str, expected: int) -> bool:
    return (await request("GET", url, token=token)).status == expected


async def _connected_pair(pair: Pair, tag: str) -> tuple[str, str]:
    """A fresh A->B connection that A's dispatcher knows; B's name at A and B's id at A."""
    _, b_name, _, _ = await connect(pair.cpo, pair.emsp, pair.mongo_url, f"{tag}-{uuid.uuid4().hex[:6]}")
    b_id = str((await partners(pair.cpo))[b_name]["id"])

    async def known() -> bool:
        doc = await _dispatcher_partner(pair, pair.cpo, b_id)
        return doc is not None and not doc.get("tombstone")

    await eventually(known, 60, "A's dispatcher knows B", pause=0.2)
    return b_name, b_id


async def _forgotten(pair: Pair, partner_id: str) -> bool:
    doc = await _dispatcher_partner(pair, pair.cpo, partner_id)
    return doc is not None and bool(doc.get("tombstone"))


async def test_admin_remove_killed_after_commit_is_finished_by_the_sweep(pair: Pair) -> None:
    """A remove whose gateway dies right after the commit is announced after the restart: the
    dispatcher forgets the partner (no more pushes) and the partner leaves the list."""
    b_name, b_id = await _connected_pair(pair, "rs")
    with _doomed_gateway(pair.cpo, "A2 ") as doomed:
        await _dies_midway(admin(doomed, "DELETE", f"/admin/partners/{b_name}"))

    with running(_replica(pair.cpo, failpoint=False), "A2 ", services=("gateway",)):
        await eventually(lambda: _forgotten(pair, b_id), 60, "the dispatcher forgets B", pause=0.2)

        async def gone() -> bool:
            return b_name not in await partners(pair.cpo)

        await eventually(gone, 30, "B leaves the partner list", pause=0.2)


async def test_admin_remove_killed_after_commit_can_be_repeated(pair: Pair) -> None:
    """A second remove of a half-removed partner finishes the job instead of answering 404."""
    b_name, b_id = await _connected_pair(pair, "rr")
    with _doomed_gateway(pair.cpo, "A2 ") as doomed:
        await _dies_midway(admin(doomed, "DELETE", f"/admin/partners/{b_name}"))

    again = await admin(pair.cpo, "DELETE", f"/admin/partners/{b_name}")
    assert again.status_code == 1000, again
    await eventually(lambda: _forgotten(pair, b_id), 30, "the dispatcher forgets B", pause=0.2)
    assert b_name not in await partners(pair.cpo)
