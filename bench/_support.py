"""Helpers shared by the roaming benchmarks: deployments as in the e2e pair, publishing charger events,
matching the pushes a fake eMSP received to the events that set them, waiting, cleanup, stats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import PyMongoError

from bench._fake_emsp import Arrival, FakeEmsp
from bench.load import percentile
from deploy.local_stack import Deployment
from tests.support.cleanup import delete_namespaces
from tests.support.deployments import new_deployment

# As tests/conftest.py's `pair`: production queue type, and the production RPC timeout.
RPC_TIMEOUT_SECONDS = "5"
# Services log warnings only unless BENCH_LOG_LEVEL says otherwise (with TEST_SERVICE_LOG=<file>,
# e.g. info to see the locations service's batch sizes and store/publish times).
LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "warning")
Key = tuple[str, str, str, str]  # location, evse, status, last_updated


def deployment(amqp: str, mongo: str, country_code: str, party_id: str, roles: str) -> Deployment:
    """A deployment like the e2e pair's (quorum queues), logging warnings only, production RPC timeout."""
    d = new_deployment(amqp, mongo, country_code, party_id, roles)
    d.extra_env["OCPI_QUEUE_TYPE"] = "quorum"
    d.extra_env["LOG_LEVEL"] = LOG_LEVEL
    d.extra_env["RPC_TIMEOUT_SECONDS"] = RPC_TIMEOUT_SECONDS
    return d


def settings_of(*deployments: Deployment) -> dict[str, Any]:
    """What the figures say about how the deployments were configured."""
    first = deployments[0].extra_env
    return {
        "queue_type": first.get("OCPI_QUEUE_TYPE"),
        "log_level": first.get("LOG_LEVEL"),
        "rpc_timeout_seconds": float(first.get("RPC_TIMEOUT_SECONDS", "5")),
    }


def cleanup_broker(amqp: str, *deployments: Deployment) -> None:
    """Delete the quorum queues and exchanges the deployments declared (they outlive the processes)."""
    with contextlib.suppress(Exception):
        asyncio.run(delete_namespaces(amqp, {d.namespace for d in deployments}))


