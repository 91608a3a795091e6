"""Fault tests get two deployments and a database server of their own.

They kill and stop processes and push thousands of changes; on a fresh pair their timing does not
depend on what the end-to-end tests left behind in the shared pair's database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Connection, Pair, start_pair
from tests.support.http import connect
from tests.support.servers import mongo_server


@pytest.fixture(scope="package")
def pair_mongo_url() -> Iterator[str]:
    with mongo_server() as url:
        yield url


@pytest.fixture(scope="package")
def pair(amqp_url: str, pair_mongo_url: str) -> Iterator[Pair]:
    yield from start_pair(amqp_url, pair_mongo_url)


@pytest.fixture(scope="package")
async def connection(pair: Pair) -> Connection:
    return Connection(pair, *await connect(pair.cpo, pair.emsp, pair.mongo_url, "faults"))
