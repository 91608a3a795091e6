"""A minimal real OCPI 2.1.1 eMSP peer on a loopback port: it registers with a CPO and records pushes.

It serves its versions and 2.1.1 version details (credentials + locations receiver), answers every
locations receiver call with 1000, and stamps each arrival with time.time() before reading the body.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from deploy.local_stack import Deployment
from tests.support.http import add_partner, request
from tests.support.servers import free_port


def _envelope(data: Any = None, status_code: int = 1000, http: int = 200) -> web.Response:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return web.json_response({"data": data, "status_code": status_code, "timestamp": now}, status=http)


@dataclass
class Arrival:
    at: float  # time.time() when the request reached the handler
    method: str
    path: str  # after /ocpi/emsp/2.1.1/locations/
    body: Any


class FakeEmsp:
    def __init__(self, country_code: str = "DE", party_id: str = "FAK") -> None:
        self.country_code = country_code
        self.party_id = party_id
        self.port = free_port()
        self.token_for_cpo = uuid.uuid4().hex  # the token the CPO calls us with
        self.token_for_us: str | None = None  # the token we call the CPO with, after registering
        self.arrivals: list[Arrival] = []
        self.unauthorized = 0
        self.bad_bodies = 0
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocpi"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ocpi/versions", self._versions)
        app.router.add_get("/ocpi/2.1.1", self._details)
        app.router.add_route("*", "/ocpi/2.1.1/credentials", self._credentials)
        app.router.add_route("*", "/ocpi/emsp/2.1.1/locations/{tail:.*}", self._receiver)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, request: web.Request) -> bool:
        ok = request.headers.get("Authorization", "") == f"Token {self.token_for_cpo}"
        if not ok:
            self.unauthorized += 1
        return ok

    async def _versions(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _envelope(None, 2000, http=401)
        return _envelope([{"version": "2.1.1", "url": f"{self.base}/2.1.1"}])

    async def _details(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _envelope(None, 2000, http=401)
        endpoints = [
            {"identifier": "credentials", "url": f"{self.base}/2.1.1/credentials"},
            {"identifier": "locations", "url": f"{self.base}/emsp/2.1.1/locations"},
        ]
        return _envelope({"version": "2.1.1", "endpoints": endpoints})

    async def _credentials(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _envelope(None, 2000, http=401)
        return _envelope(self.credentials())

    async def _receiver(self, request: web.Request) -> web.Response:
        arrived = time.time()
        if not self._authorized(request):
            return _envelope(None, 2000, http=401)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self.bad_bodies += 1
            return _envelope(None, 2001, http=400)
        self.arrivals.append(Arrival(arrived, request.method, request.match_info["tail"], body))
        return _envelope()

    def credentials(self) -> dict[str, Any]:
        return {
            "token": self.token_for_cpo,
            "url": f"{self.base}/versions",
            "business_details": {"name": "bench fake eMSP"},
            "party_id": self.party_id,
            "country_code": self.country_code,
        }

    async def register_with(self, cpo: Deployment, name: str) -> str:
        """The CPO's operator adds us as an eMSP; we register with its TOKEN_A, as a partner would."""
        token_a = await add_partner(cpo, name, self.country_code, self.party_id, "EMSP")
        versions = await request("GET", f"{cpo.public_url}/ocpi/versions", token=token_a)
        assert versions.status_code == 1000, versions
        detail_url = next(v["url"] for v in versions.data if v["version"] == "2.1.1")
        detail = await request("GET", detail_url, token=token_a)
        assert detail.status_code == 1000, detail
        credentials_url = next(e["url"] for e in detail.data["endpoints"] if e["identifier"] == "credentials")
        reply = await request("POST", credentials_url, token=token_a, json=self.credentials())
        assert reply.status_code == 1000, reply
        self.token_for_us = str(reply.data["token"])
        return self.token_for_us
