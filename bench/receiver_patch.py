"""EVSE status PATCHes into our eMSP locations receiver, as a CPO partner pushes them.

B (eMSP, every service a real process) has A (CPO: gateway + locations, for the handshake and B's
first pull) registered. 50 locations with 4 EVSEs each are PUT through B's receiver with the token A
uses to call B; then bench._patch_load, in its own process, drives
`PATCH /ocpi/emsp/2.1.1/locations/{cc}/{party}/{location}/{evse}` with `{"status", "last_updated"}`
from N concurrent clients for D seconds. Afterwards every EVSE is read back through B's receiver GET
and compared with the last status the load generator saw accepted. The same load generator then
drives a bare aiohttp PATCH handler (bench/_bare_patch.py) on this machine for the ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench._support import cleanup_broker, deployment, settings_of
from bench.common import emit, infrastructure
from shared.ocpi.v2_1_1.codec import to_builtins
from tests.support.deployments import running
from tests.support.http import connect, request
from tests.support.objects import location
from tests.support.servers import free_port, wait_for_port

LOCATIONS = 50
EVSES = ["E1", "E2", "E3", "E4"]
CONCURRENCY = 16
SECONDS = 30.0
WARMUP_SECONDS = 3.0


def patch_load(
    base: str, token: str | None, ids: list[str], seconds: float, final_out: str | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench._patch_load",
        base,
        "--locations",
        ",".join(ids),
        "--evses",
        ",".join(EVSES),
        "--concurrency",
        str(CONCURRENCY),
        "--seconds",
        str(seconds),
    ]
    if token:
        command += ["--token", token]
    if final_out:
        command += ["--final-out", final_out]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 90)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def seed(emsp_url: str, party: str, token: str, ids: list[str]) -> float:
    began = time.perf_counter()
    for location_id in ids:
        body = to_builtins(location(location_id, EVSES))
        reply = await request(
            "PUT", f"{emsp_url}/ocpi/emsp/2.1.1/locations/{party}/{location_id}", token=token, json=body
        )
        assert reply.status_code == 1000, reply
    return time.perf_counter() - began


async def read_back(emsp_url: str, party: str, token: str, final: dict[str, str]) -> dict[str, int]:
    """How many EVSEs hold the last status accepted for them."""
    same = differ = 0
    for key, status in final.items():
        url = f"{emsp_url}/ocpi/emsp/2.1.1/locations/{party}/{key}"
        reply = await request("GET", url, token=token)
        if reply.status_code == 1000 and reply.data.get("status") == status:
            same += 1
        else:
            differ += 1
    return {
        "evses_checked": same + differ,
        "evses_matching_last_accepted_patch": same,
        "evses_differing": differ,
    }


def main() -> None:
    started = time.monotonic()
    load_before = os.getloadavg()
    ids = [f"RP{i:03d}" for i in range(LOCATIONS)]
    with infrastructure() as (amqp, mongo, database):
        a = deployment(amqp, mongo, "NL", "CPA", "CPO")
        b = deployment(amqp, mongo, "DE", "EMB", "EMSP")
        try:
            with running(a, "A ", services=("gateway", "locations")), running(b, "B "):
                _, _, token, _ = asyncio.run(connect(a, b, mongo, "bench"))
                party = f"{a.country_code}/{a.party_id}"
                seed_seconds = asyncio.run(seed(b.public_url, party, token, ids))
                base = f"{b.public_url}/ocpi/emsp/2.1.1/locations/{party}"
                patch_load(base, token, ids, WARMUP_SECONDS, None)
                with tempfile.NamedTemporaryFile("r", suffix=".json") as final_file:
                    ours = patch_load(base, token, ids, SECONDS, final_file.name)
                    final = json.load(final_file)
                check = asyncio.run(read_back(b.public_url, party, token, final))
        finally:
            cleanup_broker(amqp, a, b)
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench._bare_patch", str(port)])
    try:
        wait_for_port("127.0.0.1", port, 20)
        bare_base = f"http://127.0.0.1:{port}/ocpi/emsp/2.1.1/locations/{party}"
        patch_load(bare_base, None, ids, WARMUP_SECONDS, None)
        baseline = patch_load(bare_base, None, ids, 10.0, None)
    finally:
        bare.terminate()
        bare.wait(10)
    emit(
        "receiver_patch",
        server="gateway",
        database=database,
        locations=LOCATIONS,
        evses_per_location=len(EVSES),
        seed="PUT through B's receiver as A",
        seed_seconds=round(seed_seconds, 3),
        concurrency=CONCURRENCY,
        **ours,
        **check,
        **settings_of(b),
    )
    emit("receiver_patch", server="bare_aiohttp", concurrency=CONCURRENCY, **baseline)
    emit(
        "receiver_patch_ratio",
        accepted_throughput_ratio=round(ours["accepted_per_s"] / baseline["accepted_per_s"], 4),
        p50_ratio=round(ours["p50_ms"] / baseline["p50_ms"], 1),
        wall_seconds=round(time.monotonic() - started, 1),
        loadavg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )


if __name__ == "__main__":
    main()
