"""A CDR reaches its eMSP once through faults: B down while A posts it, and A's dispatcher dying in
the window between B's answer and its record of it.

Once means: B stores one CDR (its receiver keeps the first of equal POSTs), A records one delivery
with B's Location, and A's dispatcher stops posting once that record is written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from deploy.local_stack import Deployment
from shared.failpoints import ENV, KILLED
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from tests.conftest import Connection
from tests.support import roaming
from tests.support.billing import Site, cdr_at_b, charge, prepare_site
from tests.support.objects import now
from tests.support.waiting import eventually

FAILPOINT = "push.answered.cdrs"


@pytest.fixture(scope="module")
async def a_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        yield broker


@pytest.fixture(scope="module")
async def site(connection: Connection, a_broker: Broker, amqp_url: str) -> AsyncIterator[Site]:
    client = RpcClient(a_broker, timeout=10.0)
    await client.start()
    async with roaming.company_broker(amqp_url, connection.pair.emsp.namespace) as b_broker:
        yield await prepare_site(connection, a_broker, b_broker, client)


async def _own_cdr(mongo_url: str, deployment: Deployment, cdr_id: str) -> Any:
    """A's record of its CDR (test oracle): the deliveries it recorded."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        return await client[f"{deployment.namespace}_cdrs"]["own_cdrs"].find_one({"_id": cdr_id})
    finally:
        await client.close()


async def _copies_at_b(mongo_url: str, deployment: Deployment, cdr_id: str) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        return await client[f"{deployment.namespace}_cdrs"]["partner_cdrs"].count_documents({"id": cdr_id})
    finally:
        await client.close()


async def _delivered_once(connection: Connection, cdr_id: str, seconds: float) -> None:
    pair = connection.pair

    async def recorded() -> bool:
        own = await _own_cdr(pair.mongo_url, pair.cpo, cdr_id)
        return own is not None and len(own["own"]["deliveries"]) > 0

    await eventually(recorded, seconds, f"A's record of the delivery of {cdr_id}", pause=0.2)
    own = await _own_cdr(pair.mongo_url, pair.cpo, cdr_id)
    [delivery] = own["own"]["deliveries"]
    assert delivery["location"].endswith(f"/ocpi/emsp/2.1.1/cdrs/NL/CPA/{cdr_id}")
    assert await _copies_at_b(pair.mongo_url, pair.emsp, cdr_id) == 1


async def test_a_cdr_posted_while_b_is_down_arrives_once_when_b_is_back(
    connection: Connection, a_broker: Broker, site: Site
) -> None:
    stack = connection.pair.emsp_stack
    session_id = f"S-{uuid.uuid4().hex[:10]}"
    stack.kill("gateway")
    try:
        await charge(a_broker, session_id, site.location_id, site.uid, now() - timedelta(hours=2), 2, 6.0)
        # A's dispatcher tries B meanwhile (and fails): the CDR waits in its push record.
        await asyncio.sleep(3)
        assert await _copies_at_b(connection.pair.mongo_url, connection.pair.emsp, session_id) == 0
    finally:
        stack.start_one("gateway")
        await asyncio.to_thread(stack.wait_ready, 60, ("gateway",))
    cdr = await cdr_at_b(connection, session_id)
    assert cdr.total_energy == 12.0
    await _delivered_once(connection, session_id, 60)


async def test_a_dispatcher_dying_after_b_took_the_cdr_posts_it_once_more_and_b_keeps_one(
    connection: Connection, a_broker: Broker, site: Site
) -> None:
    """The crash window the dispatcher documents: B answered 201, A died before recording it. The
    replica that takes over (after the dead one's lease) posts again; B answers 200 for the same CDR
    and keeps one; A records one delivery and posts no more."""
    pair = connection.pair
    stack = pair.cpo_stack
    session_id = f"S-{uuid.uuid4().hex[:10]}"
    stack.kill("dispatcher")
    pair.cpo.extra_env[ENV] = FAILPOINT
    try:
        stack.start_one("dispatcher")
        await asyncio.to_thread(stack.wait_ready, 60, ("dispatcher",))
        await charge(a_broker, session_id, site.location_id, site.uid, now() - timedelta(hours=3), 2, 4.0)
        doomed = stack.processes["dispatcher"]
        assert await asyncio.to_thread(doomed.wait, 60) == KILLED, (
            "the dispatcher did not die at the failpoint"
        )
    finally:
        del pair.cpo.extra_env[ENV]
    # B took it before A died.
    assert await _copies_at_b(pair.mongo_url, pair.emsp, session_id) == 1
    stack.start_one("dispatcher")
    await asyncio.to_thread(stack.wait_ready, 60, ("dispatcher",))
    # The dead replica's lease (60 s) runs out, then a poll (5 s) finds the push again.
    await _delivered_once(connection, session_id, 90)
