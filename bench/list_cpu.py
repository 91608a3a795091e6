"""CPU cost of a page of the Sender list (GET /ocpi/cpo/2.1.1/{locations,tariffs}?limit=50), from /proc.

One deployment A (CPO: gateway, locations and tariffs services as real processes; no dispatcher, so
nothing is pushed while we measure) and one fake eMSP (bench/_fake_emsp.py) registered with A the way
a partner registers, whose token the requests carry. 500 locations (1 to 4 EVSEs each) are created by
LocationUpsert events, 500 tariffs by TariffUpsert events; we wait until the list counts them all.

Per module: --warmup requests (not measured); then the processes' CPU over --idle-seconds with
nothing sent (their own timers, heartbeats, pollers); then --requests sequential GETs of 50 objects
each, following the Link header and starting over at the first page after the last (--paging link),
or at offsets cycling through the list (--paging offset), on one keep-alive connection.

CPU is read before and after from /proc/<pid>/stat (utime + stime, fields 14 and 15, in clock ticks
of SC_CLK_TCK; every thread of the process), and from /proc/<pid>/task/*/schedstat (nanoseconds on
a CPU, summed over the threads alive at the reading; finer than ticks). Reported raw (delta / requests)
and idle-corrected (delta - idle rate x elapsed) / requests. The gateway is measured with the module's
service (locations or tariffs); the in-memory database server too when it is our child process.

--modules locations measures the locations list only (for code that has no tariffs service).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import itertools
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench._fake_emsp import FakeEmsp
from bench._support import cleanup_broker, deployment, settings_of, stats_ms
from bench.common import emit, infrastructure
from deploy.local_stack import Deployment
from shared.contracts.locations import LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.support.deployments import running
from tests.support.objects import event_id, location, publish

CLK_TCK = os.sysconf("SC_CLK_TCK")
LIMIT = 50
LOAD_SECONDS = 120.0
CHUNKS = 5  # the measured requests in this many equal parts: the spread within one run


@dataclass(frozen=True)
class Cpu:
    """One reading of a process's CPU time."""

    ticks: int  # utime + stime, in clock ticks
    ns: int  # sum of the threads' schedstat run time


def stat_ticks(pid: int) -> int:
    """utime + stime (fields 14 and 15 of /proc/<pid>/stat; the name in field 2 may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields[0] is field 3 (state)


def sched_ns(pid: int) -> int:
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def read_cpu(pids: dict[str, int]) -> dict[str, Cpu]:
    return {name: Cpu(stat_ticks(pid), sched_ns(pid)) for name, pid in pids.items()}


def database_pid() -> int | None:
    """The SecantusDB process infrastructure() started as our child, if it did."""
    me = os.getpid()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            pid = int(stat.split("/")[2])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"secantus" in f.read():
                    return pid
        except (OSError, ValueError, IndexError):
            continue
    return None


def ms_per_request(before: Cpu, after: Cpu, requests: int) -> dict[str, float]:
    return {
        "stat_ms": round((after.ticks - before.ticks) * 1000 / CLK_TCK / requests, 4),
        "schedstat_ms": round((after.ns - before.ns) / 1e6 / requests, 4),
    }


def idle_corrected(
    before: Cpu, after: Cpu, requests: int, seconds: float, idle: dict[str, float]
) -> dict[str, float]:
    """ms per request once the idle rate (ms of CPU per second) over `seconds` is taken out."""
    stat = (after.ticks - before.ticks) * 1000 / CLK_TCK - idle["stat_ms_per_s"] * seconds
    sched = (after.ns - before.ns) / 1e6 - idle["schedstat_ms_per_s"] * seconds
    return {"stat_ms": round(stat / requests, 4), "schedstat_ms": round(sched / requests, 4)}


class Pager:
    """The URLs of successive pages: the Link chain from the first page, again from the start at its
    end; or offsets 0, 50, ... cycling through `total` objects."""

    def __init__(self, base: str, paging: str, total: int) -> None:
        self.first = f"{base}?limit={LIMIT}"
        self.base = base
        self.paging = paging
        self.total = total
        self.next: str | None = None
        self.count = 0
        self.wraps = 0

    def url(self) -> str:
        if self.paging == "offset":
            offset = (self.count * LIMIT) % self.total
            return f"{self.base}?offset={offset}&limit={LIMIT}"
        return self.next or self.first

    def seen(self, response: aiohttp.ClientResponse) -> None:
        self.count += 1
        if self.paging == "link":
            link = response.links.get("next")
            self.next = str(link["url"]) if link else None
            if self.next is None:
                self.wraps += 1


async def get_page(session: aiohttp.ClientSession, pager: Pager, token: str) -> tuple[float, int]:
    """One page: (seconds, objects in it); an error is raised, never measured."""
    headers = {"Authorization": f"Token {token}"}
    started = time.perf_counter()
    async with session.get(pager.url(), headers=headers) as response:
        body = await response.json(content_type=None)
        took = time.perf_counter() - started
        if response.status != 200 or body.get("status_code") != 1000:
            raise RuntimeError(f"HTTP {response.status}: {str(body)[:300]}")
        pager.seen(response)
        return took, len(body.get("data") or [])


async def wait_listed(url: str, token: str, count: int) -> float:
    """Until the list's X-Total-Count says `count`; the seconds it took."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < LOAD_SECONDS:
            async with session.get(f"{url}?limit=1", headers={"Authorization": f"Token {token}"}) as r:
                if r.status == 200 and r.headers.get("X-Total-Count") == str(count):
                    return time.monotonic() - started
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} did not list {count} objects within {LOAD_SECONDS} s")


