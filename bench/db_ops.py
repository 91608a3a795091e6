"""Database operations per EVSE status change, from the database server's own counters.

One deployment A (CPO, every service a real process) and N fake eMSPs (bench/_fake_emsp.py, in this
process, no database) registered with A the way a partner registers. A few locations are created on
A by LocationUpsert events and pushed to every fake. Then, with the database server to ourselves:

(a) idle: serverStatus `opcounters` read, nothing sent for --idle-seconds, read again: operations per
    second A does on its own (heartbeats, pollers, ...);
(b) per change: read, --changes EvseStatusSet events at --rate over the EVSEs (statuses cycle, so each
    event is a real change; `at` never decreases), wait until every fake got the last state of every
    EVSE and the pushes went quiet, read again. Reported raw (delta / changes) and idle-corrected
    ((delta - idle rate x elapsed) / changes).

The reading client's own commands are counted and left out (see bench._support.DbCounters). `top`
gives the same operations per collection (the part of `command` that names no collection, such as
hello and ping, shows only in the totals). SecantusDB counts a command once (an insert of 3
documents is 1); mongod counts inserted documents one each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any

from bench._fake_emsp import FakeEmsp
from bench._support import (
    OPCOUNTERS,
    DbCounters,
    Delta,
    cleanup_broker,
    counters_delta,
    deployment,
    read_events,
    request_kinds,
    run_publisher,
    settings_of,
    wait_delivered,
    wait_has_evses,
    wait_quiet,
)
from bench.common import emit, infrastructure
from deploy.local_stack import Deployment
from shared.contracts.locations import LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.support.deployments import running
from tests.support.objects import event_id, location, publish

QUIET_SECONDS = 3.0  # no push for this long: the push queue is idle


def per_second(delta: Delta) -> dict[str, float]:
    rates = {k: round(v / delta.seconds, 3) for k, v in delta.ops.items()}
    rates["total"] = round(delta.total / delta.seconds, 3)
    return rates


def per_change(delta: Delta, idle: dict[str, float], changes: int) -> dict[str, Any]:
    """Raw and idle-corrected operations per change, per counter and in total."""
    raw = {k: round(v / changes, 3) for k, v in delta.ops.items()}
    raw["total"] = round(delta.total / changes, 3)
    corrected = {k: round((delta.ops[k] - idle[k] * delta.seconds) / changes, 3) for k in OPCOUNTERS}
    corrected["total"] = round((delta.total - idle["total"] * delta.seconds) / changes, 3)
    return {"raw_delta_over_changes": raw, "idle_corrected": corrected}


async def scenario(a: Deployment, amqp: str, mongo: str, args: argparse.Namespace) -> dict[str, Any]:
    counters = DbCounters(mongo)
    broker = Broker(amqp, Topology(a.namespace, queue_type="quorum"))
    fakes = [FakeEmsp("DE", f"F{i:02d}") for i in range(args.partners)]
    tmp = tempfile.mkdtemp(prefix="db_ops_")
    prefix = f"{a.namespace.replace('.', '_')}_"  # A's databases are <namespace>_<service>
    try:
        server = await counters.server()
        await broker.connect()
        for i, fake in enumerate(fakes):
            await fake.start()
            await fake.register_with(a, f"fake-emsp-{i}")
        location_ids = [f"DB{i:03d}" for i in range(args.locations)]
        uids = [f"E{j + 1}" for j in range(args.evses_per_location)]
        evses = [(loc, uid) for loc in location_ids for uid in uids]
        created = time.monotonic()
        for loc in location_ids:
            await publish(broker, LocationUpsert(event_id=event_id(), location=location(loc, uids)))
        loaded, _ = await wait_has_evses(fakes, evses, 60)
        if not loaded:
            raise RuntimeError("the fakes did not get every EVSE within 60 s")
        quiet, _ = await wait_quiet(fakes, QUIET_SECONDS, 30)
        setup = {
            "locations": args.locations,
            "evses_per_location": args.evses_per_location,
            "evses": len(evses),
            "partners": args.partners,
            "seconds_until_every_fake_has_every_evse_and_quiet": round(time.monotonic() - created, 3),
            "quiet_before_idle": quiet,
            "calls_per_fake_during_load": [len(fake.arrivals) for fake in fakes],
        }

        async def idle_phase(seconds: float) -> tuple[Delta, int]:
            """The counters over `seconds` with nothing sent; and the partner calls meanwhile."""
            calls = sum(len(fake.arrivals) for fake in fakes)
            before = await counters.read()
            await asyncio.sleep(seconds)
            delta = counters_delta(before, await counters.read(), prefix)
            return delta, sum(len(fake.arrivals) for fake in fakes) - calls

        idle_delta, idle_calls = await idle_phase(args.idle_seconds)
        idle = per_second(idle_delta)

        for fake in fakes:
            fake.arrivals.clear()
        before = await counters.read()
        out = os.path.join(tmp, "events.jsonl")
        published = await run_publisher(amqp, a.namespace, evses, args.rate, args.changes / args.rate, 0, out)
        events = read_events(out)
        deadline = time.monotonic() + args.drain_seconds
        delivered = [
            (await wait_delivered(fake, events, max(0.0, deadline - time.monotonic())))[0] for fake in fakes
        ]
        went_quiet, _ = await wait_quiet(fakes, QUIET_SECONDS, 30)
        change_delta = counters_delta(before, await counters.read(), prefix)
        arrivals = [arrival for fake in fakes for arrival in fake.arrivals]
        kinds = request_kinds(arrivals)
        changes = len(events)
        result: dict[str, Any] = {
            "database_server": server,
            "setup": setup,
            "idle": {
                "seconds": round(idle_delta.seconds, 3),
                "ops_per_second": idle,
                "own_commands_left_out": idle_delta.own_commands,
                "partner_calls_meanwhile": idle_calls,
                "by_collection": idle_delta.collections,
            },
            "changes": {
                "publisher": published,
                "changes": changes,
                "rate_per_s": args.rate,
                "every_fake_got_every_final_state": all(delivered),
                "quiet_at_the_end": went_quiet,
                "seconds_from_first_reading_to_last": round(change_delta.seconds, 3),
                "ops_delta": change_delta.ops,
                "ops_delta_total": change_delta.total,
                "own_commands_left_out": change_delta.own_commands,
                "ops_per_change": per_change(change_delta, idle, changes),
                "by_collection_per_change": {
                    ns: {s: round(n / changes, 3) for s, n in sections.items()}
                    for ns, sections in change_delta.collections.items()
                },
                "partner_calls": len(arrivals),
                "partner_calls_per_change": round(len(arrivals) / changes, 3) if changes else None,
                "partner_calls_by_kind": kinds,
                "patch_calls": sum(n for kind, n in kinds.items() if kind.startswith("PATCH")),
                "put_calls": sum(n for kind, n in kinds.items() if kind.startswith("PUT")),
                "partner_calls_per_fake": [len(fake.arrivals) for fake in fakes],
            },
            "fake_errors": {
                "unauthorized": sum(f.unauthorized for f in fakes),
                "bad_bodies": sum(f.bad_bodies for f in fakes),
            },
        }
        if args.idle_after_seconds > 0:
            # The idle measurement again: whether the idle rate held after the changes.
            after_delta, after_calls = await idle_phase(args.idle_after_seconds)
            result["idle_after"] = {
                "seconds": round(after_delta.seconds, 3),
                "ops_per_second": per_second(after_delta),
                "partner_calls_meanwhile": after_calls,
            }
        return result
    finally:
        for fake in fakes:
            await fake.stop()
        await broker.close()
        await counters.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partners", type=int, default=1, help="fake eMSPs registered with A")
    parser.add_argument("--locations", type=int, default=1)
    parser.add_argument("--evses-per-location", type=int, default=10)
    parser.add_argument("--changes", type=int, default=200, help="EvseStatusSet events")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--idle-after-seconds", type=float, default=30.0, help="idle again after the changes (0: not)"
    )
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    args = parser.parse_args()
    if not 1 <= args.partners <= 20:
        parser.error("--partners must be within 1..20")
    started = time.monotonic()
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        a = deployment(amqp, mongo, "NL", "CPA", "CPO")
        try:
            with running(a, "A "):
                result = asyncio.run(scenario(a, amqp, mongo, args))
        finally:
            cleanup_broker(amqp, a)
    emit(
        "db_ops",
        database=database,
        partners=args.partners,
        **settings_of(a),
        **result,
        wall_seconds=round(time.monotonic() - started, 1),
        loadavg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )


if __name__ == "__main__":
    main()
