"""CDR delivery: time from the charger's stop event at A to the CDR stored at B, over many sessions.

Two deployments as in the e2e pair (quorum queues, every service a real process): A (CPO, NL/CPA)
and B (eMSP, DE/EMB), registered with each other the way partners register. A has a site whose
connector has a tariff (pushed to B), B a card (pushed to A). A's charger backend (this process)
starts --sessions sessions with B's card, sends one meter value each, then stops them at --rate per
second, open loop. Each stop's latency runs from the confirm of its publish at A to the moment B
announces the stored CDR (`cdrs.partner_cdr.received` on B's events exchange: B publishes it right
after storing, through its outbox). Also counted: CDRs B disputed (must be none: both sides price
with the same calculator), CDRs missing after the drain deadline, and the database operations per
stop from the server's serverStatus opcounters (both deployments share the server).

One JSON line (bench/common.py emit), with the machine and the database named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import msgspec
from pymongo import AsyncMongoClient

from bench._support import DbCounters, cleanup_broker, counters_delta, deployment, settings_of, stats_ms
from bench.common import emit, infrastructure
from deploy.local_stack import Deployment
from shared.contracts.cdrs import PartnerCdrReceived, PriceCheck
from shared.contracts.sessions import SessionMeter, SessionStop
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.messaging.topology import Topology
from tests.conftest import Connection, Pair
from tests.support.billing import prepare_site, start_message
from tests.support.deployments import running
from tests.support.http import connect
from tests.support.objects import event_id, publish

DRAIN_SECONDS = 120.0


async def _broker(amqp: str, namespace: str) -> Broker:
    broker = Broker(amqp, Topology(namespace, queue_type="quorum"))
    await broker.connect()
    return broker


async def _sessions_at_b(pair: Pair, ids: list[str], kwh: float, seconds: float) -> float:
    """Wait until B's copy of every session shows `kwh` (test oracle: B's database); how long it took."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pair.mongo_url)
    collection = client[f"{pair.emsp.namespace}_sessions"]["partner_sessions"]
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            if await collection.count_documents({"id": {"$in": ids}, "session.kwh": kwh}) >= len(ids):
                break
            await asyncio.sleep(1.0)
    finally:
        await client.close()
    return time.monotonic() - began


async def run(pair: Pair, amqp: str, args: argparse.Namespace) -> dict[str, Any]:
    connection = Connection(pair, *await connect(pair.cpo, pair.emsp, pair.mongo_url, "bench"))
    a_broker = await _broker(amqp, pair.cpo.namespace)
    b_broker = await _broker(amqp, pair.emsp.namespace)
    charger = RpcClient(a_broker, timeout=10.0)
    await charger.start()
    site = await prepare_site(connection, a_broker, b_broker, charger)

    tag = uuid.uuid4().hex[:6]
    ids = [f"B-{tag}-{n:05d}" for n in range(args.sessions)]
    arrived: dict[str, float] = {}
    disputed: list[str] = []
    decoder = msgspec.json.Decoder(PartnerCdrReceived)
    channel = await b_broker.channel()
    queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
    await queue.bind(b_broker.topology.events_exchange, "cdrs.partner_cdr.received")

    all_arrived = asyncio.Event()

    async def on_received(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received = decoder.decode(message.body)
        arrived.setdefault(received.cdr.id, time.monotonic())
        if received.verdict.check is PriceCheck.DISPUTED:
            disputed.append(received.cdr.id)
        if len(arrived) >= len(ids) and all(i in arrived for i in ids):
            all_arrived.set()

    await queue.consume(on_received, no_ack=True)

    began = datetime.now(UTC) - timedelta(hours=2)
    for session_id in ids:
        await publish(a_broker, start_message(session_id, site.location_id, site.uid, began))
        meter = SessionMeter(
            event_id=event_id(), session_id=session_id, at=began + timedelta(minutes=40), kwh=9.5
        )
        await publish(a_broker, meter)
    # The starts and meter values settle before the measured stops: B holds every session at 9.5 kWh.
    settled = await _sessions_at_b(pair, ids, 9.5, DRAIN_SECONDS)

    counters = DbCounters(pair.mongo_url)
    before = await counters.read()
    stopped: dict[str, float] = {}
    started = time.monotonic()
    for index, session_id in enumerate(ids):
        due = started + index / args.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        stop = SessionStop(
            event_id=event_id(), session_id=session_id, at=began + timedelta(hours=1), kwh=11.0
        )
        await publish(a_broker, stop)
        stopped[session_id] = time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_arrived.wait(), DRAIN_SECONDS)
    latencies = [arrived[i] - stopped[i] for i in ids if i in arrived]
    # Give the last deliveries' records (CdrDelivered at A, outbox marks at B) a moment to land.
    await asyncio.sleep(2.0)
    delta = counters_delta(before, await counters.read())
    await counters.close()
    busiest = sorted(delta.collections.items(), key=lambda item: -sum(item[1].values()))[:12]
    await a_broker.close()
    await b_broker.close()
    return {
        "sessions": args.sessions,
        "setup_settled_s": round(settled, 1),
        "stop_rate_per_s": args.rate,
        "delivered": len(latencies),
        "missing": len(ids) - len(latencies),
        "disputed": len(disputed),
        "stop_to_cdr_at_b": stats_ms(latencies) if latencies else None,
        # From the server's own counters, stops through the last CDR stored (both deployments).
        "database_operations": {
            "per_stop": round(delta.total / len(ids), 2),
            "ops": delta.ops,
            "busiest_collections": dict(busiest),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10.0, help="stops per second")
    args = parser.parse_args()
    if not 10 <= args.sessions <= 5000 or not 0.5 <= args.rate <= 200:
        parser.error("--sessions within 10..5000, --rate within 0.5..200")
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        a: Deployment = deployment(amqp, mongo, "NL", "CPA", "CPO")
        b: Deployment = deployment(amqp, mongo, "DE", "EMB", "EMSP")
        try:
            with running(a, "A ") as a_stack, running(b, "B ") as b_stack:
                result = asyncio.run(run(Pair(a, b, a_stack, b_stack, mongo), amqp, args))
        finally:
            cleanup_broker(amqp, a, b)
    latency = result["stop_to_cdr_at_b"] or {}
    print(
        f"CDR delivery over {result['delivered']}/{args.sessions} sessions, stops at {args.rate:g}/s: "
        f"p50 {latency.get('p50_ms')} ms, p99 {latency.get('p99_ms')} ms; "
        f"missing {result['missing']}, disputed {result['disputed']}; "
        f"database operations per stop {result['database_operations']['per_stop']}",
        flush=True,
    )
    emit("cdr_delivery", database=database, settings=settings_of(a, b), **result)
    print(f"load average before {load_before}, after {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
