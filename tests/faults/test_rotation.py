"""A credentials PUT towards a partner (`partner rotate`) never bricks the connection (M4).

Our new token is offered alongside the current one; both stay valid until the partner's answer is
stored, and only then is the old one retired. Each step is made to fail in turn: the database refuses
to store the offered token, the partner refuses the PUT or never answers it in time, the gateway dies
before storing the answer, the partner's new versions URL does not work. Afterwards the partner can
always call us with the token it holds, and we call it with the one it gave us.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pymongo import AsyncMongoClient

from deploy.local_stack import Deployment
from shared.failpoints import ENV, KILLED
from tests.conftest import NAMESPACES
from tests.support.deployments import new_deployment, running
from tests.support.http import admin, opened_token, request
from tests.support.servers import free_port, secantus_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults
FAILPOINT = "gateway.rotation.before_store"
# How long the gateway waits for a partner's answer (PartnerClient's timeout).
PARTNER_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def mongo_url() -> Iterator[str]:
    """A SecantusDB of this module's own, with mongod's test commands: a test makes it refuse a write
    (configureFailPoint), which the shared one does not allow."""
    with secantus_server("--enable-test-commands") as url:
        yield url


@pytest.fixture(scope="module")
def cpo(amqp_url: str, mongo_url: str) -> Iterator[Deployment]:
    """A CPO deployment's gateway (all a rotation needs: the registry, the broker for its events)."""
    deployment = new_deployment(amqp_url, mongo_url, "NL", "ROT", "CPO")
    NAMESPACES.add(deployment.namespace)
    with running(deployment, "R ", ("gateway",)):
        yield deployment


def _envelope(data: Any) -> web.Response:
    return web.json_response({"data": data, "status_code": 1000, "timestamp": "2026-12-01T00:00:00Z"})


class Partner:
    """An eMSP partner's versions and credentials modules; it keeps the token we gave it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.party_id = uuid.uuid4().hex[:3].upper()
        self.our_token = ""  # the token it calls us with
        self.offered: list[str] = []  # every token we sent it in a PUT
        self.token_for_us = f"first-{uuid.uuid4().hex}"
        # "ok", "500", "broken-url" (answers a versions URL nobody serves), or "hang" (takes our
        # token, then answers nothing until released, long after our timeout)
        self.put_answer = "ok"
        self.released = asyncio.Event()
        # Run when a PUT arrives, before it is answered (a test breaks our database there).
        self.on_put: Callable[[], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None

    @property
    def versions_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocpi/versions"

    async def _versions(self, _: web.Request) -> web.Response:
        return _envelope([{"version": "2.1.1", "url": f"http://127.0.0.1:{self.port}/ocpi/2.1.1"}])

    async def _details(self, _: web.Request) -> web.Response:
        base = f"http://127.0.0.1:{self.port}/ocpi"
        endpoints = [
            {"identifier": "credentials", "url": f"{base}/2.1.1/credentials"},
            {"identifier": "locations", "url": f"{base}/emsp/2.1.1/locations"},
        ]
        return _envelope({"version": "2.1.1", "endpoints": endpoints})

    async def _credentials(self, request: web.Request) -> web.Response:
        ours = await request.json()
        if request.method == "PUT":
            self.offered.append(ours["token"])
            if self.on_put is not None:
                await self.on_put()
            if self.put_answer == "500":
                return web.Response(status=500, text="try again later")
            if self.put_answer == "hang":
                self.our_token = ours["token"]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.released.wait(), 3 * PARTNER_TIMEOUT)
                return web.Response(status=504, text="too late")
        self.our_token = ours["token"]
        self.token_for_us = f"{request.method.lower()}-{uuid.uuid4().hex}"
        url = self.versions_url
        if request.method == "PUT" and self.put_answer == "broken-url":
            url = f"http://127.0.0.1:{free_port()}/ocpi/versions"
        return _envelope(
            {
                "token": self.token_for_us,
                "url": url,
                "party_id": self.party_id,
                "country_code": "DE",
                "business_details": {"name": "Rotating partner"},
            }
        )

    async def __aenter__(self) -> Partner:
        app = web.Application()
        app.router.add_get("/ocpi/versions", self._versions)
        app.router.add_get("/ocpi/2.1.1", self._details)
        app.router.add_route("*", "/ocpi/2.1.1/credentials", self._credentials)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def partner(cpo: Deployment) -> AsyncIterator[tuple[Partner, str]]:
    """A partner registered with the CPO (outbound registration), and its name there."""
    async with Partner() as fake:
        name = f"rot-{fake.party_id.lower()}-{uuid.uuid4().hex[:4]}"
        body = {
            "versions_url": fake.versions_url,
            "token": "token-a-of-the-partner",
            "name": name,
            "role": "EMSP",
            "parties": [{"country_code": "DE", "party_id": fake.party_id}],
        }
        reply = await admin(cpo, "POST", "/admin/registrations", body)
        assert reply.status_code == 1000, reply
        assert fake.our_token
        yield fake, name


async def _works(cpo: Deployment, token: str) -> bool:
    """The partner can call us with this token."""
    return (await request("GET", f"{cpo.public_url}/ocpi/versions", token=token)).status == 200


async def _stored(cpo: Deployment, mongo_url: str, name: str) -> dict[str, Any]:
    """The gateway's partner document (read by the test as an oracle)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        doc = await client[f"{cpo.namespace}_gateway"]["partners"].find_one({"name": name})
        assert doc is not None
        return doc
    finally:
        await client.close()


