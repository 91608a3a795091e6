"""Waiting for a condition in tests and benchmarks: poll it, bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], seconds: float, what: str = "", *, pause: float = 0.05
) -> float:
    """Poll `check` (plain or async) until it holds; how long it took. AssertionError naming `what`
    after `seconds`."""
    started = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what or 'condition'} not true after {seconds}s")
        await asyncio.sleep(pause)
