"""The baseline: a bare aiohttp handler answering the same versions JSON, no auth, no middleware."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from aiohttp import web


async def versions(_: web.Request) -> web.Response:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "data": [{"version": "2.1.1", "url": "http://127.0.0.1/ocpi/2.1.1"}],
        "status_code": 1000,
        "timestamp": now,
    }
    return web.json_response(body)


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/ocpi/versions", versions)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
