"""An eMSP crawling a CPO's GET /locations (run as its own process).

`crawl URL`: follow `Link: <...>; rel="next"` from URL to the end, one request at a time, as a partner
does; writes every object id to --ids-out (one per line) and prints one JSON line of figures.
`page URL`: fetch one page --repeat times; prints the time of each fetch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.load import percentile


async def fetch(session: aiohttp.ClientSession, url: str, token: str) -> tuple[float, int, Any, Any]:
    """(seconds, HTTP status, decoded body, response) of one GET."""
    started = time.perf_counter()
    async with session.get(url, headers={"Authorization": f"Token {token}"}) as response:
        raw = await response.read()
        took = time.perf_counter() - started
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")[:200]
        return took, response.status, body, response


async def crawl(url: str, token: str, ids: list[str], max_pages: int, page_seconds: float) -> dict[str, Any]:
    times: list[float] = []
    errors: list[str] = []
    total_count = None
    began = time.perf_counter()
    next_url: str | None = url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=page_seconds)) as session:
        while next_url is not None and len(times) < max_pages:
            took, status, body, response = await fetch(session, next_url, token)
            times.append(took)
            if status != 200 or not isinstance(body, dict) or body.get("status_code") != 1000:
                code = body.get("status_code") if isinstance(body, dict) else None
                errors.append(f"page {len(times)}: HTTP {status} status_code {code}")
                break
            if total_count is None:
                total_count = response.headers.get("X-Total-Count")
            ids.extend(str(obj["id"]) for obj in body.get("data") or [])
            link = response.links.get("next")
            next_url = str(link["url"]) if link else None
    elapsed = time.perf_counter() - began
    ordered = sorted(times)
    return {
        "pages": len(times),
        "objects": len(ids),
        "distinct_ids": len(set(ids)),
        "x_total_count_first_page": None if total_count is None else int(total_count),
        "finished": next_url is None and not errors,
        "errors": errors,
        "first_page_ms": round(times[0] * 1000, 3) if times else None,
        "last_page_ms": round(times[-1] * 1000, 3) if times else None,
        "page_p50_ms": round(percentile(ordered, 0.5) * 1000, 3),
        "page_p95_ms": round(percentile(ordered, 0.95) * 1000, 3),
        "page_max_ms": round(ordered[-1] * 1000, 3) if ordered else None,
        "crawl_seconds": round(elapsed, 3),
        "objects_per_s": round(len(ids) / elapsed, 1) if elapsed else None,
    }


async def pages(url: str, token: str, repeat: int, page_seconds: float) -> dict[str, Any]:
    results = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=page_seconds)) as session:
        for _ in range(repeat):
            took, status, body, _ = await fetch(session, url, token)
            data = body.get("data") if isinstance(body, dict) else None
            results.append(
                {
                    "ms": round(took * 1000, 3),
                    "http": status,
                    "status_code": body.get("status_code") if isinstance(body, dict) else None,
                    "objects": len(data) if isinstance(data, list) else None,
                    "first_id": data[0]["id"] if data else None,
                }
            )
    return {"fetches": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("crawl", "page"))
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--ids-out")
    parser.add_argument("--max-pages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if args.mode == "crawl":
        ids: list[str] = []
        result = asyncio.run(crawl(args.url, args.token, ids, args.max_pages, args.timeout))
        with open(args.ids_out, "w") as out:
            out.writelines(f"{i}\n" for i in ids)
    else:
        result = asyncio.run(pages(args.url, args.token, args.repeat, args.timeout))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
