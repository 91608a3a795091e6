"""The outbox of partner location changes, on the in-memory repository: marks, clearing, sweeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from services.locations.handlers import dispatch, mark_of, partner_changed
from services.locations.repository import in_memory_repository
from shared.contracts.base import Message
from shared.contracts.locations import ChangeScope, LocationChange, PartnerLocationChanged
from shared.contracts.objects import ReceiverPut
from shared.modules.memory import MemoryReceiverStore
from shared.modules.outbox import Announcer
from shared.ocpi.v2_1_1.locations import Location
from tests.support.object_requests import receiver_put

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def location(lid: str) -> Location:
    return msgspec.convert(
        {"id": lid, "type": "ON_STREET", "address": "Main 1", "city": "Utrecht", "postal_code": "3511",
         "country": "NLD", "coordinates": {"latitude": "52.090000", "longitude": "5.120000"},
         "last_updated": T0},
        Location,
    )  # fmt: skip


def put(lid: str) -> ReceiverPut:
    return receiver_put(country_code="DE", party_id="CPO", location_id=lid, location=location(lid))


async def test_a_change_stays_marked_until_its_event_is_published_and_flushed() -> None:
    """Stored changes carry the mark; a published event clears the mark of its version only."""
    repo = in_memory_repository()
    partners = repo.partners
    assert isinstance(partners, MemoryReceiverStore)
    outcome = await dispatch(put("L1"), repo)
    (event,) = outcome.events
    assert isinstance(event, PartnerLocationChanged) and event.version == 1
    sent: list[Message] = []

    async def publish(message: Message) -> None:
        sent.append(message)

    announcer = Announcer(partners, publish, partner_changed, mark_of)
    assert await partners.unannounced(datetime.now(UTC) + timedelta(seconds=1), 10) != []
    stale = msgspec.structs.replace(event, version=0)
    announcer.published([stale])
    await announcer.flush()
    assert ("DE", "CPO", "L1") in partners.unannounced_since  # an older version clears nothing
    announcer.published([event])
    await announcer.flush()
    assert partners.unannounced_since == {}
    assert sent == []


async def test_the_sweep_republishes_what_a_dead_process_left_marked() -> None:
    """Marks older than the grace period are published again, as the whole current location."""
    repo = in_memory_repository()
    partners = repo.partners
    assert isinstance(partners, MemoryReceiverStore)
    partners.now = lambda: datetime.now(UTC) - timedelta(minutes=5)
    await dispatch(put("OLD"), repo)  # stored, and its process "died" before publishing
    partners.now = lambda: datetime.now(UTC)
    await dispatch(put("NEW"), repo)  # in flight: within the grace period
    sent: list[Message] = []

    async def publish(message: Message) -> None:
        sent.append(message)

    announcer = Announcer(partners, publish, partner_changed, mark_of, grace=30.0)
    assert await announcer.sweep() == 1
    (event,) = sent
    assert isinstance(event, PartnerLocationChanged)
    assert (event.location.id, event.version, event.change) == (
        "OLD",
        1,
        LocationChange(ChangeScope.LOCATION),
    )
    await announcer.flush()
    assert list(partners.unannounced_since) == [("DE", "CPO", "NEW")]
