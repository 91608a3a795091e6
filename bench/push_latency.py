"""Latency from a charger event on A's broker to the PATCH arriving at an eMSP partner's HTTP server.

A (CPO) and B (eMSP) run every service as real processes and are connected by the credentials
handshake. N locations with 4 EVSEs each are created on A by LocationUpsert events and reach B.
A fake eMSP (a real aiohttp OCPI peer in this process, see bench/_fake_emsp.py) then registers with
A the way a partner does (TOKEN_A from A's operator, credentials POST, A fetches its versions and
details), so A's dispatcher pushes to B and to the fake. A separate process publishes EvseStatusSet
events at a fixed rate; the fake stamps every push on arrival.

Each pushed EVSE state (a PATCH, or one EVSE of a location PUT) is matched to the event that set it
by (location, evse, status, last_updated); its latency is arrival - publish of that event, i.e. of
the newest event the push carries. Events of the same EVSE that were superseded before a push went
out are counted as coalesced; events whose state never arrived before the drain deadline are
counted as undelivered. A pushed state older than one already delivered is an ordering violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

import aio_pika

from bench._fake_emsp import Arrival, FakeEmsp
from bench._support import cleanup_broker, deployment, settings_of, stats_ms
from bench.common import emit, infrastructure
from bench.load import percentile
from deploy.local_stack import Deployment
from shared.contracts.locations import LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.support.deployments import running
from tests.support.http import connect, request
from tests.support.objects import event_id, location, publish
from tests.support.waiting import eventually

EVSES_PER_LOCATION = 4
WARMUP_RATE = 20.0  # events/s for --warmup seconds before the measured run
Key = tuple[str, str, str, str]  # location, evse, status, last_updated


def pushed_states(arrival: Arrival) -> list[Key]:
    """The EVSE states one receiver call carries: one for a PATCH/PUT of an EVSE, all for a location PUT."""
    parts = arrival.path.split("/")  # cc, party, location[, evse[, connector]]
    body = arrival.body or {}
    if len(parts) == 4 and "status" in body:
        return [(parts[2], parts[3], body["status"], body.get("last_updated", ""))]
    if len(parts) == 3 and arrival.method == "PUT":
        return [(parts[2], e["uid"], e["status"], e["last_updated"]) for e in body.get("evses") or []]
    return []


class QueueDepths:
    """Samples the backlog of A's locations input queue and dispatcher events queue every 5 s."""

    def __init__(self, amqp: str, namespace: str) -> None:
        self.amqp = amqp
        self.queues = {
            "locations_input": f"{namespace}.locations.input",
            "dispatcher_events": f"{namespace}.dispatcher.events",
        }
        self.samples: list[dict[str, Any]] = []

    async def run(self, started: float) -> None:
        connection = await aio_pika.connect(self.amqp)
        try:
            while True:
                sample: dict[str, Any] = {"t": round(time.time() - started)}
                for label, name in self.queues.items():
                    try:
                        channel = await connection.channel()
                        queue = await channel.declare_queue(name, passive=True)
                        sample[label] = queue.declaration_result.message_count
                        await channel.close()
                    except aio_pika.exceptions.AMQPError:
                        sample[label] = None
                self.samples.append(sample)
                await asyncio.sleep(5)
        finally:
            await connection.close()


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
    methods: dict[str, int] = defaultdict(int)
    for arrival in arrivals:
        methods[f"{arrival.method} {'location' if arrival.path.count('/') == 2 else 'evse'}"] += 1
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
        "requests_by_kind": dict(methods),
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


