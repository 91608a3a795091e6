"""The baseline for receiver PATCHes: a bare aiohttp handler that decodes the body and answers 1000.

No auth, no validation, no RPC, no database: what HTTP and JSON alone cost on this machine.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from aiohttp import web


async def patch(request: web.Request) -> web.Response:
    await request.json()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return web.json_response({"status_code": 1000, "timestamp": now})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_patch("/ocpi/emsp/2.1.1/locations/{cc}/{party}/{location}/{evse}", patch)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
