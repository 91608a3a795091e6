"""Session-wide real servers; each test gets its own namespace so tests never see each other's data."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from deploy.local_stack import Deployment, Stack
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from shared.outbound_http import set_process_policy
from shared.outbound_policy import OutboundPolicy
from tests.support.cleanup import delete_namespaces
from tests.support.deployments import new_deployment, running
from tests.support.servers import amqp_url as _amqp_url
from tests.support.servers import mongo_server

# Per-test namespaces come and go by the hundred: classic queues there (a quorum queue is a Raft
# group each). The two-deployment tests run on quorum queues, as production does.
os.environ.setdefault("OCPI_QUEUE_TYPE", "classic")
# Partners in tests are servers on http://127.0.0.1: the outbound policy (M1) must let them be called,
# in this process (dispatchers built in-process) and in the deployments' processes (deployments.py).
set_process_policy(OutboundPolicy(allow_http=True, allow_private=True))
NAMESPACES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
async def _broker_cleanup(amqp_url: str) -> AsyncIterator[None]:
    """At the end of the session, delete the queues and exchanges of every namespace it used."""
    yield
    await delete_namespaces(amqp_url, NAMESPACES)


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    with mongo_server() as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return _amqp_url()


@pytest.fixture
def namespace() -> str:
    """A fresh namespace: its own exchanges, queues and databases."""
    name = f"t{uuid.uuid4().hex[:10]}"
    NAMESPACES.add(name)
    return name


@pytest.fixture
async def broker(amqp_url: str, namespace: str) -> AsyncIterator[Broker]:
    b = Broker(amqp_url, Topology(namespace))
    await b.connect()
    yield b
    await b.close()


@dataclass
class Pair:
    cpo: Deployment
    emsp: Deployment
    cpo_stack: Stack
    emsp_stack: Stack
    mongo_url: str


def start_pair(amqp_url: str, mongo_url: str) -> Iterator[Pair]:
    """Start A and B on quorum queues, as production runs; stop them when the generator closes."""
    cpo = new_deployment(amqp_url, mongo_url, "NL", "CPA", "CPO")
    emsp = new_deployment(amqp_url, mongo_url, "DE", "EMB", "EMSP")
    for deployment in (cpo, emsp):
        deployment.extra_env["OCPI_QUEUE_TYPE"] = "quorum"
        # A partner outage must spend the retry budget within a test's patience.
        deployment.extra_env.update(PUSH_MAX_ATTEMPTS="5", PUSH_BACKOFF_MAX_SECONDS="1")
        NAMESPACES.add(deployment.namespace)
    # B delegates real-time decisions to the company's authorizer (a fake in the tokens tests) and
    # waits 2.5 s for it; A waits 1.5 s for B, so an authorizer 2 s late is "B slow" for A.
    emsp.extra_env.update(TOKENS_AUTHORIZE_DELEGATE="authorizer", TOKENS_AUTHORIZE_DEADLINE_SECONDS="2.5")
    cpo.extra_env.update(TOKENS_REALTIME_DEADLINE_SECONDS="1.5")
    # A running session's meter values reach B at once (the billing tests watch its cost move).
    cpo.extra_env.update(SESSIONS_PUSH_INTERVAL_SECONDS="0")
    with running(cpo, "A ") as cpo_stack, running(emsp, "B ") as emsp_stack:
        yield Pair(cpo, emsp, cpo_stack, emsp_stack, mongo_url)


@dataclass
class Connection:
    """A registered with B: the names each uses for the other and the tokens each calls the other with."""

    pair: Pair
    cpo_at_emsp: str
    emsp_at_cpo: str
    cpo_to_emsp_token: str
    emsp_to_cpo_token: str
