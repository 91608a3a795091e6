"""Unit tests of the push worker's announcement of a delivery (CdrDelivered): published before the
completion, retried a few times when the broker refuses it, then given up with an error line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
import structlog

from services.dispatcher import push_worker
from services.dispatcher.health import PartnerHealth
from services.dispatcher.ocpi_client import OcpiClient
from services.dispatcher.partners import PartnerCache
from services.dispatcher.push_worker import ANNOUNCE_ATTEMPTS, PushWorker
from services.dispatcher.pushes import PushQueue
from services.dispatcher.tuning import Tuning
from shared.contracts.base import Message
from shared.contracts.cdrs import CdrDelivered
from shared.settings import Settings

EVENT = CdrDelivered(
    cdr_id="C1", partner_id="emsp-1", location="https://e/cdrs/C1", at=datetime(2024, 5, 1, tzinfo=UTC)
)


def worker(publish: Any) -> PushWorker:
    return PushWorker(
        cast(PushQueue, object()),
        cast(PartnerCache, object()),
        cast(PartnerHealth, object()),
        cast(OcpiClient, object()),
        cast(Settings, object()),
        Tuning(),
        "me",
        publish=publish,
    )


async def test_an_announcement_the_broker_refuses_is_retried_then_logged_with_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused publish goes again (ANNOUNCE_ATTEMPTS in all); one that keeps failing ends in one
    error line carrying the event, so the push still completes (the partner has the CDR)."""
    monkeypatch.setattr(push_worker, "ANNOUNCE_PAUSE", 0.0)
    attempts: list[Message] = []

    async def flaky(event: Message) -> None:
        attempts.append(event)
        if len(attempts) < 2:
            raise ConnectionError("broker away")

    await worker(flaky)._announce(EVENT, {"key": "C1"})
    assert attempts == [EVENT, EVENT]

    async def down(event: Message) -> None:
        attempts.append(event)
        raise ConnectionError("broker away")

    attempts.clear()
    with structlog.testing.capture_logs() as logs:
        await worker(down)._announce(EVENT, {"key": "C1"})
    assert len(attempts) == ANNOUNCE_ATTEMPTS
    (error,) = [line for line in logs if line["log_level"] == "error"]
    assert (
        error["event"] == "push_announcement_not_published"
        and '"location":"https://e/cdrs/C1"' in error["body"]
    )
