"""Two gateway replicas of one deployment: a token rotated through one stops working at the other."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

from tests.conftest import Pair
from tests.support.deployments import running
from tests.support.http import connect, request, their_token
from tests.support.servers import free_port


async def test_rotated_and_deleted_tokens_stop_working_on_every_replica_in_a_second(pair: Pair) -> None:
    """Replica 2 has the token cached; after a rotation or a DELETE through replica 1 it refuses it."""
    suffix = uuid.uuid4().hex[:6]
    _, b_name, token, _ = await connect(pair.cpo, pair.emsp, pair.mongo_url, suffix)
    replica = dataclasses.replace(pair.emsp, gateway_port=free_port(), admin_port=free_port())
    with running(replica, "B2 ", services=("gateway",)):
        details_1 = f"{pair.emsp.public_url}/ocpi/2.1.1"
        details_2 = f"{replica.public_url}/ocpi/2.1.1"
        assert (await request("GET", details_2, token=token)).status_code == 1000  # now cached there

        rotated = await request(
            "POST", f"{pair.cpo.admin_url}/admin/partners/{b_name}/rotate", bearer=pair.cpo.admin_token
        )
        assert rotated.status_code == 1000, rotated
        started = time.monotonic()
        while (await request("GET", details_2, token=token)).status != 401:
            assert time.monotonic() - started < 1.0, "replica 2 still accepts the rotated token"
            await asyncio.sleep(0.05)
        assert (await request("GET", details_1, token=token)).status == 401

        # The same for a DELETE through replica 1 of the token the rotation handed out.
        new_token = await their_token(pair.mongo_url, pair.cpo, b_name)
        assert (await request("GET", details_2, token=new_token)).status_code == 1000
        credentials_1 = f"{details_1}/credentials"
        assert (await request("DELETE", credentials_1, token=new_token)).status_code == 1000
        started = time.monotonic()
        while (await request("GET", details_2, token=new_token)).status != 401:
            assert time.monotonic() - started < 1.0, "replica 2 still accepts the deleted token"
            await asyncio.sleep(0.05)
