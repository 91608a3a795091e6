"""Partners that answer with a gzip bomb, a huge body, a redirect, a trickle or deep JSON (finding H1).

One CPO deployment runs as real processes; fake eMSP partners register with it and then turn hostile.
Each call to them must fail cleanly: the processes stay up, their memory stays bounded, the gateway
answers 3001 and the dispatcher marks the partner as failing.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local_stack import Deployment, Stack
from shared.contracts.locations import LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.conftest import NAMESPACES
from tests.integration.test_dispatcher_partner_fake import FakePartner
from tests.support.deployments import new_deployment, running
from tests.support.hostile import BOMB_EXPANDED, HOSTILE_KINDS, Server, hostile_answer
from tests.support.http import add_partner, partners, request
from tests.support.objects import event_id, location, publish
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults

SERVICES = ("gateway", "locations", "dispatcher")
# Far below the bomb's 1 GiB: a process that inflated it would be far above this.
PEAK_RSS_LIMIT = 400 << 20


@pytest.fixture(scope="module")
def cpo(amqp_url: str, mongo_url: str) -> Iterator[tuple[Deployment, Stack]]:
    """A CPO deployment (gateway, locations, dispatcher) with quick retries and a 2 s push timeout."""
    deployment = new_deployment(amqp_url, mongo_url, "NL", "HOS", "CPO")
    deployment.extra_env.update(PUSH_TIMEOUT_SECONDS="2", PUSH_MAX_ATTEMPTS="3", PUSH_BACKOFF_MAX_SECONDS="1")
    NAMESPACES.add(deployment.namespace)
    with running(deployment, "H ", SERVICES) as stack:
        yield deployment, stack


def reset_peak_rss(stack: Stack, service: str) -> None:
    """Start the process's high-water mark afresh, so each test measures its own answers (Linux)."""
    Path(f"/proc/{stack.processes[service].pid}/clear_refs").write_text("5")


def peak_rss(stack: Stack, service: str) -> int:
    """The high-water mark of a service process's resident memory, in bytes (Linux)."""
    status = Path(f"/proc/{stack.processes[service].pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def healthy(deployment: Deployment, stack: Stack, service: str) -> bool:
    """The process runs and answers /healthz."""
    if stack.processes[service].poll() is not None:
        return False
    url = f"http://127.0.0.1:{deployment.health_port(service)}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        return bool(response.status == 200)


def credentials(url: str, party_id: str) -> dict[str, object]:
    """A credentials object of an eMSP partner in DE whose versions are at `url`."""
    return {
        "token": f"token-of-{party_id}",
        "url": url,
        "party_id": party_id,
        "country_code": "DE",
        "business_details": {"name": party_id},
    }


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
async def test_credentials_post_towards_a_hostile_versions_url_answers_3001(
    cpo: tuple[Deployment, Stack], kind: str
) -> None:
    """A TOKEN_A holder whose versions URL answers with `kind` gets 3001; the gateway lives on, bounded."""
    deployment, stack = cpo
    party_id = f"HG{HOSTILE_KINDS.index(kind)}"
    token_a = await add_partner(deployment, f"gateway-{kind}", "DE", party_id, "EMSP")
    reset_peak_rss(stack, "gateway")
    async with Server(host="127.0.0.2") as elsewhere, Server(hostile_answer(kind, elsewhere.url)) as bad:
        body = credentials(f"{bad.url}/ocpi/versions", party_id)
        url = f"{deployment.public_url}/ocpi/2.1.1/credentials"
        reply = await request("POST", url, token=token_a, json=body, seconds=30)
        assert reply.status == 200 and reply.status_code == 3001, reply
        assert len(reply.message) < 1000
        assert elsewhere.hits == 0
    assert healthy(deployment, stack, "gateway")
    assert peak_rss(stack, "gateway") < PEAK_RSS_LIMIT, f"gateway peaked at {peak_rss(stack, 'gateway')}"


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
async def test_a_hostile_emsp_partner_is_marked_failing_and_the_dispatcher_lives_on(
    cpo: tuple[Deployment, Stack], amqp_url: str, kind: str
) -> None:
    """Pushes and probes answered with `kind` are failed attempts: the partner goes RETRYING/OUT_OF_SYNC."""
    deployment, stack = cpo
    party_id = f"HD{HOSTILE_KINDS.index(kind)}"
    name = f"dispatcher-{kind}"
    token_a = await add_partner(deployment, name, "DE", party_id, "EMSP")
    partner = FakePartner(name)
    await partner.start()
    try:
        async with Server(host="127.0.0.2") as elsewhere:
            body = credentials(partner.versions_url, party_id)
            url = f"{deployment.public_url}/ocpi/2.1.1/credentials"
            reply = await request("POST", url, token=token_a, json=body)
            assert reply.status_code == 1000, reply
            partner.answer = hostile_answer(kind, elsewhere.url)
            reset_peak_rss(stack, "dispatcher")
            broker = Broker(amqp_url, Topology(deployment.namespace))
            await broker.connect()
            try:
                made = location(f"LOC-{kind}", ["E1"])
                await publish(broker, LocationUpsert(event_id=event_id(), location=made))
            finally:
                await broker.close()

            async def failing() -> bool:
                state = (await partners(deployment))[name]["sync_state"]
                return state in ("RETRYING", "OUT_OF_SYNC")

            await eventually(failing, 60, f"{name} RETRYING or OUT_OF_SYNC", pause=0.3)
            assert partner.pushes(ok_only=False), "the dispatcher never called the partner"
            assert elsewhere.hits == 0
    finally:
        await partner.stop()
    assert healthy(deployment, stack, "dispatcher")
    peak = peak_rss(stack, "dispatcher")
    assert peak < PEAK_RSS_LIMIT, f"dispatcher peaked at {peak} bytes (the bomb inflates to {BOMB_EXPANDED})"