async def test_a_rotation_that_succeeds_retires_the_old_token(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    fake, name = partner
    old = fake.our_token
    reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 1000, reply
    assert fake.our_token != old and await _works(cpo, fake.our_token)
    assert not await _works(cpo, old)
    assert opened_token(cpo, await _stored(cpo, mongo_url, name)) == fake.token_for_us


async def test_a_refused_put_leaves_the_old_token_and_the_offered_one_working(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    """The partner may have taken our token before failing: both work until a rotation completes."""
    fake, name = partner
    old, their_token = fake.our_token, fake.token_for_us
    fake.put_answer = "500"
    reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 3001, reply
    assert await _works(cpo, old)
    assert fake.offered and await _works(cpo, fake.offered[-1])
    assert opened_token(cpo, await _stored(cpo, mongo_url, name)) == their_token
    # The next rotation completes and retires both.
    fake.put_answer = "ok"
    assert (await admin(cpo, "POST", f"/admin/partners/{name}/rotate")).status_code == 1000
    assert await _works(cpo, fake.our_token)
    assert not await _works(cpo, old) and not await _works(cpo, fake.offered[0])


async def test_a_partner_whose_new_versions_url_fails_keeps_its_new_token_working(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    """The partner accepted the PUT: we never go back to the token it dropped; its answer is kept,
    its endpoints stay as they were."""
    fake, name = partner
    old = fake.our_token
    before = await _stored(cpo, mongo_url, name)
    fake.put_answer = "broken-url"
    reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 3001, reply
    assert await _works(cpo, fake.our_token)
    assert not await _works(cpo, old)
    after = await _stored(cpo, mongo_url, name)
    assert opened_token(cpo, after) == fake.token_for_us
    assert after["endpoints"] == before["endpoints"] and after["versions_url"] == before["versions_url"]


async def test_a_gateway_that_dies_before_storing_the_answer_leaves_both_tokens_working(
    cpo: Deployment, partner: tuple[Partner, str]
) -> None:
    """The rotation's replica exits right after the partner accepted; another replica serves the
    partner with the new token, and with the old one until a rotation completes."""
    fake, name = partner
    old = fake.our_token
    env = {k: v for k, v in cpo.extra_env.items() if k != ENV} | {ENV: FAILPOINT}
    doomed = dataclasses.replace(cpo, gateway_port=free_port(), admin_port=free_port(), extra_env=env)
    with running(doomed, "R2 ", ("gateway",)) as stack:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            await admin(doomed, "POST", f"/admin/partners/{name}/rotate")
        assert stack.processes["gateway"].wait(30) == KILLED, "the gateway did not die at the failpoint"
    assert fake.our_token != old
    assert await _works(cpo, fake.our_token)
    assert await _works(cpo, old)
    assert (await admin(cpo, "POST", f"/admin/partners/{name}/rotate")).status_code == 1000
    assert await _works(cpo, fake.our_token) and not await _works(cpo, old)


async def test_the_partner_may_update_its_credentials_with_the_offered_token(
    cpo: Deployment, partner: tuple[Partner, str]
) -> None:
    """After a refused PUT, the partner calls our credentials PUT with the token we offered: it is
    registered with a fresh token, and every earlier one is retired."""
    fake, name = partner
    old = fake.our_token
    fake.put_answer = "500"
    assert (await admin(cpo, "POST", f"/admin/partners/{name}/rotate")).status_code == 3001
    offered = fake.offered[-1]
    body = {
        "token": "the-partners-newest-token",
        "url": fake.versions_url,
        "party_id": fake.party_id,
        "country_code": "DE",
        "business_details": {"name": "Rotating partner"},
    }
    reply = await request("PUT", f"{cpo.public_url}/ocpi/2.1.1/credentials", token=offered, json=body)
    assert reply.status_code == 1000, reply
    fresh = reply.data["token"]
    assert await _works(cpo, fresh)
    assert not await _works(cpo, old) and not await _works(cpo, offered)


@contextlib.asynccontextmanager
async def refused_writes(mongo_url: str, command: str) -> AsyncIterator[None]:
    """The database refuses every `command` (code 13, Unauthorized) until the block ends."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    failpoint = {"configureFailPoint": "failCommand", "data": {"failCommands": [command], "errorCode": 13}}
    try:
        await client.admin.command({**failpoint, "mode": "alwaysOn"})
        yield
    finally:
        await client.admin.command({**failpoint, "mode": "off"})
        await client.close()


async def test_a_database_refusing_the_offered_token_sends_nothing(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    """Step 1 fails: the new token cannot be stored as offered. The PUT is never sent (the partner
    would hold a token we do not know), the current token keeps working, and the operator hears
    that nothing was sent and that the partner's token still works."""
    fake, name = partner
    old, their_token = fake.our_token, fake.token_for_us
    async with refused_writes(mongo_url, "findAndModify"):
        reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 3000, reply
    assert "nothing was sent" in reply.message and "still works" in reply.message, reply
    assert fake.offered == []
    assert await _works(cpo, old)
    assert opened_token(cpo, await _stored(cpo, mongo_url, name)) == their_token
    assert (await admin(cpo, "POST", f"/admin/partners/{name}/rotate")).status_code == 1000
    assert await _works(cpo, fake.our_token) and not await _works(cpo, old)


async def test_a_put_whose_answer_never_arrives_leaves_both_tokens_working(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    """Step 2 times out: the partner took our new token, its answer does not arrive in time. It may
    call us with either token; we keep the token it gave us before, and the next rotation retires both."""
    fake, name = partner
    old, their_token = fake.our_token, fake.token_for_us
    fake.put_answer = "hang"
    reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 3001, reply
    assert "timeout" in reply.message or "within" in reply.message, reply
    offered = fake.offered[-1]
    assert fake.our_token == offered != old
    assert await _works(cpo, offered) and await _works(cpo, old)
    assert opened_token(cpo, await _stored(cpo, mongo_url, name)) == their_token
    fake.released.set()
    fake.put_answer = "ok"
    assert (await admin(cpo, "POST", f"/admin/partners/{name}/rotate")).status_code == 1000
    assert await _works(cpo, fake.our_token)
    assert not await _works(cpo, old) and not await _works(cpo, offered)


async def _refuse_writes_for(mongo_url: str, seconds: float) -> None:
    """From now on the database refuses findAndModify for `seconds` (a background task ends it)."""
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(refused_writes(mongo_url, "findAndModify"))

    async def release() -> None:
        await asyncio.sleep(seconds)
        await stack.aclose()

    BACKGROUND.add(task := asyncio.create_task(release()))
    task.add_done_callback(BACKGROUND.discard)


BACKGROUND: set[asyncio.Task[None]] = set()


async def test_a_database_blip_while_storing_the_answer_only_delays_the_rotation(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    """Step 3 fails for a moment: the partner took our new token and answered, and the database
    refuses the write for a second. The answer is stored once it works again; the rotation completes."""
    fake, name = partner
    old = fake.our_token
    fake.on_put = lambda: _refuse_writes_for(mongo_url, 1.0)
    reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 1000, reply
    assert opened_token(cpo, await _stored(cpo, mongo_url, name)) == fake.token_for_us
    assert await _works(cpo, fake.our_token) and not await _works(cpo, old)


async def test_a_database_down_while_storing_the_answer_leaves_both_tokens_working(
    cpo: Deployment, mongo_url: str, partner: tuple[Partner, str]
) -> None:
    """Step 3 fails for good: the operator hears what happened and what to do; the partner may call
    us with either token; a later rotation completes."""
    fake, name = partner
    old = fake.our_token
    fake.on_put = lambda: _refuse_writes_for(mongo_url, 15.0)
    reply = await admin(cpo, "POST", f"/admin/partners/{name}/rotate")
    assert reply.status_code == 3000, reply
    assert "could not be stored" in reply.message and "Repeat the rotation" in reply.message, reply
    offered = fake.offered[-1]
    assert await _works(cpo, offered) and await _works(cpo, old)
    fake.on_put = None
    await eventually(lambda: not BACKGROUND, 30, "the database writing again")
    assert (await admin(cpo, "POST", f"/admin/partners/{name}/rotate")).status_code == 1000
    assert await _works(cpo, fake.our_token)
    assert not await _works(cpo, old) and not await _works(cpo, offered)
