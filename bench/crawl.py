"""An eMSP crawling a CPO's whole locations list: GET /ocpi/cpo/2.1.1/locations?limit=100, Link to Link.

A (CPO: gateway + locations) and B (eMSP: gateway) are connected by the credentials handshake; the
crawl runs in a separate process with the token B uses to call A. The locations are seeded straight
into A's locations database with insert_many, in the document shape MongoOwnLocations.add writes
(`_stored`, version 1, created_seq from the service's own counter, last_updated, recent_event_ids):
the seeding bypasses the broker and the locations service.

The target is 100,000 locations. On a database where every page costs time proportional to the
collection (SecantusDB: no covered count, sort+limit reads every matching document), a whole crawl
costs pages x collection size, so the script first times one page at a calibration size and crawls the
largest count whose estimated crawl fits CRAWL_BUDGET_SECONDS ("locations" in the output says which;
"reduced_from" says why). Then, if time is left, it seeds up to 100,000 and times single pages
there: the first page, the keyset page after the 99,900th location and the plain offset=99900 page.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from pymongo import ReturnDocument

from bench._support import cleanup_broker, deployment, settings_of
from bench.common import emit, infrastructure
from deploy.local_stack import Deployment
from services.locations.mongo import COUNTERS, OWN, _stored
from services.locations.paging import encode_cursor
from shared.ocpi.v2_1_1.types import to_utc
from shared.storage import connect_mongo, service_database
from tests.support.deployments import running
from tests.support.http import connect
from tests.support.objects import location, now

TARGET = 100_000
LIMIT = 100
CALIBRATION = 5_000
CRAWL_BUDGET_SECONDS = 90.0
# The 100k single-page phase starts only this early (it seeds ~90k more and fetches three slow pages).
SINGLE_PAGES_START_BEFORE_SECONDS = 190.0
# Pages of a large collection take longer than the production RPC timeout (5 s) on SecantusDB; raise
# it so the figures are times, not 3000 answers (see "rpc_timeout_seconds" in the output). A page
# still slower than this answers 3000 after it: the 100k figures then show status_code 3000.
RPC_TIMEOUT = "30"
BATCH = 1_000


async def seed(mongo: str, cpo: Deployment, start: int, count: int) -> tuple[float, int]:
    """Insert locations CRAWL<start>..CRAWL<start+count-1>: (seconds it took, first created_seq)."""
    client = connect_mongo(mongo)
    try:
        db = service_database(client, cpo.namespace, "locations")
        began = time.perf_counter()
        # Reserve created_seq numbers from the service's counter, as `_next_seq` does one at a time.
        counter = await db[COUNTERS].find_one_and_update(
            {"_id": OWN}, {"$inc": {"seq": count}}, return_document=ReturnDocument.AFTER
        )
        assert counter is not None, "the locations service creates its counter at start"
        first_seq = int(counter["seq"]) - count + 1
        stamp = now()
        for offset in range(0, count, BATCH):
            documents = []
            for n in range(offset, min(offset + BATCH, count)):
                loc = location(f"CRAWL{start + n:06d}", ["E1", "E2"], at=stamp)
                documents.append(
                    {
                        "_id": loc.id,
                        "location": _stored(loc),
                        "version": 1,
                        "created_seq": first_seq + n,
                        "last_updated": to_utc(loc.last_updated),
                        "recent_event_ids": [f"bench-seed-{start + n}"],
                    }
                )
            await db[OWN].insert_many(documents, ordered=False)
        return time.perf_counter() - began, first_seq
    finally:
        await client.close()


def crawler(*args: str, timeout: float) -> dict[str, Any]:
    """bench._crawler in its own process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench._crawler", *args], capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"crawler failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def fetches(url: str, token: str, repeat: int = 1) -> list[dict[str, Any]]:
    """Each fetch of one page: ms, http, status_code, objects."""
    result = crawler("page", url, "--token", token, "--repeat", str(repeat), timeout=400)
    return list(result["fetches"])


def page_ms(url: str, token: str, repeat: int = 1) -> list[float]:
    got = fetches(url, token, repeat)
    for fetch in got:
        assert fetch["status_code"] == 1000, fetch
    return [fetch["ms"] for fetch in got]


