"""Token authorization figures: real-time authorize at the eMSP, the chargers' RPC at the CPO, and how
long a blocked card takes to be refused at the CPO.

Two deployments as in the e2e pair (quorum queues): A (CPO, NL/CPA) and B (eMSP, DE/EMB), registered
with each other the way partners register (B adds A, A registers with B's TOKEN_A).

- realtime: B runs its gateway and tokens service (A only its gateway, for the handshake). B issues
  --cards cards (TokenUpsert events); then A's token POSTs /ocpi/emsp/2.1.1/tokens/{uid}/authorize
  with LocationReferences at --rate per second for --seconds, open loop (each request is sent at its
  scheduled time whatever the others do; latency counts from that time). CPU per request of B's
  gateway and tokens service (and of the in-memory database server when it is our child) from
  /proc/<pid>/stat and schedstat, as bench/list_cpu.py reads it.
- charger: A and B run gateway, tokens and dispatcher. B issues --cards cards, half ALWAYS and half
  ALLOWED, which B's dispatcher pushes to A; once A answers ALLOWED for all, A's charger backend
  sends ChargerAuthorize RPCs at --charger-rate per second for --seconds, open loop. The database
  operations during the load come from the server's serverStatus opcounters (bench/_support.py).
- blocked: in the same pair, --blocked cards one after the other: B's card management publishes
  TokenBlock, and the charger backend asks A every 10 ms until A answers BLOCKED. Time from the
  publish's confirm to the first BLOCKED.

Every figure is one JSON line (bench/common.py emit), with the machine and the database named.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec

from bench._support import DbCounters, cleanup_broker, counters_delta, deployment, settings_of, stats_ms
from bench.common import emit, infrastructure
from bench.list_cpu import database_pid, idle_corrected, ms_per_request, read_cpu
from deploy.local_stack import Deployment
from shared.contracts.tokens import ChargerAuthorization, ChargerAuthorize, TokenBlock, TokenUpsert
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.messaging.topology import Topology
from shared.ocpi.v2_1_1.tokens import Allowed, LocationReferences, Token
from tests.support.deployments import running
from tests.support.http import connect
from tests.support.objects import event_id, publish

HERE = {"location_id": "LOC-1", "evse_uids": ["EVSE-1", "EVSE-2"]}
IN_FLIGHT_MAX = 1000  # open loop, but bounded: past this many unanswered requests we stop sending


def card(uid: str, whitelist: str) -> Token:
    stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    return msgspec.convert(
        {
            "uid": uid,
            "type": "RFID",
            "auth_id": f"DE-EMB-{uid}"[:36],
            "issuer": "EMB Mobility",
            "valid": True,
            "whitelist": whitelist,
            "last_updated": stamp,
        },
        Token,
    )


async def open_loop(
    send: Callable[[int], Awaitable[bool]], rate: float, seconds: float
) -> tuple[list[float], int, int]:
    """Call send(i) at i/rate seconds for `seconds`; (latencies from the scheduled time, failures,
    requests not sent because IN_FLIGHT_MAX were unanswered)."""
    latencies: list[float] = []
    failures = 0
    skipped = 0
    in_flight = 0
    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()

    async def one(i: int, due: float) -> None:
        nonlocal failures, in_flight
        try:
            good = await send(i)
        except Exception:
            good = False
        finally:
            in_flight -= 1
        latencies.append(time.monotonic() - due)
        if not good:
            failures += 1

    count = int(rate * seconds)
    for i in range(count):
        due = started + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        if in_flight >= IN_FLIGHT_MAX:
            skipped += 1
            continue
        in_flight += 1
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return latencies, failures, skipped


async def issue(broker: Broker, uids: list[str], whitelist: Callable[[int], str]) -> None:
    for start in range(0, len(uids), 200):
        chunk = uids[start : start + 200]
        await asyncio.gather(
            *(
                publish(broker, TokenUpsert(event_id=event_id(), token=card(uid, whitelist(start + n))))
                for n, uid in enumerate(chunk)
            )
        )


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"{what} not true after {seconds} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


# ---- realtime -------------------------------------------------------------------------------------


async def realtime(
    a: Deployment, b: Deployment, amqp: str, mongo: str, pids: dict[str, int], args: argparse.Namespace
) -> dict[str, Any]:
    _, _, a_to_b, _ = await connect(a, b, mongo, "bench")
    broker = Broker(amqp, Topology(b.namespace, queue_type="quorum"))
    await broker.connect()
    uids = [f"RT{i:06d}" for i in range(args.cards)]
    try:
        await issue(broker, uids, lambda i: "NEVER")
    finally:
        await broker.close()
    headers = {"Authorization": f"Token {a_to_b}"}
    base = f"{b.public_url}/ocpi/emsp/2.1.1/tokens"
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as s:

        async def authorize(i: int) -> bool:
            url = f"{base}/{uids[i % len(uids)]}/authorize?type=RFID"
            async with s.post(url, json=HERE, headers=headers) as r:
                body = await r.json(content_type=None)
                return r.status == 200 and body.get("data", {}).get("allowed") == "ALLOWED"

        async def all_issued() -> bool:
            return await authorize(len(uids) - 1) and await authorize(0)

        issued = await wait_until(all_issued, 120, "the cards issued at B")
        for i in range(200):  # warm-up, not measured
            await authorize(i)
        idle_before, idle_at = read_cpu(pids), time.monotonic()
        await asyncio.sleep(args.idle_seconds)
        idle_after, idle_seconds = read_cpu(pids), time.monotonic() - idle_at
        idle = {
            name: {
                "stat_ms_per_s": (idle_after[name].ticks - idle_before[name].ticks)
                * 1000
                / os.sysconf("SC_CLK_TCK")
                / idle_seconds,
                "schedstat_ms_per_s": (idle_after[name].ns - idle_before[name].ns) / 1e6 / idle_seconds,
            }
            for name in pids
        }
        before, began = read_cpu(pids), time.monotonic()
        latencies, failures, skipped = await open_loop(authorize, args.rate, args.seconds)
        after, elapsed = read_cpu(pids), time.monotonic() - began
    n = len(latencies)
    per_process = {
        name: {
            "raw": ms_per_request(before[name], after[name], n),
            "idle_corrected": idle_corrected(before[name], after[name], n, elapsed, idle[name]),
        }
        for name in pids
    }
    ours = [name for name in pids if name != "database"]
    return {
        "cards": args.cards,
        "seconds_until_issued": round(issued, 3),
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "requests": n,
        "failures": failures,
        "not_sent": skipped,
        "latency": stats_ms(latencies),
        "cpu_ms_per_request": per_process,
        "ours_cpu_ms_per_request": {
            kind: round(sum(per_process[name][kind]["schedstat_ms"] for name in ours), 4)
            for kind in ("raw", "idle_corrected")
        },
        "ours_are": "+".join(ours),
    }


# ---- charger and blocked ----------------------------------------------------------------------------


async def ask(client: RpcClient, uid: str) -> ChargerAuthorization:
    location = LocationReferences(location_id="LOC-1", evse_uids=["EVSE-1"])
    reply = await client.call("tokens", ChargerAuthorize(token_uid=uid, location=location))
    if reply.status_code != 1000:
        raise RuntimeError(f"charger RPC answered {reply}")
    return msgspec.json.decode(reply.data, type=ChargerAuthorization)


async def charger_and_blocked(
    a: Deployment, b: Deployment, amqp: str, mongo: str, args: argparse.Namespace
) -> dict[str, Any]:
    await connect(a, b, mongo, "bench")
    a_broker = Broker(amqp, Topology(a.namespace, queue_type="quorum"))
    b_broker = Broker(amqp, Topology(b.namespace, queue_type="quorum"))
    await a_broker.connect()
    await b_broker.connect()
    client = RpcClient(a_broker, timeout=10.0)
    await client.start()
    counters = DbCounters(mongo)
    results: dict[str, Any] = {}
    try:
        uids = [f"CH{i:06d}" for i in range(args.cards)]
        await issue(b_broker, uids, lambda i: "ALWAYS" if i % 2 == 0 else "ALLOWED")

        async def all_at_a() -> bool:
            sample = [*uids[:: max(1, len(uids) // 50)], uids[-1]]
            answers = await asyncio.gather(*(ask(client, uid) for uid in sample))
            return all(answer.allowed is Allowed.ALLOWED for answer in answers)

        pushed = await wait_until(all_at_a, 180, "the cards at A")
        for uid in uids[:500]:  # warm-up: fills A's cache as chargers' first asks would
            await ask(client, uid)

        async def charger(i: int) -> bool:
            return (await ask(client, uids[i % len(uids)])).allowed is Allowed.ALLOWED

        try:
            before = await counters.read()
            database: dict[str, Any] | None = await counters.server()
        except Exception as exc:  # no opcounters: the figure says so
            before, database = None, {"opcounters": f"unavailable: {exc}"}
        latencies, failures, skipped = await open_loop(charger, args.charger_rate, args.seconds)
        operations: dict[str, Any] | None = None
        if before is not None:
            delta = counters_delta(before, await counters.read(), f"{a.namespace}_")
            operations = {
                "total": delta.total,
                "per_request": round(delta.total / max(1, len(latencies)), 4),
                "ops": delta.ops,
                "note": "both deployments' processes, their idle timers included",
            }
        results["charger"] = {
            "cards": args.cards,
            "seconds_until_at_a": round(pushed, 3),
            "rate_per_s": args.charger_rate,
            "seconds": args.seconds,
            "requests": len(latencies),
            "failures": failures,
            "not_sent": skipped,
            "latency": stats_ms(latencies),
            "database_operations": operations,
            "database_server": database,
        }

        blocked_times: list[float] = []
        for uid in uids[: args.blocked]:
            sent = time.monotonic()
            await publish(b_broker, TokenBlock(event_id=event_id(), token_uid=uid, at=datetime.now(UTC)))
            while (await ask(client, uid)).allowed is not Allowed.BLOCKED:
                if time.monotonic() - sent > 30:
                    raise RuntimeError(f"{uid} not refused at A after 30 s")
                await asyncio.sleep(0.01)
            blocked_times.append(time.monotonic() - sent)
        results["blocked"] = {"cards": len(blocked_times), "block_to_refused": stats_ms(blocked_times)}
        return results
    finally:
        await counters.close()
        await a_broker.close()
        await b_broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("realtime", "charger", "all"), default="all")
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="real-time authorizations per second")
    parser.add_argument("--charger-rate", type=float, default=500.0, help="charger RPCs per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--blocked", type=int, default=100)
    args = parser.parse_args()
    if not 100 <= args.cards <= 20_000 or not 1 <= args.seconds <= 300 or not 1 <= args.blocked <= 1000:
        parser.error("--cards within 100..20000, --seconds within 1..300, --blocked within 1..1000")
    if not 1 <= args.rate <= 2000 or not 1 <= args.charger_rate <= 5000:
        parser.error("--rate within 1..2000, --charger-rate within 1..5000")
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        db_pid = database_pid()
        tag = uuid.uuid4().hex[:4]
        if args.scenario in ("realtime", "all"):
            a = deployment(amqp, mongo, "NL", "CPA", "CPO")
            b = deployment(amqp, mongo, "DE", "EMB", "EMSP")
            try:
                with (
                    running(a, "A ", services=("gateway",)),
                    running(b, "B ", services=("gateway", "tokens")) as b_stack,
                ):
                    pids = {f"b_{name}": proc.pid for name, proc in b_stack.processes.items()}
                    if db_pid is not None:
                        pids["database"] = db_pid
                    result = asyncio.run(realtime(a, b, amqp, mongo, pids, args))
            finally:
                cleanup_broker(amqp, a, b)
            latency = result["latency"]
            print(
                f"realtime authorize at B, {args.rate:g}/s for {args.seconds:g} s: "
                f"p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms; "
                f"CPU {result['ours_cpu_ms_per_request']} ms/request "
                f"({result['ours_are']})",
                flush=True,
            )
            emit(
                "tokens_realtime_authorize", database=database, settings=settings_of(a, b), run=tag, **result
            )
        if args.scenario in ("charger", "all"):
            a = deployment(amqp, mongo, "NL", "CPA", "CPO")
            b = deployment(amqp, mongo, "DE", "EMB", "EMSP")
            services = ("gateway", "tokens", "dispatcher")
            try:
                with running(a, "A ", services=services), running(b, "B ", services=services):
                    results = asyncio.run(charger_and_blocked(a, b, amqp, mongo, args))
            finally:
                cleanup_broker(amqp, a, b)
            charger, blocked = results["charger"], results["blocked"]
            print(
                f"charger RPC at A, {args.charger_rate:g}/s for {args.seconds:g} s: "
                f"p50 {charger['latency']['p50_ms']:.2f} ms, p99 {charger['latency']['p99_ms']:.2f} ms; "
                "database operations per request "
                f"{(charger['database_operations'] or {}).get('per_request')}",
                flush=True,
            )
            print(
                f"blocked at B -> refused at A over {blocked['cards']} cards: "
                f"p50 {blocked['block_to_refused']['p50_ms']:.0f} ms, "
                f"p99 {blocked['block_to_refused']['p99_ms']:.0f} ms",
                flush=True,
            )
            emit(
                "tokens_charger_authorize", database=database, settings=settings_of(a, b), run=tag, **charger
            )
            emit("tokens_blocked_card", database=database, settings=settings_of(a, b), run=tag, **blocked)
    print(f"load average before {load_before}, after {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
