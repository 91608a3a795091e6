"""The RPC client and server across a connection the broker closes: fail fast, then work again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.contracts.base import Outcome, ok
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient, RpcServer, RpcUnavailable
from shared.messaging.topology import Topology
from tests.support.rabbit import close_connections
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# Far longer than any wait below: a call that ends early ended because the connection went.
CALL_TIMEOUT = 120.0
WAIT = 30.0


@pytest.fixture
async def named(amqp_url: str, namespace: str) -> AsyncIterator[tuple[Broker, Broker]]:
    """A client and a server process's brokers, each with a connection name rabbitmqctl can find."""
    client = Broker(amqp_url, Topology(namespace), "rpc-client")
    server = Broker(amqp_url, Topology(namespace), "rpc-server")
    await client.connect()
    await server.connect()
    yield client, server
    await client.close()
    await server.close()


async def test_a_call_in_flight_fails_at_once_and_the_client_works_after_each_reconnect(
    named: tuple[Broker, Broker],
) -> None:
    """A call waiting for its reply when the client's connection is closed fails with RpcUnavailable
    long before its deadline; after each of three closes the reply consumer is back and calls are
    answered again."""
    client_broker, server_broker = named
    release = asyncio.Event()
    calls = 0

    async def handle(_: bytes) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()  # the first request stays unanswered while the connection drops
        return Outcome(reply=ok({"n": calls}))

    server = RpcServer(server_broker, "echo", handle)
    await server.start()
    rpc = RpcClient(client_broker, timeout=CALL_TIMEOUT)
    await rpc.start()
    try:
        in_flight = asyncio.create_task(rpc.call("echo", ok()))
        await eventually(lambda: calls == 1, WAIT, "the first request reached the server")
        for round_ in range(3):
            closed = await asyncio.to_thread(close_connections, client_broker.connection_name)
            assert closed == 1
            if round_ == 0:
                async with asyncio.timeout(WAIT):
                    with pytest.raises(RpcUnavailable):
                        await in_flight
                release.set()
            await eventually(lambda: rpc.ready, WAIT, "the reply consumer back", pause=0.1)
            async with asyncio.timeout(WAIT):
                reply = await rpc.call("echo", ok())
            assert reply.status_code == 1000
    finally:
        release.set()
        await server.stop()
