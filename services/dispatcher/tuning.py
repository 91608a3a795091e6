"""Timing and sizing knobs of the dispatcher, derived from the deployment settings."""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.settings import Settings


@dataclass(frozen=True)
class Tuning:
    """How often loops run, how long leases last, how hard to retry."""

    push_timeout: float = 5.0
    workers: int = 8
    # How often an idle replica looks for work nobody told it about: pushes and pulls other replicas
    # left due (a dead replica's retries, at worst this late), due probes. What this replica queues
    # or schedules wakes a worker at once or by a timer, so a slow poll costs latency only there.
    poll: float = 5.0
    # The calls of one push go out this many at a time (each addresses its own part of the object).
    push_concurrency: int = 16
    # A push makes at most `max_push_calls` calls (in rounds of `push_concurrency`) plus one
    # fallback PUT; the lease outlasts all those rounds twice. More parts and the object goes whole.
    lease: float = 60.0
    probe_tick: float = 5.0
    # How often parked pushes of partners that are no longer OUT_OF_SYNC are looked for (a race).
    reconcile_every: float = 10.0
    # The in-memory partner projection is read again when older than this (other replicas' changes).
    partner_ttl: float = 5.0
    # Under a steady stream of events, batches of them start at least this far apart: each batch
    # coalesces what came meanwhile into one write per object and partner (an event after a quiet
    # spell is handled at once). The write of a batch costs per object, not per event.
    consume_linger: float = 0.05
    # The longest a push completion waits for those of the pushes running alongside (group commit).
    complete_window: float = 0.05
    # A claim that found its push leased by another replica looks again after this long.
    missed_retry: float = 1.0
    probe_min: float = 1.0
    probe_max: float = 30.0
    cpo_probe: float = 5.0
    pull_page_limit: int = 100
    pull_max_attempts: int = 5
    pull_lease: float = 60.0
    stop_grace: float = 15.0
    # The most workers of a replica one partner may hold at once (0: half of them, at least one): a
    # slow or black-holing partner then cannot keep the others' pushes waiting (security review M6).
    partner_share: int = 0

    def __post_init__(self) -> None:
        if self.max_push_calls < 1:
            raise ValueError("the push lease must outlast a call and its fallback twice over")
        if self.pull_lease < 2 * self.push_timeout:
            raise ValueError("the pull lease must outlast a page request twice over")

    @property
    def share(self) -> int:
        """Workers one partner may hold at once."""
        return self.partner_share or max(1, self.workers // 2)

    @property
    def max_push_calls(self) -> int:
        """The most calls one push may make: as many rounds as fit twice in the lease, less the
        fallback's, `push_concurrency` calls each."""
        rounds = int(self.lease // (2 * self.push_timeout)) - 1
        return rounds * self.push_concurrency

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: float | int) -> Tuning:
        """Defaults scaled to the push timeout; `overrides` (tests, operators) win."""
        timeout = settings.push_timeout
        calls = 4  # a usual push: a few rounds of calls and a fallback
        base = cls(
            push_timeout=timeout,
            lease=max(60.0, 2 * calls * timeout),
            pull_lease=max(60.0, 4 * timeout),
            pull_page_limit=settings.page_limit_max,
            workers=settings.push_workers,
            stop_grace=max(10.0, calls * timeout),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]
