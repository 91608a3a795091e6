"""Charger events at a fixed rate on a deployment's internal exchange (run as its own process).

Event i goes to EVSE i % len(evses); the k-th event of an EVSE carries STATUSES[k % 7], so two
consecutive events of one EVSE always differ and (location, evse, status, at) names one event as long
as an EVSE gets fewer than 7 events per second. Writes one JSON line per event to `--out`:
[location_id, evse_uid, status, at (OCPI form), publish time (time.time())]; prints a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from shared.contracts.locations import EvseStatusSet
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from shared.ocpi.v2_1_1.locations import Status
from shared.ocpi.v2_1_1.types import format_datetime, utc_now

IN_FLIGHT = 64
STATUSES = ("CHARGING", "BLOCKED", "INOPERATIVE", "OUTOFORDER", "PLANNED", "RESERVED", "AVAILABLE")


async def publish_all(args: argparse.Namespace) -> tuple[list[list[object]], dict[str, float | int]]:
    evses = [tuple(item.split("/", 1)) for item in args.evses.split(",")]
    broker = Broker(args.amqp, Topology(args.namespace, queue_type="quorum"))
    await broker.connect()
    total = int(args.rate * args.seconds)
    records: list[list[object]] = []
    sent: list[tuple[asyncio.Task[None], list[object]]] = []
    in_flight: set[asyncio.Task[None]] = set()
    errors = 0
    late = 0
    started = time.perf_counter()
    try:
        for n in range(total):
            i = args.start_index + n
            location_id, evse_uid = evses[i % len(evses)]
            status = STATUSES[(i // len(evses)) % len(STATUSES)]
            due = started + n / args.rate
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            elif pause < -0.05:
                late += 1
            at = utc_now()
            event = EvseStatusSet(
                event_id=uuid.uuid4().hex,
                location_id=location_id,
                evse_uid=evse_uid,
                status=Status(status),
                at=at,
            )
            sent_at = time.time()
            # Confirms are awaited concurrently (at most IN_FLIGHT), so the broker's confirm latency
            # does not cap the rate; publishes leave in call order on the one channel.
            if len(in_flight) >= IN_FLIGHT:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(broker.publish_internal(event, message_id=event.event_id))
            in_flight.add(task)
            sent.append((task, [location_id, evse_uid, status, format_datetime(at), sent_at]))
        if in_flight:
            await asyncio.wait(in_flight)
        for task, record in sent:
            if task.exception() is None:
                records.append(record)
            else:
                errors += 1
    finally:
        elapsed = time.perf_counter() - started
        await broker.close()
    return records, {
        "events": len(records),
        "publish_errors": errors,
        "published_late_over_50ms": late,
        "seconds": round(elapsed, 3),
        "rate": round(len(records) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("amqp")
    parser.add_argument("namespace")
    parser.add_argument("--evses", required=True, help="location/evse,location/evse,...")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--start-index", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    records, summary = asyncio.run(publish_all(args))
    with open(args.out, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
