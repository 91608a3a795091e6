"""An eMSP crawling a CPO's whole locations list: GET /ocpi/cpo/2.1.1/locations?limit=100, Link to Link.

A (CPO: gateway + locations) and B (eMSP: gateway) are connected by the credentials handshake; the
crawl runs in a separate process with the token B uses to call A. 100,000 locations are seeded
straight into A's locations database with insert_many, in the document shape the service writes
(`stored_form`, version 1, created_seq from the service's own counter, last_updated, recent_event_ids):
the seeding bypasses the broker and the locations service. The crawl follows the Link headers to
the end and checks that it saw every seeded id exactly once. Then single pages: the first page
again, the keyset page after the 99,900th location, and offset=99900 without a cursor (a client
that builds offsets itself).
"""

from __future__ import annotations

import asyncio
import json
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
from services.locations.mongo import OWN
from shared.modules.mongo import COUNTERS, stored_form
from shared.modules.paging import encode_cursor
from shared.ocpi.v2_1_1.types import to_utc
from shared.storage import connect_mongo, service_database
from tests.support.deployments import running
from tests.support.http import connect
from tests.support.objects import location, now

TARGET = 100_000
LIMIT = 100
CRAWL_TIMEOUT_SECONDS = 1500.0
# A page by offset without a cursor skips the locations before it; on SecantusDB that takes longer
# than the production RPC timeout (5 s) at 100,000. Raised so the figure is a time, not a 3000.
RPC_TIMEOUT = "60"
BATCH = 1_000


async def seed(mongo: str, cpo: Deployment, start: int, count: int) -> tuple[float, int]:
    """Insert locations CRAWL<start>..CRAWL<start+count-1>: (seconds it took, first created_seq)."""
    client = connect_mongo(mongo)
    try:
        db = service_database(client, cpo.namespace, "locations")
        began = time.perf_counter()
        # Reserve created_seq numbers from the service's counter, as the service does per batch.
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
                        "location": stored_form(loc),
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
                seeded_seconds, first_seq = asyncio.run(seed(mongo, a, 0, TARGET))
                with tempfile.NamedTemporaryFile("r", suffix=".ids") as ids_file:
                    crawl = crawler(
                        "crawl",
                        f"{base}?limit={LIMIT}",
                        "--token",
                        token,
                        "--ids-out",
                        ids_file.name,
                        "--max-pages",
                        str(TARGET // LIMIT + 10),
                        "--timeout",
                        "90",
                        timeout=CRAWL_TIMEOUT_SECONDS,
                    )
                    ids = [line.strip() for line in ids_file if line.strip()]
                at = TARGET - LIMIT  # the 99,900th location: created_seq first_seq + at - 1
                single = {
                    "first_page_again": fetches(f"{base}?limit={LIMIT}", token, 3),
                    "keyset_page_after_99900th": fetches(
                        f"{base}?limit={LIMIT}&cursor={encode_cursor(first_seq + at - 1)}", token, 3
                    ),
                    "offset_page_99900_without_cursor": fetches(f"{base}?limit={LIMIT}&offset={at}", token),
                }
                expected = {f"CRAWL{n:06d}" for n in range(TARGET)}
                emit(
                    "crawl",
                    database=database,
                    locations=TARGET,
                    seeding="insert_many straight into A's locations database (bypassed the broker "
                    "and the locations service), in the document shape the service writes",
                    seed_seconds=round(seeded_seconds, 3),
                    evses_per_location=2,
                    limit=LIMIT,
                    **crawl,
                    distinct_ids_equal_seeded=set(ids) == expected,
                    single_pages=single,
                    **settings_of(a),
                    loadavg_1m=round(os.getloadavg()[0], 2),
                )
                assert crawl["finished"], crawl["errors"]
                assert crawl["objects"] == TARGET == len(set(ids)), (crawl["objects"], len(set(ids)))
                assert set(ids) == expected
        finally:
            cleanup_broker(amqp, a, b)
    emit(
        "crawl_wall",
        wall_seconds=round(time.monotonic() - started, 1),
        loadavg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )


if __name__ == "__main__":
    main()
