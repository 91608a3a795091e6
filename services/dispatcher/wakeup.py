"""Waking idle workers one per queued push, so that news of one due push does not send every worker to
the database at once (each claim is a query; a herd of empty claims is load for nothing)."""

from __future__ import annotations

import asyncio
import enum
from collections import deque


class Signal(enum.Enum):
    """Why a worker was woken; the push loop acts on it after its claim."""

    QUEUED = "QUEUED"  # a push was queued or unparked by this replica
    POLL = "POLL"  # the slow poll: a find may be one of a backlog, so look again
    TIMER = "TIMER"  # a time this replica scheduled (a retry, a second look)


class WakeOne:
    """Each signal wakes the worker that has waited longest, or the next one to wait.

    A signal carries its reason, which the woken worker gets back. Signals nobody waits for are
    kept (at most `keep` of them), so that every queued push gets its look.
    """

    def __init__(self, keep: int | None = None) -> None:
        self._waiters: deque[asyncio.Future[Signal]] = deque()
        self._pending: deque[Signal] = deque()
        self._keep = keep
        self._closed = False

    def notify(self, count: int = 1, signal: Signal = Signal.QUEUED) -> int:
        """Send `count` signals; the number that will wake a worker (the rest were over `keep`)."""
        sent = 0
        for _ in range(count):
            if self._wake_one(signal):
                sent += 1
            elif self._keep is None or len(self._pending) < self._keep:
                self._pending.append(signal)
                sent += 1
        return sent

    def _wake_one(self, signal: Signal) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(signal)
                return True
        return False

    def close(self) -> None:
        """Wake every waiting worker, and from now on every `wait` returns at once (to stop)."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(Signal.QUEUED)

    async def wait(self) -> Signal:
        """Until signalled (or closed); the signal's reason."""
        if self._closed:
            return Signal.QUEUED
        if self._pending:
            return self._pending.popleft()
        waiter: asyncio.Future[Signal] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # A signal that reached a worker being cancelled goes to the next one.
            if waiter.done() and not waiter.cancelled():
                self.notify(1, waiter.result())
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
