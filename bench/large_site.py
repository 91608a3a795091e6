"""A large site under load: one location with 40 EVSEs, 200 EVSE status changes per second.

One deployment A (CPO, every service a real process) and one fake eMSP (bench/_fake_emsp.py, in this
process) registered with A the way a partner registers. The site is loaded as an operator loads it:
`ocpi-admin locations load FILE` (POST /admin/locations on A's admin port). After a short warm-up, a
separate process publishes EvseStatusSet events at --rate for --seconds, spread round-robin over
the EVSEs (statuses cycle, so each event is a real change).

Reported: the calls the fake received by kind (EVSE PATCH, EVSE PUT, location PUT), the PATCH share,
and the latency from publish to arrival, matched as bench/push_latency.py matches it (per pushed EVSE
state, the newest event it carries; see bench._support.analyse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._fake_emsp import FakeEmsp
from bench._support import (
    analyse,
    cleanup_broker,
    deployment,
    read_events,
    run_publisher,
    settings_of,
    wait_delivered,
    wait_has_evses,
    wait_quiet,
)
from bench.common import emit, infrastructure
from deploy.local_stack import Deployment
from shared.ocpi.v2_1_1.codec import to_builtins
from tests.support.deployments import running
from tests.support.objects import location

LOCATION_ID = "SITE001"
WARMUP_RATE = 20.0  # events/s for --warmup seconds before the measured run


def admin_cli() -> str:
    """The `ocpi-admin` the installation put next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name("ocpi-admin")
    found = str(beside) if beside.exists() else shutil.which("ocpi-admin")
    if found is None:
        raise RuntimeError("ocpi-admin is not installed (make install)")
    return found


def write_site(directory: str, uids: list[str]) -> str:
    """The file an operator loads: a JSON list with the one location."""
    path = os.path.join(directory, "site.json")
    with open(path, "w") as f:
        json.dump([to_builtins(location(LOCATION_ID, uids))], f)
    return path


async def load_site(a: Deployment, path: str) -> Any:
    """`ocpi-admin locations load FILE` against A's admin API; what it printed."""
    proc = await asyncio.create_subprocess_exec(
        admin_cli(),
        "--url",
        a.admin_url,
        "--token",
        a.admin_token,
        "locations",
        "load",
        path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 90)
    if proc.returncode != 0:
        raise RuntimeError(f"ocpi-admin exited with {proc.returncode}: {stderr.decode().strip()}")
    return json.loads(stdout)


async def scenario(a: Deployment, amqp: str, args: argparse.Namespace) -> dict[str, Any]:
    fake = FakeEmsp()
    tmp = tempfile.mkdtemp(prefix="large_site_")
    try:
        await fake.start()
        await fake.register_with(a, "fake-emsp")
        uids = [f"E{j + 1:02d}" for j in range(args.evses)]
        evses = [(LOCATION_ID, uid) for uid in uids]
        site = write_site(tmp, uids)
        created = time.monotonic()
        loaded = await load_site(a, site)
        has_all, _ = await wait_has_evses([fake], evses, 60)
        if not has_all:
            raise RuntimeError("the fake did not get every EVSE of the site within 60 s")
        setup: dict[str, Any] = {
            "locations": 1,
            "evses": len(evses),
            "loaded_with": "ocpi-admin locations load FILE (POST /admin/locations)",
            "ocpi_admin_printed": loaded,
            "seconds_until_fake_has_every_evse": round(time.monotonic() - created, 3),
        }
        # Warm-up (connections, caches), then a clean slate.
        warm_file = os.path.join(tmp, "warm.jsonl")
        warm = await run_publisher(amqp, a.namespace, evses, WARMUP_RATE, args.warmup, 0, warm_file)
        warm_drained, _ = await wait_delivered(fake, read_events(warm_file), 30)
        await wait_quiet([fake], 1.0, 10)
        setup.update(warmup_events=warm["events"], warmup_drained=warm_drained)
        fake.arrivals.clear()

        out = os.path.join(tmp, "events.jsonl")
        published = await run_publisher(
            amqp, a.namespace, evses, args.rate, args.seconds, warm["events"], out
        )
        events = read_events(out)
        drained, drain_s = await wait_delivered(fake, events, args.drain_seconds)
        arrivals = list(fake.arrivals)
        result = analyse(events, arrivals)
        kinds = result["requests_by_kind"]
        patches = kinds.get("PATCH evse", 0)
        return {
            "setup": setup,
            "publisher": published,
            "events_sent": len(events),
            "drained": drained,
            "seconds_after_publishing_until_drained": round(drain_s, 3) if drained else None,
            "drain_deadline_seconds": args.drain_seconds,
            "pushes_received": len(arrivals),
            "evse_patches": patches,
            "evse_puts": kinds.get("PUT evse", 0),
            "location_puts": kinds.get("PUT location", 0),
            "patch_share_pct": round(100 * patches / len(arrivals), 1) if arrivals else None,
            "events_per_push": round(len(events) / len(arrivals), 2) if arrivals else None,
            "fake_errors": {"unauthorized": fake.unauthorized, "bad_bodies": fake.bad_bodies},
            **result,
        }
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evses", type=int, default=40)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    args = parser.parse_args()
    if args.rate / args.evses >= 7:
        # (location, evse, status, at) names one event only below 7 events per EVSE per second.
        parser.error("--rate / --evses must stay below 7")
    started = time.monotonic()
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        a = deployment(amqp, mongo, "NL", "CPA", "CPO")
        try:
            with running(a, "A "):
                result = asyncio.run(scenario(a, amqp, args))
        finally:
            cleanup_broker(amqp, a)
    emit(
        "large_site",
        database=database,
        rate_per_s=args.rate,
        seconds=args.seconds,
        partners_pushed_to=["fake eMSP (aiohttp, this process)"],
        **settings_of(a),
        **result,
        wall_seconds=round(time.monotonic() - started, 1),
        loadavg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )
    if result["ordering_violations"]:
        sys.exit(1)  # the partner received an older state after a newer one: a bug, not a figure


if __name__ == "__main__":
    main()
