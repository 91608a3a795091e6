"""A background task that runs one step every few seconds until stopped; what outbox sweeps run on.

A step that fails is logged and tried again at the next tick: a sweep must outlive a broker or
database blip, since it is what repairs their consequences.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class Periodic:
    """Runs `step` at once on start (a crash before it may have left work), then every `every` s."""

    def __init__(self, name: str, every: float, step: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._every = every
        self._step = step
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                log.exception(f"{self.name}_error")
            await asyncio.sleep(self._every)
