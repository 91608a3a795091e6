"""A module service killed with SIGKILL while the gateway waits for its answers."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import Connection
from tests.support.http import Reply, request
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults
RPC_TIMEOUT = 3.0  # RPC_TIMEOUT_SECONDS of the test deployments


async def _timed(url: str, token: str) -> tuple[Reply, float]:
    started = time.monotonic()
    reply = await request("GET", url, token=token, seconds=RPC_TIMEOUT + 10)
    return reply, time.monotonic() - started


async def test_gateway_answers_3000_within_timeout_and_restarted_service_serves(
    connection: Connection,
) -> None:
    """Calls in flight when the service dies get a timely OCPI server error; the restarted service answers."""
    pair = connection.pair
    url = f"{pair.cpo.public_url}/ocpi/cpo/2.1.1/locations?limit=5"
    token = connection.emsp_to_cpo_token

    async def serving() -> bool:
        return (await request("GET", url, token=token)).status_code == 1000

    await eventually(serving, 60, pause=0.5)  # a test before may have left it a backlog

    # Keep a steady stream of calls going, and kill the service in the middle of it.
    calls = [asyncio.create_task(_timed(url, token)) for _ in range(20)]
    await asyncio.sleep(0.05)
    await asyncio.to_thread(pair.cpo_stack.kill, "locations")
    calls += [asyncio.create_task(_timed(url, token)) for _ in range(20)]
    results = await asyncio.gather(*calls)

    assert all(seconds < RPC_TIMEOUT + 1.5 for _, seconds in results), [s for _, s in results]
    codes = [reply.status_code for reply, _ in results]
    assert set(codes) <= {1000, 3000}
    assert 3000 in codes
    failed = [reply for reply, _ in results if reply.status_code == 3000]
    assert all(reply.status == 503 for reply in failed)

    pair.cpo_stack.start_one("locations")
    await asyncio.to_thread(pair.cpo_stack.wait_ready, 60, ("locations",))
    await eventually(serving, 60, pause=0.5)
    after = [await request("GET", url, token=token) for _ in range(5)]
    assert [reply.status_code for reply in after] == [1000] * 5