def main() -> None:
    started = time.monotonic()
    load_before = os.getloadavg()
    with infrastructure() as (amqp, mongo, database):
        a = deployment(amqp, mongo, "NL", "CPA", "CPO")
        a.extra_env["RPC_TIMEOUT_SECONDS"] = RPC_TIMEOUT
        b = deployment(amqp, mongo, "DE", "EMB", "EMSP")
        try:
            with running(a, "A ", services=("gateway", "locations")), running(b, "B ", services=("gateway",)):
                _, _, _, token = asyncio.run(connect(a, b, mongo, "bench"))
                base = f"{a.public_url}/ocpi/cpo/2.1.1/locations"

                # Calibration: one page at CALIBRATION locations, first and last (keyset) page.
                seeded_seconds, first_seq = asyncio.run(seed(mongo, a, 0, CALIBRATION))
                first = min(page_ms(f"{base}?limit={LIMIT}", token, 3))
                last_cursor = encode_cursor(first_seq + CALIBRATION - LIMIT - 1)
                last = min(page_ms(f"{base}?limit={LIMIT}&cursor={last_cursor}", token, 3))
                per_page_per_location = (first + last) / 2 / 1000 / CALIBRATION
                fits = math.sqrt(CRAWL_BUDGET_SECONDS * LIMIT / per_page_per_location)
                count = max(CALIBRATION, min(TARGET, int(fits) // 1000 * 1000))
                calibration = {
                    "locations": CALIBRATION,
                    "first_page_ms": first,
                    "last_keyset_page_ms": last,
                    "estimated_crawl_seconds_at_100k": round(
                        (TARGET / LIMIT) * per_page_per_location * TARGET, 1
                    ),
                }

                seeded_seconds += asyncio.run(seed(mongo, a, CALIBRATION, count - CALIBRATION))[0]
                with tempfile.NamedTemporaryFile("r", suffix=".ids") as ids_file:
                    crawl = crawler(
                        "crawl",
                        f"{base}?limit={LIMIT}",
                        "--token",
                        token,
                        "--ids-out",
                        ids_file.name,
                        "--max-pages",
                        str(count // LIMIT + 10),
                        timeout=600,
                    )
                    ids = [line.strip() for line in ids_file if line.strip()]
                offset_page = page_ms(f"{base}?limit={LIMIT}&offset={count - LIMIT}", token, 3)
                expected = {f"CRAWL{n:06d}" for n in range(count)}
                emit(
                    "crawl",
                    database=database,
                    locations=count,
                    reduced_from=None
                    if count == TARGET
                    else {
                        "target": TARGET,
                        "why": (
                            f"every page costs time proportional to the collection on this database; "
                            f"a crawl of {TARGET} was estimated at "
                            f"{calibration['estimated_crawl_seconds_at_100k']} s, the budget is "
                            f"{CRAWL_BUDGET_SECONDS} s"
                        ),
                    },
                    seeding="insert_many straight into A's locations database (bypassed the broker "
                    "and the locations service), document shape of MongoOwnLocations.add",
                    seed_seconds=round(seeded_seconds, 3),
                    evses_per_location=2,
                    limit=LIMIT,
                    calibration=calibration,
                    **crawl,
                    distinct_ids_equal_seeded=set(ids) == expected,
                    offset_page_at=count - LIMIT,
                    offset_page_ms=offset_page,
                    **settings_of(a),
                    loadavg_1m=round(os.getloadavg()[0], 2),
                )
                assert crawl["finished"], crawl["errors"]
                assert crawl["objects"] == count == len(set(ids)), (crawl["objects"], len(set(ids)))
                assert set(ids) == expected

                elapsed = time.monotonic() - started
                if elapsed < SINGLE_PAGES_START_BEFORE_SECONDS and count < TARGET:
                    more, _ = asyncio.run(seed(mongo, a, count, TARGET - count))
                    at = TARGET - LIMIT  # the 99,900th location: created_seq first_seq + at - 1
                    single = {
                        "first_page": fetches(f"{base}?limit={LIMIT}", token)[0],
                        "keyset_page_after_99900th": fetches(
                            f"{base}?limit={LIMIT}&cursor={encode_cursor(first_seq + at - 1)}", token
                        )[0],
                        "offset_page_99900": fetches(f"{base}?limit={LIMIT}&offset={at}", token)[0],
                    }
                    emit(
                        "crawl_single_pages",
                        database=database,
                        locations=TARGET,
                        seed_seconds=round(more, 3),
                        note="single pages at 100,000 locations, no whole crawl; the keyset page uses "
                        "a cursor built with the service's encode_cursor for the 99,900th created_seq",
                        **single,
                        **settings_of(a),
                    )
                else:
                    emit("crawl_single_pages", database=database, skipped=f"time: {elapsed:.0f} s elapsed")
        finally:
            cleanup_broker(amqp, a, b)
    emit(
        "crawl_wall",
        wall_seconds=round(time.monotonic() - started, 1),
        loadavg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )


if __name__ == "__main__":
    main()
