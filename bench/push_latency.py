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
import os
import sys
import tempfile
import time
from typing import Any

import aio_pika

from bench._fake_emsp import FakeEmsp
from bench._support import (
    analyse,
    cleanup_broker,
    deployment,
    read_events,
    run_publisher,
    settings_of,
    wait_delivered,
)
from bench.common import emit, infrastructure
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
