"""GET /ocpi/versions through our gateway (auth, middleware, envelope) against a bare aiohttp handler.

Both servers run on this machine in the same run, each driven by the same separate load process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bench.common import emit, infrastructure, run_load
from tests.support.deployments import new_deployment, running
from tests.support.http import add_partner
from tests.support.servers import free_port, wait_for_port

SECONDS = 10.0
CONCURRENCY = 32


def main() -> None:
    with infrastructure() as (amqp, mongo, database):
        deployment = new_deployment(amqp, mongo, "NL", "BEN", "CPO")
        deployment.extra_env["LOG_LEVEL"] = "warning"
        with running(deployment, "bench ", services=("gateway",)):
            token = asyncio.run(add_partner(deployment, "bench", "DE", "BEN", "EMSP"))
            url = f"{deployment.public_url}/ocpi/versions"
            run_load(url, token, CONCURRENCY, 2.0)  # warm-up: token cache, connections
            ours = run_load(url, token, CONCURRENCY, SECONDS)
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "bench.bare_server", str(port)])
        try:
            wait_for_port("127.0.0.1", port, 20)
            bare_url = f"http://127.0.0.1:{port}/ocpi/versions"
            run_load(bare_url, None, CONCURRENCY, 2.0)
            baseline = run_load(bare_url, None, CONCURRENCY, SECONDS)
        finally:
            bare.terminate()
            bare.wait(10)
        emit("gateway_versions", server="gateway", database=database, concurrency=CONCURRENCY, **ours)
        emit("gateway_versions", server="bare_aiohttp", concurrency=CONCURRENCY, **baseline)
        emit(
            "gateway_versions_ratio",
            throughput_ratio=round(ours["rps"] / baseline["rps"], 3),
            p99_ratio=round(ours["p99_ms"] / baseline["p99_ms"], 3),
        )


if __name__ == "__main__":
    main()
