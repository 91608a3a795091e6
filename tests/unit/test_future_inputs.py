"""Internal inputs and re-sync imports stamped far in the future are refused (security review L13).

A producer's bug (or a partner's object pulled during a re-sync, which does not pass the gateway)
stamped 9999-12-31 would make every later real update of the object look older, freezing it. The
input queues dead-letter such a message with the reason and change nothing; a later normal input
still applies. Refused rather than clamped: clamped to now + tolerance, the object would still
ignore correct updates for the whole tolerance, and the producer's bug would go unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from services.locations.app import input_handler
from services.locations.repository import Repository, in_memory_repository
from services.sessions.cpo_inputs import SessionInputHandler
from services.sessions.cpo_rules import SessionInputs, StartFacts
from shared.contracts.base import Message
from shared.contracts.locations import EvseStatusSet, LocationUpsert, PartnerLocationImport
from shared.contracts.partners import Party
from shared.contracts.sessions import ChargingSession, SessionStart
from shared.messaging.consumer import Delivery
from shared.modules.memory import MemorySenderStore
from shared.modules.sender import Rejected
from shared.ocpi.v2_1_1.locations import Location, Status
from shared.ocpi.v2_1_1.types import utc_now
from tests.unit.test_locations_handlers import evse, location

FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class _Events:
    def __init__(self) -> None:
        self.published: list[Message] = []

    async def publish_event(self, event: Message) -> None:
        self.published.append(event)


class _Announcer:
    def published(self, events: Sequence[Message]) -> None:
        pass


def _delivery(message: Message) -> Delivery:
    return Delivery(msgspec.json.encode(message), "x", {}, None, False)


async def _handle(repo: Repository, *messages: Message) -> list[str | None]:
    handler = input_handler(repo, _Events().publish_event, _Announcer())  # type: ignore[arg-type]
    return await handler([_delivery(message) for message in messages])


async def _stored(repo: Repository, location_id: str = "L1") -> Location:
    record = await repo.own.get(location_id)
    assert record is not None
    return record.value


def _refused(verdict: str | None, field: str) -> bool:
    return (
        verdict is not None and field in verdict and "9999-12-31T23:59:59Z" in verdict and "ahead" in verdict
    )


async def test_a_location_upsert_from_year_9999_is_dead_lettered_and_a_later_one_applies() -> None:
    repo = in_memory_repository()
    before = utc_now() - timedelta(hours=1)
    assert await _handle(repo, LocationUpsert(event_id="e1", location=location(at=before))) == [None]

    frozen = LocationUpsert(event_id="e2", location=location(at=FAR_FUTURE))
    [verdict] = await _handle(repo, frozen)
    assert _refused(verdict, "`$.location.last_updated`"), verdict
    assert (await _stored(repo)).last_updated == before

    later = LocationUpsert(
        event_id="e3", location=msgspec.structs.replace(location(at=utc_now()), name="Later")
    )
    assert await _handle(repo, later) == [None]
    assert (await _stored(repo)).name == "Later"


async def test_a_far_future_stamp_deep_in_an_upsert_is_refused() -> None:
    """An EVSE stamped 9999 inside a location of today would freeze that EVSE's status."""
    repo = in_memory_repository()
    upsert = LocationUpsert(event_id="e1", location=location(at=utc_now(), evses=[evse(at=FAR_FUTURE)]))
    [verdict] = await _handle(repo, upsert)
    assert _refused(verdict, "`$.location.evses[0].last_updated`"), verdict
    assert await repo.own.get("L1") is None


async def test_an_evse_status_from_year_9999_is_dead_lettered_and_a_later_one_applies() -> None:
    repo = in_memory_repository()
    before = utc_now() - timedelta(hours=1)
    await _handle(repo, LocationUpsert(event_id="e1", location=location(at=before)))

    status = EvseStatusSet(
        event_id="e2", location_id="L1", evse_uid="E1", status=Status.CHARGING, at=FAR_FUTURE
    )
    [verdict] = await _handle(repo, status)
    assert _refused(verdict, "`$.at`"), verdict
    stored = await _stored(repo)
    assert stored.evses is not None and stored.evses[0].status is Status.AVAILABLE
    assert stored.last_updated == before

    later = EvseStatusSet(event_id="e3", location_id="L1", evse_uid="E1", status=Status.BLOCKED, at=utc_now())
    assert await _handle(repo, later) == [None]
    stored = await _stored(repo)
    assert stored.evses is not None and stored.evses[0].status is Status.BLOCKED


async def test_a_stamp_within_the_tolerance_applies() -> None:
    """Clock skew of a minute is no bug: the input is applied as it is."""
    repo = in_memory_repository()
    ahead = utc_now() + timedelta(minutes=1)
    assert await _handle(repo, LocationUpsert(event_id="e1", location=location(at=ahead))) == [None]
    assert (await _stored(repo)).last_updated == ahead


async def test_a_partner_location_imported_from_year_9999_is_not_stored() -> None:
    """A re-sync pull does not pass the gateway: its import is refused by the service itself."""
    repo = in_memory_repository()
    imported = PartnerLocationImport(country_code="NL", party_id="CPA", location=location(at=FAR_FUTURE))
    [verdict] = await _handle(repo, imported)
    assert _refused(verdict, "`$.location.last_updated`"), verdict
    assert await repo.partners.get(Party("NL", "CPA"), "L1") is None


class _NoLookups:
    """A start refused for its stamp never gets as far as the lookups."""

    def __init__(self) -> None:
        self.asked: list[SessionStart] = []

    async def facts(self, msg: SessionStart) -> StartFacts:
        self.asked.append(msg)
        raise Rejected("no lookups in this test")


async def test_a_session_start_from_year_9999_is_dead_lettered_before_its_lookups() -> None:
    store: MemorySenderStore[ChargingSession] = MemorySenderStore(lambda c: c.session.last_updated)
    lookups = _NoLookups()
    events = _Events()
    handler = SessionInputHandler(store, SessionInputs(30.0, "EUR"), lookups, events.publish_event)  # type: ignore[arg-type]
    start = SessionStart(
        event_id="s1", session_id="S1", token_uid="CARD1", location_id="L1", evse_uid="E1",
        connector_id="1", at=FAR_FUTURE,
    )  # fmt: skip
    [verdict] = await handler([_delivery(start)])
    assert _refused(verdict, "`$.at`"), verdict
    assert lookups.asked == [] and store.records == {} and events.published == []
