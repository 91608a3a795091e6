"""A's locations Sender list as B crawls it: Link, X-Total-Count, X-Limit, date filters, the cap.

Each test puts its locations in a time window of its own (far in the future) and filters on it,
so other tests' locations on the shared deployment do not show up.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from shared.contracts.locations import EvseStatusSet, LocationUpsert
from shared.messaging.broker import Broker
from tests.conftest import Connection
from tests.support import roaming
from tests.support.http import Reply, request
from tests.support.objects import event_id, location, publish

LINK = re.compile(r'^<([^>]+)>; rel="next"$')


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def cpo_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        yield broker


def _window() -> datetime:
    """The start of a one-day window nobody else uses: in the past (B refuses a last_updated far
    ahead of its clock, and A pushes these locations to B too)."""
    return datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(10_000))


async def _seed(connection: Connection, broker: Broker, start: datetime, count: int) -> list[str]:
    """`count` locations with last_updated inside [start, start + 1 day), visible at A."""
    prefix = f"PG{event_id()[:6]}"
    ids = [f"{prefix}-{i:03d}" for i in range(count)]
    for i, location_id in enumerate(ids):
        made = location(location_id, ["E1"], start + timedelta(minutes=i))
        await publish(broker, LocationUpsert(event_id=event_id(), location=made))
    url = _list_url(connection, start, limit=1)
    for _ in range(200):
        if int((await _get(connection, url)).headers.get("X-Total-Count", "0")) == count:
            return ids
        await asyncio.sleep(0.1)
    raise AssertionError("seeded locations did not all arrive")


def _list_url(connection: Connection, start: datetime, limit: int, **extra: str) -> str:
    query = f"date_from={_text(start)}&date_to={_text(start + timedelta(days=1))}&limit={limit}"
    query += "".join(f"&{k}={v}" for k, v in extra.items())
    return f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/locations?{query}"


async def _get(connection: Connection, url: str) -> Reply:
    reply = await request("GET", url, token=connection.emsp_to_cpo_token)
    assert reply.status == 200 and reply.status_code == 1000, reply
    return reply


async def _crawl(connection: Connection, url: str) -> tuple[list[Reply], list[str]]:
    pages: list[Reply] = []
    ids: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        page = await _get(connection, next_url)
        pages.append(page)
        ids += [item["id"] for item in page.data]
        link = page.headers.get("Link")
        next_url = LINK.match(link).group(1) if link else None  # type: ignore[union-attr]
    return pages, ids


@pytest.mark.parametrize("count", [4, 5, 6])
async def test_limit_minus_one_limit_and_limit_plus_one(
    connection: Connection, cpo_broker: Broker, count: int
) -> None:
    """With limit 5: 4 and 5 objects are one page without Link, 6 objects are two pages."""
    start = _window()
    ids = await _seed(connection, cpo_broker, start, count)
    pages, crawled = await _crawl(connection, _list_url(connection, start, limit=5))
    # Each once; the order is creation order, which concurrent consumers may make differ from publish order.
    assert sorted(crawled) == sorted(ids) and len(crawled) == len(ids)
    assert len(pages) == (2 if count == 6 else 1)
    assert "Link" not in pages[-1].headers
    for page in pages:
        assert page.headers["X-Total-Count"] == str(count) and page.headers["X-Limit"] == "5"


async def test_link_keeps_the_filters_and_points_at_this_interface(
    connection: Connection, cpo_broker: Broker
) -> None:
    """The next link carries date_from, date_to and limit, on the sender's own public URL."""
    start = _window()
    await _seed(connection, cpo_broker, start, 3)
    first = await _get(connection, _list_url(connection, start, limit=2))
    link = LINK.match(first.headers["Link"])
    assert link is not None
    parsed = urlparse(link.group(1))
    assert (
        f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
        == f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/locations"
    )
    query = parse_qs(parsed.query)
    assert query["date_from"] == [_text(start)] and query["date_to"] == [_text(start + timedelta(days=1))]
    assert query["limit"] == ["2"] and query["offset"] == ["2"]


async def test_date_filters_from_inclusive_to_exclusive(connection: Connection, cpo_broker: Broker) -> None:
    """date_from includes its instant, date_to excludes its own."""
    start = _window()
    ids = await _seed(connection, cpo_broker, start, 4)  # at start + 0, 1, 2, 3 minutes
    narrow = (
        f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/locations"
        f"?date_from={_text(start + timedelta(minutes=1))}&date_to={_text(start + timedelta(minutes=3))}"
    )
    page = await _get(connection, narrow)
    assert sorted(item["id"] for item in page.data) == ids[1:3]
    assert page.headers["X-Total-Count"] == "2"


async def test_limit_above_the_cap_is_lowered(connection: Connection, cpo_broker: Broker) -> None:
    """Asking for 1000 gets at most PAGE_LIMIT_MAX (100), and X-Limit says so."""
    start = _window()
    await _seed(connection, cpo_broker, start, 2)
    page = await _get(connection, _list_url(connection, start, limit=1000))
    assert page.headers["X-Limit"] == "100"
    bad = await request("GET", _list_url(connection, start, limit=-1), token=connection.emsp_to_cpo_token)
    assert (bad.status, bad.status_code) == (400, 2001)


async def test_a_crawl_during_updates_returns_every_object_once(
    connection: Connection, cpo_broker: Broker
) -> None:
    """Objects updated while B crawls are neither skipped nor repeated."""
    start = _window()
    ids = await _seed(connection, cpo_broker, start, 12)
    first = await _get(connection, _list_url(connection, start, limit=5))
    seen = [item["id"] for item in first.data]
    # Update every object already crawled and some not yet crawled, inside the window.
    for i, location_id in enumerate(ids[:8]):
        at = start + timedelta(hours=1, minutes=i)
        await publish(
            cpo_broker,
            EvseStatusSet(
                event_id=event_id(), location_id=location_id, evse_uid="E1", status="CHARGING", at=at
            ),
        )
    await asyncio.sleep(1.0)
    link = LINK.match(first.headers["Link"])
    assert link is not None
    _, rest = await _crawl(connection, link.group(1))
    crawled = seen + rest
    assert sorted(crawled) == sorted(ids) and len(crawled) == len(set(crawled))


async def test_a_client_building_its_own_offsets_gets_correct_pages(
    connection: Connection, cpo_broker: Broker
) -> None:
    """offset without our cursor still pages correctly."""
    start = _window()
    ids = await _seed(connection, cpo_broker, start, 7)
    pages: list[Any] = []
    for offset in (0, 3, 6):
        page = await _get(connection, _list_url(connection, start, limit=3, offset=str(offset)))
        pages += [item["id"] for item in page.data]
    _, by_links = await _crawl(connection, _list_url(connection, start, limit=3))
    assert pages == by_links and sorted(pages) == sorted(ids)
