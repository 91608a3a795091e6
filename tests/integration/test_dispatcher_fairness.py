"""A slow partner cannot hold more than its share of a replica's push workers (security review M6)."""

from __future__ import annotations

import time

import pytest

from shared.messaging.broker import Broker
from tests.integration.test_dispatcher import (
    LocationModel,
    make_settings,
    make_tuning,
    register,
    running_dispatcher,
    started,
)
from tests.integration.test_dispatcher_partner_fake import FakePartner
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SLOW = 0.6  # seconds the slow partner takes per request (the push timeout here is 1 s)
BACKLOG = 12  # its pushes queued before the fast partner's one


async def test_a_slow_partners_backlog_leaves_workers_for_the_others(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """4 workers, a share of 2: with 12 pushes queued for a partner that takes 1 s each, another
    partner's push still goes out at once (without the share it waited behind the backlog: with
    every worker on the slow partner, about 1.8 s)."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    tuning = make_tuning(settings, workers=4)
    assert tuning.share == 2
    slow, fast = FakePartner("slow"), FakePartner("fast")
    async with started(slow, fast), running_dispatcher(settings, tuning) as ctx:
        await register(broker, ctx, slow, "slow-1", party=("DE", "SLO"))
        slow.pause = SLOW
        for n in range(BACKLOG):
            await broker.publish_event(LocationModel(f"B{n:02d}", ["E1"]).created())
        await eventually(lambda: len(slow.received) >= 2, 5, "the slow partner busy")
        await register(broker, ctx, fast, "fast-1", party=("DE", "FAS"))
        began = time.monotonic()
        await broker.publish_event(LocationModel("QUICK", ["E1"]).created())
        await eventually(lambda: "QUICK" in fast.store, 5, "the fast partner's push", pause=0.02)
        took = time.monotonic() - began
        # The slow partner is still working through its backlog, and never had more than 2 at once.
        assert len(slow.pushes(ok_only=False)) < BACKLOG
        assert took < SLOW, f"the fast partner waited {took:.2f} s"
        await eventually(lambda: all(f"B{n:02d}" in slow.store for n in range(BACKLOG)), 15, "the backlog")
    starts = sorted(r.at for r in slow.pushes(ok_only=False))
    # At most 2 requests of the slow partner overlap: the 3rd of any 3 began after the 1st ended.
    assert all(later - first >= SLOW * 0.9 for first, later in zip(starts, starts[2:], strict=False))