def stats_ms(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of durations given in seconds, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {name: float("nan") for name in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def pushed_states(arrival: Arrival) -> list[Key]:
    """The EVSE states one receiver call carries: one for a PATCH/PUT of an EVSE, all for a location PUT."""
    parts = arrival.path.split("/")  # cc, party, location[, evse[, connector]]
    body = arrival.body or {}
    if len(parts) == 4 and "status" in body:
        return [(parts[2], parts[3], body["status"], body.get("last_updated", ""))]
    if len(parts) == 3 and arrival.method == "PUT":
        return [(parts[2], e["uid"], e["status"], e["last_updated"]) for e in body.get("evses") or []]
    return []


def request_kind(arrival: Arrival) -> str:
    """The method and what the URL names: "PATCH evse", "PUT evse", "PUT location", ..."""
    return f"{arrival.method} {'location' if arrival.path.count('/') == 2 else 'evse'}"


def request_kinds(arrivals: list[Arrival]) -> dict[str, int]:
    """How many receiver calls of each kind."""
    kinds: dict[str, int] = defaultdict(int)
    for arrival in arrivals:
        kinds[request_kind(arrival)] += 1
    return dict(kinds)


async def run_publisher(
    amqp: str,
    namespace: str,
    evses: list[tuple[str, str]],
    rate: float,
    seconds: float,
    start_index: int,
    out: str,
) -> dict[str, Any]:
    """bench._publisher in its own process; its summary line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._publisher",
        amqp,
        namespace,
        "--evses",
        ",".join(f"{loc}/{uid}" for loc, uid in evses),
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--start-index",
        str(start_index),
        "--out",
        out,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    except AssertionError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"publisher exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


def read_events(path: str) -> list[list[Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


async def wait_delivered(fake: FakeEmsp, events: list[list[Any]], seconds: float) -> tuple[bool, float]:
    """Until the newest event of every EVSE reached the fake (or `seconds` passed)."""
    last: dict[tuple[str, str], Key] = {}
    for loc, uid, status, at, _ in events:
        last[(loc, uid)] = (loc, uid, status, at)
    wanted = set(last.values())
    seen: set[Key] = set()
    checked = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for arrival in fake.arrivals[checked:]:
            seen.update(pushed_states(arrival))
        checked = len(fake.arrivals)
        if wanted <= seen:
            return True, time.monotonic() - started
        await asyncio.sleep(0.2)
    return False, time.monotonic() - started


def analyse(events: list[list[Any]], arrivals: list[Arrival]) -> dict[str, Any]:
    index: dict[Key, tuple[int, float]] = {}  # key -> (position among its EVSE's events, publish time)
    per_evse: dict[tuple[str, str], int] = defaultdict(int)
    ambiguous = 0
    for loc, uid, status, at, sent in events:
        key = (loc, uid, status, at)
        if key in index:
            ambiguous += 1
        index[key] = (per_evse[(loc, uid)], sent)
        per_evse[(loc, uid)] += 1
    last_done: dict[tuple[str, str], int] = {}
    latencies: list[float] = []
    by_window: dict[int, list[float]] = defaultdict(list)
    first_sent = min((e[4] for e in events), default=0.0)
    coalesced = unmatched = repeated = out_of_order = 0
    for arrival in arrivals:
        for key in pushed_states(arrival):
            found = index.get(key)
            if found is None:
                unmatched += 1  # a state no measured event set (initial state, warm-up)
                continue
            position, sent = found
            evse = (key[0], key[1])
            previous = last_done.get(evse, -1)
            if position == previous:
                repeated += 1  # an unchanged EVSE inside a location PUT
                continue
            if position < previous:
                out_of_order += 1  # an older state after a newer one
                continue
            coalesced += position - previous - 1
            last_done[evse] = position
            latencies.append(arrival.at - sent)
            by_window[int((sent - first_sent) // 10) * 10].append(arrival.at - sent)
    undelivered = sum(count - 1 - last_done.get(evse, -1) for evse, count in per_evse.items())
    freshness = freshness_latencies(events, arrivals, index)
    return {
        "events_delivered_as_newest": len(latencies),
        "events_coalesced": coalesced,
        "events_undelivered": undelivered,
        "ordering_violations": out_of_order,
        "ambiguous_event_keys": ambiguous,
        "states_unmatched": unmatched,
        "states_repeated": repeated,
        "requests_by_kind": request_kinds(arrivals),
        "latency": stats_ms(latencies),
        "latency_until_partner_at_least_as_new_all_events": censored_stats_ms(freshness),
        "latency_p50_p99_ms_by_10s_of_publish": {
            str(k): [stats_ms(v)["p50_ms"], stats_ms(v)["p99_ms"]] for k, v in sorted(by_window.items())
        },
    }


def freshness_latencies(
    events: list[list[Any]], arrivals: list[Arrival], index: dict[Key, tuple[int, float]]
) -> list[float]:
    """Per event: publish -> first push that left the partner with this state or a newer one (inf: never)."""
    reached: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)  # (arrival, position so far)
    for arrival in arrivals:
        for key in pushed_states(arrival):
            found = index.get(key)
            if found is None:
                continue
            steps = reached[(key[0], key[1])]
            best = max(found[0], steps[-1][1]) if steps else found[0]
            steps.append((arrival.at, best))
    latencies = []
    for loc, uid, status, at, sent in events:
        position = index[(loc, uid, status, at)][0]
        when = next((t for t, best in reached.get((loc, uid), []) if best >= position), None)
        latencies.append(float("inf") if when is None else when - sent)
    return latencies


def censored_stats_ms(values: list[float]) -> dict[str, Any]:
    """Percentiles over every event; one that never reached the partner counts as infinitely late (null)."""
    ordered = sorted(values)
    if not ordered:
        return {}

    def ms(fraction: float) -> float | None:
        value = percentile(ordered, fraction)
        return None if value == float("inf") else round(value * 1000, 3)

    return {
        "p50_ms": ms(0.50),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
        "within_1s": round(sum(v <= 1.0 for v in ordered) / len(ordered), 4),
        "within_10s": round(sum(v <= 10.0 for v in ordered) / len(ordered), 4),
        "never": round(sum(v == float("inf") for v in ordered) / len(ordered), 4),
    }


def evse_states(fakes: Sequence[FakeEmsp]) -> list[set[tuple[str, str]]]:
    """Per fake: the EVSEs (location, uid) it received some state of."""
    return [
        {(key[0], key[1]) for arrival in fake.arrivals for key in pushed_states(arrival)} for fake in fakes
    ]


async def wait_has_evses(
    fakes: Sequence[FakeEmsp], evses: Sequence[tuple[str, str]], seconds: float
) -> tuple[bool, float]:
    """Until every fake received a state of every EVSE (or `seconds` passed); whether, and how long."""
    wanted = set(evses)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if all(wanted <= has for has in evse_states(fakes)):
            return True, time.monotonic() - started
        await asyncio.sleep(0.2)
    return False, time.monotonic() - started


async def wait_quiet(fakes: Sequence[FakeEmsp], quiet: float, seconds: float) -> tuple[bool, float]:
    """Until no fake received a call for `quiet` seconds (or `seconds` passed); whether, and how long."""
    started = time.monotonic()
    count = sum(len(fake.arrivals) for fake in fakes)
    changed = started
    while (now := time.monotonic()) - started < seconds:
        current = sum(len(fake.arrivals) for fake in fakes)
        if current != count:
            count, changed = current, now
        elif now - changed >= quiet:
            return True, now - started
        await asyncio.sleep(0.1)
    return False, time.monotonic() - started


OPCOUNTERS = ("insert", "query", "update", "delete", "getmore", "command")
# `top` sections per collection (mongod's names), reported when they changed.
TOP_SECTIONS = ("queries", "getmore", "insert", "update", "remove", "commands")


class NoOpcounters(Exception):
    """The database server's serverStatus has no opcounters: nothing to measure with."""


class _Sent(monitoring.CommandListener):
    """Counts the commands this client sends (each is counted by the server too)."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class _Beats(monitoring.ServerHeartbeatListener):
    """Counts this client's heartbeats (a hello each, a `command` for the server)."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
        self.count += 1

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        pass


@dataclass(frozen=True)
class Counters:
    """One reading of the server's operation counters."""

    at: float  # time.monotonic() when the reply came
    ops: dict[str, int]  # serverStatus opcounters
    collections: dict[str, dict[str, int]]  # `top` counts per collection and section
    own: int  # commands of the reading client so far, this serverStatus included


@dataclass(frozen=True)
class Delta:
    """What happened on the server between two readings, the reading client's own commands left out."""

    seconds: float
    ops: dict[str, int]
    own_commands: int
    collections: dict[str, dict[str, int]]

    @property
    def total(self) -> int:
        return sum(self.ops.values())


class DbCounters:
    """The database server's own operation counters: serverStatus `opcounters`, and `top` per collection.

    The reading client adds one known command per reading (serverStatus counts itself; `top` lands in
    the next delta) and its heartbeats, all counted here and subtracted from `command`. Its heartbeat
    is every 10 minutes, so that it sends none during a measurement.
    """

    def __init__(self, url: str) -> None:
        self._sent = _Sent()
        self._beats = _Beats()
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, heartbeatFrequencyMS=600_000, event_listeners=[self._sent, self._beats]
        )

    async def close(self) -> None:
        await self.client.close()

    async def server(self) -> dict[str, Any]:
        """Which server answers, or NoOpcounters (with the serverStatus fields it has instead)."""
        status = await self.client.admin.command("serverStatus")
        if not isinstance(status.get("opcounters"), dict):
            raise NoOpcounters(f"serverStatus has no opcounters; its fields: {sorted(status)}")
        return {
            "version": status.get("version"),
            "secantus": status.get("secantus"),
            "storage_engine": (status.get("storageEngine") or {}).get("name"),
            "persistent": (status.get("storageEngine") or {}).get("persistent"),
        }

    async def read(self) -> Counters:
        status = await self.client.admin.command("serverStatus")
        at = time.monotonic()
        own = self._sent.count + self._beats.count
        collections: dict[str, dict[str, int]] = {}
        with contextlib.suppress(PyMongoError):
            totals = (await self.client.admin.command("top"))["totals"]
            collections = {
                ns: {section: int(value[section]["count"]) for section in TOP_SECTIONS}
                for ns, value in totals.items()
                if isinstance(value, dict)
            }
        return Counters(at, {k: int(status["opcounters"].get(k, 0)) for k in OPCOUNTERS}, collections, own)


def counters_delta(before: Counters, after: Counters, prefix: str = "") -> Delta:
    """`after` - `before`; collections named without `prefix`, only those that changed."""
    own = after.own - before.own
    ops = {k: after.ops[k] - before.ops[k] for k in OPCOUNTERS}
    ops["command"] -= own
    collections: dict[str, dict[str, int]] = {}
    for ns, sections in sorted(after.collections.items()):
        old = before.collections.get(ns, {})
        changed = {s: n - old.get(s, 0) for s, n in sections.items() if n != old.get(s, 0)}
        if changed:
            collections[ns.removeprefix(prefix)] = changed
    return Delta(after.at - before.at, ops, own, collections)