async def scenario(
    a: Deployment, b: Deployment, amqp: str, mongo: str, args: argparse.Namespace
) -> dict[str, Any]:
    _, _, a_to_b, _ = await connect(a, b, mongo, "bench")
    broker = Broker(amqp, Topology(a.namespace, queue_type="quorum"))
    await broker.connect()
    fake = FakeEmsp()
    tmp = tempfile.mkdtemp(prefix="push_latency_")
    try:
        location_ids = [f"PL{i:03d}" for i in range(args.locations)]
        uids = [f"E{j + 1}" for j in range(EVSES_PER_LOCATION)]
        evses = [(loc, uid) for loc in location_ids for uid in uids]
        created = time.monotonic()
        for loc in location_ids:
            await publish(broker, LocationUpsert(event_id=event_id(), location=location(loc, uids)))

        async def b_has_all() -> bool:
            for loc in location_ids:
                url = f"{b.public_url}/ocpi/emsp/2.1.1/locations/{a.country_code}/{a.party_id}/{loc}"
                reply = await request("GET", url, token=a_to_b)
                if reply.status_code != 1000 or len(reply.data.get("evses") or []) != EVSES_PER_LOCATION:
                    return False
            return True

        await eventually(b_has_all, 120, pause=0.5)
        setup: dict[str, Any] = {
            "locations": args.locations,
            "evses": len(evses),
            "seconds_until_b_has_them": round(time.monotonic() - created, 3),
        }

        await fake.start()
        await fake.register_with(a, "fake-emsp")
        # Warm-up (connections, caches, the dispatcher learning of the new partner), then a clean slate.
        warm_file = os.path.join(tmp, "warm.jsonl")
        warm = await run_publisher(amqp, a.namespace, evses, WARMUP_RATE, args.warmup, 0, warm_file)
        warm_drained, warm_drain_s = await wait_delivered(fake, read_events(warm_file), 30)
        setup.update(
            warmup_events=warm["events"], warmup_drained=warm_drained, warmup_seconds=round(warm_drain_s, 3)
        )
        await asyncio.sleep(1)
        fake.arrivals.clear()

        depths = QueueDepths(amqp, a.namespace)
        began = time.time()
        sampler = asyncio.create_task(depths.run(began))
        out = os.path.join(tmp, "events.jsonl")
        start = warm["events"]
        published = await run_publisher(amqp, a.namespace, evses, args.rate, args.seconds, start, out)
        events = read_events(out)
        drained, drain_s = await wait_delivered(fake, events, args.drain_seconds)
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sampler
        arrivals = list(fake.arrivals)
        result = analyse(events, arrivals)
        last = depths.samples[-1] if depths.samples else {}
        if last.get("locations_input") is not None and last["t"]:
            # What A's locations service got through: published so far minus what still waits.
            done = min(len(events), args.rate * last["t"]) - last["locations_input"]
            result["a_locations_inputs_applied_per_s"] = round(done / last["t"], 1)
        window = (arrivals[-1].at - began) if arrivals else 0.0
        return {
            "setup": setup,
            "publisher": published,
            "events_sent": len(events),
            "pushes_received": len(arrivals),
            "events_per_push": round(len(events) / len(arrivals), 2) if arrivals else None,
            "drained": drained,
            "seconds_after_publishing_until_drained": round(drain_s, 3) if drained else None,
            "drain_deadline_seconds": args.drain_seconds,
            "push_rate_per_s": round(len(arrivals) / window, 1) if window else None,
            "fake_errors": {"unauthorized": fake.unauthorized, "bad_bodies": fake.bad_bodies},
            "queue_depths": depths.samples,
            **result,
        }
    finally:
        await fake.stop()
        await broker.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--locations", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--drain-seconds", type=float, default=150.0)
    args = parser.parse_args()
    started = time.monotonic()
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        a = deployment(amqp, mongo, "NL", "CPA", "CPO")
        b = deployment(amqp, mongo, "DE", "EMB", "EMSP")
        try:
            with running(a, "A "), running(b, "B "):
                result = asyncio.run(scenario(a, b, amqp, mongo, args))
        finally:
            cleanup_broker(amqp, a, b)
    emit(
        "push_latency",
        database=database,
        rate_per_s=args.rate,
        seconds=args.seconds,
        partners_pushed_to=["B (real gateway)", "fake eMSP (aiohttp, this process)"],
        **settings_of(a),
        **result,
        wall_seconds=round(time.monotonic() - started, 1),
        loadavg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )
    if result["ordering_violations"]:
        sys.exit(1)  # a partner received an older state after a newer one: a bug, not a figure


if __name__ == "__main__":
    main()
