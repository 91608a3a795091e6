"""A partner's OCPI API on a real HTTP port for the dispatcher tests, and tests of that fake itself."""

from __future__ import annotations

import asyncio
import copy
import errno
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from tests.support.servers import free_port

pytestmark = pytest.mark.integration

Json = dict[str, Any]
TOKEN = "partner-token-for-us"


@dataclass
class Received:
    """One request as the partner saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    answered: int
    at: float = field(default_factory=time.monotonic)

    @property
    def segments(self) -> list[str]:
        """Path segments after the receiver's base: [country, party, location, evse?]."""
        return self.path.split("/locations/", 1)[1].split("/") if "/locations/" in self.path else []


def envelope(
    data: Any = None, status_code: int = 1000, http: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """An OCPI response."""
    body = {"data": data, "status_code": status_code, "timestamp": "2024-05-01T12:00:00Z"}
    return web.json_response(body, status=http, headers=headers)


# Ports tried before the first start gives up (a port picked free may be taken before it is bound).
BIND_ATTEMPTS = 3


class FakePartner:
    """Versions, an eMSP locations receiver that keeps what it is sent, and a CPO locations sender."""

    def __init__(self, name: str = "partner") -> None:
        self.name = name
        self.port = free_port()
        self.received: list[Received] = []
        self.down = False  # answer 503 to everything
        self.unknown_answer = "404"  # how a PATCH/PUT for an unknown location is refused: "404" or "2003"
        self.delay = 0.0  # upper bound of a random pause per request
        self.pause = 0.0  # a fixed pause per request, on top
        self.store: dict[str, Json] = {}
        self.cpo_locations: list[Any] = []  # what the CPO sender pages through (raw JSON objects)
        self.cpo_tariffs: list[Any] = []
        self.tariffs: dict[str, Json] = {}  # what the eMSP tariffs receiver holds
        self.tokens: dict[str, Json] = {}  # what the CPO tokens receiver holds
        self.emsp_tokens: list[Any] = []  # what the eMSP tokens sender pages through
        self.sessions: dict[str, Json] = {}  # what the eMSP sessions receiver holds
        self.cdrs: dict[str, Json] = {}  # what the eMSP CDRs receiver holds, by CDR id
        self.refused_cdrs: set[str] = set()  # CDR ids its receiver refuses every time (400/2001)
        # The eMSP's real-time authorization: uid -> AuthorizationInfo JSON (unknown uid: 404).
        self.authorizations: dict[str, Any] = {}
        self.modules: tuple[str, ...] = ("locations",)  # the object modules it registers endpoints for
        # When set, versions, receiver and sender all answer with it (see tests/support/hostile.py).
        self.answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
        self.role = "EMSP"  # the role its version details list endpoints for
        self._runner: web.AppRunner | None = None
        self._listened = False  # it listened once: its port is known (registered), it keeps it

    @property
    def base(self) -> str:
        """The partner's URL root."""
        return f"http://127.0.0.1:{self.port}/ocpi"

    @property
    def versions_url(self) -> str:
        """Its versions endpoint."""
        return f"{self.base}/versions"

    def endpoints(self, role: str) -> dict[str, str]:
        """The module endpoints it registers with, for the given role."""
        side = "emsp" if role == "EMSP" else "cpo"
        modules = {module: f"{self.base}/{side}/2.1.1/{module}" for module in self.modules}
        return {**modules, "credentials": f"{self.base}/cred"}

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ocpi/versions", self._versions)
        app.router.add_get("/ocpi/2.1.1", self._details)
        app.router.add_route("*", "/ocpi/emsp/2.1.1/locations/{tail:.*}", self._receiver)
        app.router.add_get("/ocpi/cpo/2.1.1/locations", self._sender)
        app.router.add_route("*", "/ocpi/emsp/2.1.1/tariffs/{tail:.*}", self._tariffs_receiver)
        app.router.add_get("/ocpi/cpo/2.1.1/tariffs", self._tariffs_sender)
        app.router.add_route("*", "/ocpi/cpo/2.1.1/tokens/{tail:.*}", self._tokens_receiver)
        app.router.add_get("/ocpi/emsp/2.1.1/tokens", self._tokens_sender)
        app.router.add_post("/ocpi/emsp/2.1.1/tokens/{uid}/authorize", self._authorize)
        app.router.add_route("*", "/ocpi/emsp/2.1.1/sessions/{tail:.*}", self._sessions_receiver)
        app.router.add_post("/ocpi/emsp/2.1.1/cdrs", self._cdrs_receiver)
        return app

    async def start(self) -> None:
        """Listen on its port (again, after a stop)."""
        for attempt in range(BIND_ATTEMPTS):
            self._runner = web.AppRunner(self._app(), access_log=None)
            await self._runner.setup()
            try:
                await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
            except OSError as exc:
                await self._runner.cleanup()
                # The port picked free was taken before we bound it (another process's ephemeral
                # port). Before the first start nobody knows the port yet: take another one.
                if exc.errno != errno.EADDRINUSE or self._listened or attempt == BIND_ATTEMPTS - 1:
                    raise
                self.port = free_port()
                continue
            self._listened = True
            return

    async def stop(self) -> None:
        """Stop listening: callers get connection errors."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def pushes(self, ok_only: bool = True) -> list[Received]:
        """Requests to the receiver, optionally only the ones it accepted."""
        return [r for r in self.received if r.segments and (not ok_only or r.answered == 200)]

    async def _record(self, request: web.Request, answered: int) -> Received:
        raw = await request.read()
        received = Received(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=json.loads(raw) if raw else None,
            answered=answered,
        )
        self.received.append(received)
        return received

    async def _pause(self) -> None:
        if self.delay or self.pause:
            await asyncio.sleep(self.pause + random.uniform(0, self.delay))

    async def _versions(self, request: web.Request) -> web.StreamResponse:
        if self.answer is not None:
            await self._record(request, 0)
            return await self.answer(request)
        await self._record(request, 503 if self.down else 200)
        if self.down:
            return web.Response(status=503, text="down")
        return envelope([{"version": "2.1.1", "url": f"{self.base}/2.1.1"}])

    async def _details(self, request: web.Request) -> web.Response:
        endpoints = [{"identifier": k, "url": v} for k, v in self.endpoints(self.role).items()]
        return envelope({"version": "2.1.1", "endpoints": endpoints})

    async def _receiver(self, request: web.Request) -> web.StreamResponse:
        await self._pause()
        if self.answer is not None:
            await self._record(request, 0)
            return await self.answer(request)
        if self.down:
            await self._record(request, 503)
            return web.Response(status=503, text="maintenance")
        parts = request.match_info["tail"].split("/")
        body = json.loads(await request.read())
        location_id, evse_uid = parts[2], parts[3] if len(parts) > 3 else None
        stored = self.store.get(location_id)
        if stored is None and (request.method == "PATCH" or evse_uid is not None):
            await self._record(request, 404 if self.unknown_answer == "404" else 200)
            if self.unknown_answer == "404":
                return envelope(None, 2003, http=404)
            return envelope(None, 2003)
        await self._record(request, 200)
        if evse_uid is None:
            if request.method == "PUT":
                self.store[location_id] = body
            else:
                self.store[location_id] = {**stored, **body}  # type: ignore[dict-item]
            return envelope()
        assert stored is not None
        evses = stored.setdefault("evses", [])
        current = next((e for e in evses if e["uid"] == evse_uid), None)
        new = body if request.method == "PUT" or current is None else {**current, **body}
        stored["evses"] = [new if e["uid"] == evse_uid else e for e in evses] if current else [*evses, new]
        # A receiver moves the parent's last_updated along with its children (mod_locations.md).
        stored["last_updated"] = max(stored["last_updated"], new["last_updated"])
        return envelope()

    async def _tariffs_receiver(self, request: web.Request) -> web.StreamResponse:
        """PUT stores a tariff, DELETE removes it (404 when it holds none), as mod_tariffs.md says."""
        await self._pause()
        if self.down:
            await self._record(request, 503)
            return web.Response(status=503, text="maintenance")
        tariff_id = request.match_info["tail"].split("/")[2]
        if request.method == "DELETE":
            if self.tariffs.pop(tariff_id, None) is None:
                await self._record(request, 404)
                return envelope(None, 2003, http=404)
            await self._record(request, 200)
            return envelope()
        received = await self._record(request, 200)
        self.tariffs[tariff_id] = received.body
        return envelope()

    async def _tokens_receiver(self, request: web.Request) -> web.StreamResponse:
        """PUT stores a token, PATCH merges into a known one (404 for an unknown one, mod_tokens.md)."""
        await self._pause()
        if self.down:
            await self._record(request, 503)
            return web.Response(status=503, text="maintenance")
        uid = request.match_info["tail"].split("/")[2]
        if request.method == "PATCH" and uid not in self.tokens:
            await self._record(request, 404)
            return envelope(None, 2000, http=404)
        received = await self._record(request, 200)
        self.tokens[uid] = received.body if request.method == "PUT" else {**self.tokens[uid], **received.body}
        return envelope()

    async def _sessions_receiver(self, request: web.Request) -> web.StreamResponse:
        """PUT stores a session, PATCH merges into a known one (404 for an unknown one)."""
        await self._pause()
        if self.down:
            await self._record(request, 503)
            return web.Response(status=503, text="maintenance")
        session_id = request.match_info["tail"].split("/")[2]
        if request.method == "PATCH" and session_id not in self.sessions:
            await self._record(request, 404)
            return envelope(None, 2001, http=404)
        received = await self._record(request, 200)
        known = self.sessions.get(session_id, {})
        self.sessions[session_id] = received.body if request.method == "PUT" else {**known, **received.body}
        return envelope()

    def cdr_url(self, cdr_id: str) -> str:
        """Where it keeps a CDR (its Location header)."""
        return f"{self.base}/emsp/2.1.1/cdrs/{cdr_id}"

    async def _cdrs_receiver(self, request: web.Request) -> web.StreamResponse:
        """POST of a CDR (mod_cdrs.md 2.2.2): stored once by id (a repeated POST of the same CDR is
        answered like the first), with its URL in the Location header."""
        await self._pause()
        if self.down:
            await self._record(request, 503)
            return web.Response(status=503, text="maintenance")
        received = await self._record(request, 200)
        cdr_id = str(received.body["id"])
        if cdr_id in self.refused_cdrs:
            received.answered = 400
            return envelope(status_code=2001, http=400)
        self.cdrs.setdefault(cdr_id, received.body)
        return envelope(headers={"Location": self.cdr_url(cdr_id)})

    async def _tokens_sender(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, 200)
        return envelope(
            copy.deepcopy(self.emsp_tokens), headers={"X-Total-Count": str(len(self.emsp_tokens))}
        )

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        """The eMSP's POST /tokens/{uid}/authorize: pauses as told, then 404 or the stored answer."""
        await self._pause()
        uid = request.match_info["uid"]
        answer = self.authorizations.get(uid)
        await self._record(request, 404 if answer is None else 200)
        if answer is None:
            return envelope(None, 2000, http=404)
        return envelope(answer)

    async def _tariffs_sender(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, 200)
        return envelope(
            copy.deepcopy(self.cpo_tariffs), headers={"X-Total-Count": str(len(self.cpo_tariffs))}
        )

    async def _sender(self, request: web.Request) -> web.StreamResponse:
        if self.answer is not None:
            await self._record(request, 0)
            return await self.answer(request)
        if self.down:
            await self._record(request, 503)
            return web.Response(status=503, text="down")
        await self._record(request, 200)
        offset = int(request.query.get("offset", "0"))
        limit = min(int(request.query.get("limit", "50")), 50)
        page = copy.deepcopy(self.cpo_locations[offset : offset + limit])
        headers = {"X-Total-Count": str(len(self.cpo_locations)), "X-Limit": str(limit)}
        if offset + limit < len(self.cpo_locations):
            query = {**request.query, "offset": str(offset + limit), "limit": str(limit)}
            headers["Link"] = f'<{request.url.with_query(None)}?{urlencode(query)}>; rel="next"'
        return envelope(page, headers=headers)


async def test_fake_partner_keeps_pushed_state_and_can_go_down() -> None:
    """The fake applies PUT/PATCH like a receiver, refuses unknown objects, answers 503 when down."""
    partner = FakePartner()
    await partner.start()
    url = partner.endpoints("EMSP")["locations"] + "/NL/ABC/L1"
    location = {
        "id": "L1",
        "last_updated": "2024-05-01T12:00:00Z",
        "evses": [{"uid": "E1", "status": "AVAILABLE", "last_updated": "2024-05-01T12:00:00Z"}],
    }
    try:
        async with aiohttp.ClientSession() as http:
            async with http.patch(url + "/E1", json={"status": "CHARGING"}) as response:
                assert response.status == 404
            async with http.put(url, json=location) as response:
                assert (await response.json())["status_code"] == 1000
            patch = {"status": "CHARGING", "last_updated": "2024-05-01T12:00:05Z"}
            async with http.patch(url + "/E1", json=patch) as response:
                assert response.status == 200
            partner.down = True
            async with http.put(url, json=location) as response:
                assert response.status == 503
        assert partner.store["L1"]["evses"][0]["status"] == "CHARGING"
        assert partner.store["L1"]["last_updated"] == "2024-05-01T12:00:05Z"
        assert [r.answered for r in partner.pushes(ok_only=False)] == [404, 200, 200, 503]
    finally:
        await partner.stop()
