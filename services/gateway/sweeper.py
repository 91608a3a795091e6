"""The sweep of the registry outbox: announces again what a committed change still owes.

A change's entry normally goes within milliseconds of its commit (`publishing.announce`). One that
is older than `grace` was left behind: the process died or was cancelled between the write and the
publish, or the broker failed. Any replica may sweep; the receivers take a repeated event as one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from services.gateway.publishing import publish_all_owed
from services.gateway.state import Gateway
from shared.periodic import Periodic

log = structlog.get_logger(__name__)


class RegistrySweeper:
    """Publishes the outbox entries that outlived the grace period, and deletes removed partners."""

    def __init__(self, gateway: Gateway, every: float = 5.0, grace: float = 10.0, batch: int = 100) -> None:
        self._gateway = gateway
        # Well above the time from a commit to its publish, so that the sweep seldom doubles one.
        self._grace = grace
        self._batch = batch
        self._loop = Periodic("registry_sweep", every, self.sweep)

    async def sweep(self) -> int:
        """Announce what stayed unannounced; how many partners were handled."""
        before = datetime.now(UTC) - timedelta(seconds=self._grace)
        stale = await self._gateway.partners.unannounced(before, self._batch)
        done = 0
        for partner in stale:
            oldest = min((e.at for e in partner.outbox), default=partner.removed_at)
            log.warning(
                "registry_announced_again",
                partner_id=partner.id,
                entries=[e.announce.value if e.announce else "REVOKED" for e in partner.outbox],
                removed=partner.removed_at is not None,
                oldest=oldest.isoformat() if oldest else None,
            )
            try:
                await publish_all_owed(self._gateway, partner)
            except Exception:
                # The next partner may go through; this one is tried again at the next sweep.
                log.exception("registry_sweep_failed", partner_id=partner.id)
                continue
            done += 1
        return done

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
