"""Waking one idle worker at a time, so that news of one due push does not send every worker to the
database at once (each claim is a query; a herd of empty claims is load for nothing)."""

from __future__ import annotations

import asyncio
from collections import deque


class WakeOne:
    """Each `notify` wakes the worker that has waited longest, or the next one to wait."""

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._pending = False
        self._closed = False

    def notify(self) -> None:
        """Wake one waiting worker; with none waiting, the next `wait` returns at once."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._pending = True

    def close(self) -> None:
        """Wake every waiting worker, and from now on every `wait` returns at once (to stop)."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Until notified (or closed)."""
        if self._closed:
            return
        if self._pending:
            self._pending = False
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
