"""Per-token request budgets and the memory of unknown tokens (security review M6/L7)."""

from __future__ import annotations

import pytest

from services.gateway.auth import TokenCache, authenticate
from services.gateway.partners import Partner
from services.gateway.ratelimit import TokenBuckets
from shared.errors import TooManyRequests, Unauthorized, answer_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10.0, burst=5, clock=clock)
    assert [buckets.take("a") for _ in range(5)] == [None] * 5
    wait = buckets.take("a")
    assert wait == pytest.approx(0.1)
    clock.now += 0.1
    assert buckets.take("a") is None
    assert buckets.take("a") is not None
    # Another token has its own budget.
    assert buckets.take("b") is None


def test_a_refused_request_costs_nothing_from_the_budget() -> None:
    """A flooding client that keeps trying does not push its own recovery further away."""
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)
    assert buckets.take("a") is None
    for _ in range(100):
        assert buckets.take("a") is not None
    clock.now += 1.0
    assert buckets.take("a") is None


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    buckets = TokenBuckets(rate=0.0, burst=1)
    assert all(buckets.take("a") is None for _ in range(10_000))


def test_the_table_stays_bounded_and_keeps_a_flooder_over_its_budget() -> None:
    """Random tokens cannot grow the table; a key over its budget is kept while fuller ones go."""
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock, max_keys=100)
    for i in range(99):
        buckets.take(f"old-{i}")
    clock.now += 10.0  # the old buckets are full again: forgetting them loses nothing
    buckets.take("flood")
    buckets.take("flood")
    assert buckets.take("flood") is not None
    buckets.take("new")  # the 101st key
    assert "flood" in buckets._buckets
    assert len(buckets._buckets) <= 51
    for i in range(1000):
        buckets.take(f"random-{i}")
        assert len(buckets._buckets) <= 101
    # No time passed: the flooder is still over its budget, however many keys came and went.
    assert buckets.take("flood") is not None


def test_too_many_requests_is_an_http_429_with_a_client_error_status() -> None:
    assert answer_of(TooManyRequests("slow down", retry_after=0.3)) == (429, 2000)


class CountingRepo:
    """The partner registry's lookup, counted."""

    def __init__(self) -> None:
        self.lookups = 0

    async def by_token_hash(self, hashed: str) -> Partner | None:
        self.lookups += 1
        return None


async def test_an_unknown_token_is_looked_up_once_then_refused_from_memory() -> None:
    repo = CountingRepo()
    cache = TokenCache()
    for _ in range(50):
        with pytest.raises(Unauthorized):
            await authenticate("Token not-a-token-we-issued", repo, cache)  # type: ignore[arg-type]
    assert repo.lookups == 1


async def test_an_unknown_token_is_looked_up_again_after_the_memory_expires() -> None:
    repo = CountingRepo()
    cache = TokenCache(unknown_ttl=0.0)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await authenticate("Token not-a-token-we-issued", repo, cache)  # type: ignore[arg-type]
    assert repo.lookups == 3


async def test_a_flood_with_one_token_is_refused_before_any_lookup() -> None:
    repo = CountingRepo()
    buckets = TokenBuckets(rate=1.0, burst=3, clock=Clock())
    refused = 0
    for _ in range(10):
        try:
            await authenticate("Token flood", repo, TokenCache(), buckets)  # type: ignore[arg-type]
        except TooManyRequests:
            refused += 1
        except Unauthorized:
            pass
    assert refused == 7
    assert repo.lookups == 3