async def measure(
    url: str, token: str, pids: dict[str, int], total: int, args: argparse.Namespace
) -> dict[str, Any]:
    pager = Pager(url, args.paging, total)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as s:
        for _ in range(args.warmup):
            await get_page(s, pager, token)
        # Idle: what the processes spend with nothing asked of them.
        idle_before, idle_at = read_cpu(pids), time.monotonic()
        await asyncio.sleep(args.idle_seconds)
        idle_after, idle_seconds = read_cpu(pids), time.monotonic() - idle_at
        idle = {
            name: {
                "stat_ms_per_s": (idle_after[name].ticks - idle_before[name].ticks)
                * 1000
                / CLK_TCK
                / idle_seconds,
                "schedstat_ms_per_s": (idle_after[name].ns - idle_before[name].ns) / 1e6 / idle_seconds,
            }
            for name in pids
        }
        times: list[float] = []
        objects = 0
        readings = [(0, read_cpu(pids))]  # (requests done, CPU then)
        began = time.monotonic()
        chunk = max(1, args.requests // CHUNKS)
        for i in range(args.requests):
            took, n = await get_page(s, pager, token)
            times.append(took)
            objects += n
            if (i + 1) % chunk == 0 and i + 1 < args.requests:
                readings.append((i + 1, read_cpu(pids)))
        seconds = time.monotonic() - began
        readings.append((args.requests, read_cpu(pids)))
    first, last = readings[0][1], readings[-1][1]
    requests = args.requests
    per_process = {
        name: {
            "raw": ms_per_request(first[name], last[name], requests),
            "idle_corrected": idle_corrected(first[name], last[name], requests, seconds, idle[name]),
            "idle_ms_per_s": {k: round(v, 3) for k, v in idle[name].items()},
        }
        for name in pids
    }
    pair = [name for name in pids if name != "database"]
    together = {
        kind: {
            unit: round(sum(per_process[name][kind][unit] for name in pair), 4)
            for unit in ("stat_ms", "schedstat_ms")
        }
        for kind in ("raw", "idle_corrected")
    }
    by_chunk = [
        round(sum(b[name].ns - a[name].ns for name in pair) / 1e6 / (m - n), 4)
        for (n, a), (m, b) in itertools.pairwise(readings)
    ]
    return {
        "requests": requests,
        "limit": LIMIT,
        "paging": args.paging,
        "objects_per_page": round(objects / requests, 2),
        "list_wraps": pager.wraps,
        "warmup_requests": args.warmup,
        "seconds": round(seconds, 3),
        "idle_seconds": round(idle_seconds, 3),
        "cpu_ms_per_request": per_process,
        "cpu_ms_per_request_together": together,
        "together_is": "+".join(pair),
        "together_schedstat_ms_per_request_by_chunk": by_chunk,
        "wall": stats_ms(times),
        "clk_tck": CLK_TCK,
    }


async def load_locations(broker: Broker, count: int) -> None:
    for i in range(count):
        uids = [f"E{j + 1}" for j in range(1 + i % 4)]
        await publish(broker, LocationUpsert(event_id=event_id(), location=location(f"CPU{i:04d}", uids)))


async def load_tariffs(broker: Broker, count: int) -> None:
    # Imported here: code without a tariffs module can still measure its locations list.
    from shared.contracts.tariffs import TariffUpsert
    from tests.support.objects import tariff

    for i in range(count):
        message = TariffUpsert(event_id=event_id(), tariff=tariff(f"T{i:04d}", price=0.20 + i % 10 / 100))
        await publish(broker, message)


async def scenario(
    a: Deployment, amqp: str, pids: dict[str, int], db_pid: int | None, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    broker = Broker(amqp, Topology(a.namespace, queue_type="quorum"))
    fake = FakeEmsp("DE", "CPU")
    results: dict[str, dict[str, Any]] = {}
    try:
        await broker.connect()
        await fake.start()
        token = await fake.register_with(a, "fake-emsp-cpu")
        for module in args.modules:
            url = f"{a.public_url}/ocpi/cpo/2.1.1/{module}"
            if module == "locations":
                await load_locations(broker, args.objects)
            else:
                await load_tariffs(broker, args.objects)
            loaded = await wait_listed(url, token, args.objects)
            measured = {"gateway": pids["gateway"], module: pids[module]}
            if db_pid is not None:
                measured["database"] = db_pid
            result = await measure(url, token, measured, args.objects, args)
            results[module] = {"objects": args.objects, "seconds_until_listed": round(loaded, 3), **result}
        return results
    finally:
        await fake.stop()
        await broker.close()


def summary(module: str, result: dict[str, Any]) -> str:
    cpu = result["cpu_ms_per_request"]
    parts = [f"{name} {v['raw']['stat_ms']:.3f}" for name, v in cpu.items()]
    together = result["cpu_ms_per_request_together"]
    raw, corrected = together["raw"], together["idle_corrected"]
    return (
        f"{module}: CPU ms/request (stat, raw) {', '.join(parts)}; together "
        f"{raw['stat_ms']:.3f} raw, {corrected['stat_ms']:.3f} idle-corrected "
        f"(schedstat {raw['schedstat_ms']:.3f} / {corrected['schedstat_ms']:.3f}); "
        f"wall p50 {result['wall']['p50_ms']:.3f} ms, p99 {result['wall']['p99_ms']:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per module")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--objects", type=int, default=500, help="locations, and tariffs")
    parser.add_argument("--paging", choices=("link", "offset"), default="link")
    parser.add_argument("--modules", default="locations,tariffs", help="comma-separated")
    args = parser.parse_args()
    args.modules = [m for m in args.modules.split(",") if m]
    if not set(args.modules) <= {"locations", "tariffs"} or not args.modules:
        parser.error("--modules: locations and/or tariffs")
    if not 1 <= args.requests <= 20_000 or not LIMIT <= args.objects <= 5_000:
        parser.error("--requests within 1..20000, --objects within 50..5000")
    started = time.monotonic()
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        db_pid = database_pid()
        a = deployment(amqp, mongo, "NL", "CPA", "CPO")
        try:
            with running(a, "A ", services=("gateway", *args.modules)) as stack:
                pids = {name: proc.pid for name, proc in stack.processes.items()}
                results = asyncio.run(scenario(a, amqp, pids, db_pid, args))
        finally:
            cleanup_broker(amqp, a)
    load_after = os.getloadavg()
    for module, result in results.items():
        print(summary(module, result), flush=True)
        emit(
            "list_cpu",
            module=module,
            database=database,
            **settings_of(a),
            **result,
            loadavg_1m_before_after=[round(load_before[0], 2), round(load_after[0], 2)],
            wall_seconds=round(time.monotonic() - started, 1),
        )


if __name__ == "__main__":
    main()
