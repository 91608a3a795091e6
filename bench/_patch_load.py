"""A bounded PATCH load generator for a locations receiver (run as its own process).

N concurrent clients for D seconds (and at most --max-requests). Client i owns the locations whose
index is i modulo N, as a CPO pushing per-object in order would, and cycles through their EVSEs with
`{"status": ..., "last_updated": now}`; consecutive PATCHes of one EVSE carry different statuses.
A PATCH counts as accepted when the answer is HTTP 2xx with status_code 1000. The last accepted status
of each EVSE is written to --final-out so the caller can check the receiver's state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.load import percentile

STATUSES = ("CHARGING", "BLOCKED", "INOPERATIVE", "OUTOFORDER", "PLANNED", "RESERVED", "AVAILABLE")


async def drive(
    base: str,
    token: str | None,
    locations: list[str],
    evses: list[str],
    concurrency: int,
    seconds: float,
    max_requests: int,
) -> tuple[dict[str, Any], dict[str, str]]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    accepted = 0
    final: dict[str, str] = {}
    headers = {"Authorization": f"Token {token}"} if token else {}
    deadline = time.perf_counter() + seconds
    sent = 0

    async def client(session: aiohttp.ClientSession, mine: list[str]) -> None:
        nonlocal accepted, sent
        round_ = 0
        while mine and time.perf_counter() < deadline and sent < max_requests:
            for location_id in mine:
                for n, uid in enumerate(evses):
                    if time.perf_counter() >= deadline or sent >= max_requests:
                        return
                    sent += 1
                    status = STATUSES[(round_ + n) % len(STATUSES)]
                    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    body = {"status": status, "last_updated": stamp}
                    started = time.perf_counter()
                    try:
                        async with session.patch(
                            f"{base}/{location_id}/{uid}", json=body, headers=headers
                        ) as response:
                            raw = await response.read()
                            try:
                                code = json.loads(raw).get("status_code")
                            except (ValueError, AttributeError):
                                code = None
                            if 200 <= response.status < 300 and code == 1000:
                                accepted += 1
                                final[f"{location_id}/{uid}"] = status
                            else:
                                errors[f"HTTP {response.status} status_code {code}"] += 1
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        errors[type(exc).__name__] += 1
                    latencies.append(time.perf_counter() - started)
            round_ += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session, locations[i::concurrency]) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    result = {
        "requests": len(latencies),
        "accepted": accepted,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(elapsed, 3),
        "accepted_per_s": round(accepted / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
    }
    return result, final


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base", help="receiver URL up to the party: .../locations/{cc}/{party_id}")
    parser.add_argument("--token")
    parser.add_argument("--locations", required=True, help="comma-separated location ids")
    parser.add_argument("--evses", required=True, help="comma-separated EVSE uids (each location has them)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--final-out")
    args = parser.parse_args()
    result, final = asyncio.run(
        drive(
            args.base,
            args.token,
            args.locations.split(","),
            args.evses.split(","),
            args.concurrency,
            args.seconds,
            args.max_requests,
        )
    )
    if args.final_out:
        with open(args.final_out, "w") as out:
            json.dump(final, out)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
