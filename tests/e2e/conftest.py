"""The end-to-end tests share two deployments and a database server of their own (stopped after them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcServer
from tests.conftest import Connection, Pair, start_pair
from tests.support import roaming
from tests.support.authorizer import AUTHORIZER, Authorizer
from tests.support.http import connect
from tests.support.servers import mongo_server


@pytest.fixture(scope="package")
def pair_mongo_url() -> Iterator[str]:
    """A database server for the two deployments only: a second SecantusDB process (another core)
    when no MONGO_URL is given, so they do not queue behind anything else."""
    with mongo_server() as url:
        yield url


@pytest.fixture(scope="package")
def pair(amqp_url: str, pair_mongo_url: str) -> Iterator[Pair]:
    """A (CPO, NL/CPA) and B (eMSP, DE/EMB), running every service as its own process."""
    yield from start_pair(amqp_url, pair_mongo_url)


@pytest.fixture(scope="package")
async def connection(pair: Pair) -> Connection:
    """One handshake for the package; tests that need a registered pair share it."""
    return Connection(pair, *await connect(pair.cpo, pair.emsp, pair.mongo_url, "main"))


@pytest.fixture(scope="package")
async def b_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    """B's broker, as B's card management and authorizer see it."""
    async with roaming.company_broker(amqp_url, connection.pair.emsp.namespace) as broker:
        yield broker


@pytest.fixture(scope="package")
async def authorizer(b_broker: Broker) -> AsyncIterator[Authorizer]:
    """B's company authorizer (B delegates its real-time decisions to it, see start_pair)."""
    fake = Authorizer()
    server = RpcServer(b_broker, AUTHORIZER, fake.handle, prefetch=64)
    await server.start()
    yield fake
    await server.stop()
