"""Per-token request budgets: a partner's flood is slowed at the door before it costs anyone else.

A token bucket per key (the hash of the caller's token): `rate` requests per second refill it up to
`burst`. The state is per gateway replica; N replicas behind a balancer give a partner up to N times
the rate, which is still a bound. Past MAX_KEYS keys the fuller half is forgotten, so random tokens
cannot grow the table without bound (each such sort is paid once per MAX_KEYS/2 new keys).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Most keys remembered at once; past it the stalest are forgotten (they start full again).
MAX_KEYS = 50_000


class TokenBuckets:
    """`take(key)`: None when the request may go, else the seconds until it could."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens left, when they were counted).
        self._buckets: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, key: str) -> float | None:
        if not self.enabled:
            return None
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_keys:
            self._forget(now)
        return None

    def _forget(self, now: float) -> None:
        """Forget the fuller half of the buckets: a full one loses nothing by it, and a client over
        its budget (a near-empty bucket) is the last one forgotten, so flooding the table with
        random tokens does not reset a flooder's budget."""

        def level(item: tuple[str, tuple[float, float]]) -> float:
            tokens, at = item[1]
            return tokens + (now - at) * self._rate

        fullest = sorted(self._buckets.items(), key=level, reverse=True)
        for key, _ in fullest[: max(1, len(fullest) // 2)]:
            del self._buckets[key]
