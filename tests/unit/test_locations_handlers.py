"""Handlers of the locations service, driven through the production dispatch with the in-memory repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from services.locations.handlers import dispatch, handle_location_inputs
from services.locations.inputs import Rejected
from services.locations.repository import Repository, in_memory_repository, updated_of
from shared.contracts.base import Message, Outcome, RpcReply
from shared.contracts.locations import (
    ChangeScope,
    EvseStatusSet,
    EvseUpsert,
    LocationChange,
    LocationChanged,
    LocationInput,
    LocationUpsert,
    PartnerLocationChanged,
    PartnerLocationImport,
)
from shared.contracts.objects import ReceiverPatch, ReceiverPut
from shared.modules.memory import MemorySenderStore
from shared.modules.sender import OwnWrite
from shared.ocpi.v2_1_1.locations import EVSE, Connector, Location, Status
from tests.support.object_requests import receiver_get, receiver_patch, receiver_put, sender_get, sender_list

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def connector(cid: str = "1", at: datetime = T0) -> Connector:
    return Connector(
        id=cid, standard="IEC_62196_T2", format="SOCKET", power_type="AC_3_PHASE",  # type: ignore[arg-type]
        voltage=230, amperage=32, last_updated=at,
    )  # fmt: skip


def evse(uid: str = "E1", at: datetime = T0, status: Status = Status.AVAILABLE) -> EVSE:
    return EVSE(uid=uid, status=status, connectors=[connector(at=at)], last_updated=at)


def location(lid: str = "L1", at: datetime = T0, evses: list[EVSE] | None = None) -> Location:
    return msgspec.convert(
        {"id": lid, "type": "ON_STREET", "address": "Main 1", "city": "Utrecht", "postal_code": "3511",
         "country": "NLD", "coordinates": {"latitude": "52.090000", "longitude": "5.120000"},
         "evses": [evse(at=at)] if evses is None else evses, "last_updated": at},
        Location,
    )  # fmt: skip


def data(reply: RpcReply | None) -> Any:
    assert reply is not None
    return msgspec.json.decode(reply.data)


def reply_of(outcome: Outcome) -> RpcReply:
    assert outcome.reply is not None
    return outcome.reply


@pytest.fixture
def repo() -> Repository:
    return in_memory_repository()


async def seed(repo: Repository, count: int, start: datetime = T0) -> list[str]:
    """Create `count` own locations through the input handler, one minute apart."""
    ids = [f"L{i:03d}" for i in range(count)]
    for i, lid in enumerate(ids):
        await dispatch(
            LocationUpsert(event_id=f"create-{lid}", location=location(lid, start + timedelta(minutes=i))),
            repo,
        )
    return ids


async def crawl(repo: Repository, limit: int, between: Any = None, **filters: Any) -> list[list[str]]:
    """Follow next_query like a client follows Link headers; `between(page_no)` runs after each page."""
    pages: list[list[str]] = []
    query: dict[str, Any] = {"limit": limit, **filters}
    for _ in range(100):
        reply = reply_of(await dispatch(sender_list(**query), repo))
        assert reply.status_code == 1000 and reply.limit == limit
        pages.append([item["id"] for item in data(reply)])
        if reply.next_query is None:
            return pages
        if between is not None:
            await between(len(pages))
        query = dict(reply.next_query)
    raise AssertionError("crawl did not end")


# ---- sender list ------------------------------------------------------------------------------------


async def test_empty_list_is_one_last_page(repo: Repository) -> None:
    """With nothing stored the first page is empty, counts 0 and has no next page."""
    reply = reply_of(await dispatch(sender_list(limit=10), repo))
    assert data(reply) == [] and reply.total_count == 0 and reply.next_query is None


@pytest.mark.parametrize(("count", "sizes"), [(2, [2]), (3, [3]), (4, [3, 1]), (7, [3, 3, 1])])
async def test_pages_around_the_limit(repo: Repository, count: int, sizes: list[int]) -> None:
    """limit-1, limit and limit+1 objects: full pages, creation order, a next page only when more follow."""
    ids = await seed(repo, count)
    pages = await crawl(repo, limit=3)
    assert [len(page) for page in pages] == sizes
    assert [i for page in pages for i in page] == ids


async def test_next_query_carries_offset_limit_filters_and_cursor(repo: Repository) -> None:
    """The next page's query keeps the caller's filters, in OCPI DateTime form."""
    await seed(repo, 3)
    date_from = datetime(2024, 1, 1, tzinfo=UTC)
    reply = reply_of(await dispatch(sender_list(limit=2, date_from=date_from), repo))
    assert reply.next_query is not None
    assert reply.next_query["offset"] == "2" and reply.next_query["limit"] == "2"
    assert reply.next_query["date_from"] == "2024-01-01T00:00:00Z" and "date_to" not in reply.next_query
    assert reply.next_query["cursor"]


async def test_crawl_with_updates_and_creations_neither_skips_nor_repeats(repo: Repository) -> None:
    """Objects updated or created while a client crawls do not move the pages it has not seen."""
    ids = await seed(repo, 7)

    async def churn(page_no: int) -> None:
        # one object already seen and one not yet seen change; one new object is created
        for lid in {ids[0], ids[min(page_no * 2, len(ids) - 1)]}:
            status = Status.CHARGING if page_no % 2 else Status.AVAILABLE
            at = T0 + timedelta(hours=page_no)
            change = EvseStatusSet(
                event_id=f"s{page_no}{lid}", location_id=lid, evse_uid="E1", status=status, at=at
            )
            await dispatch(change, repo)
        if page_no <= 3:
            await dispatch(LocationUpsert(event_id=f"new{page_no}", location=location(f"N{page_no}")), repo)

    seen = [i for page in await crawl(repo, limit=2, between=churn) for i in page]
    assert seen == [*ids, "N1", "N2", "N3"]


async def test_date_filters_from_inclusive_to_exclusive(repo: Repository) -> None:
    """date_from includes its instant, date_to excludes it, and the total counts the filter."""
    ids = await seed(repo, 5)
    reply = reply_of(
        await dispatch(
            sender_list(limit=10, date_from=T0 + timedelta(minutes=1), date_to=T0 + timedelta(minutes=3)),
            repo,
        )
    )
    assert [item["id"] for item in data(reply)] == ids[1:3] and reply.total_count == 2


async def test_date_window_crawl_survives_objects_leaving_the_window(repo: Repository) -> None:
    """An object updated out of a date_to window during a crawl does not make later objects skipped."""
    ids = await seed(repo, 6)

    async def move_first_out(page_no: int) -> None:
        if page_no == 1:
            later = T0 + timedelta(days=1)
            move = EvseStatusSet(
                event_id="m", location_id=ids[0], evse_uid="E1", status=Status.CHARGING, at=later
            )
            await dispatch(move, repo)

    pages = await crawl(repo, limit=2, between=move_first_out, date_to=T0 + timedelta(hours=1))
    assert [i for page in pages for i in page] == ids


async def test_offset_without_cursor_skips(repo: Repository) -> None:
    """A plain offset (a client that builds its own URLs) still pages in creation order."""
    ids = await seed(repo, 5)
    reply = reply_of(await dispatch(sender_list(offset=3, limit=10), repo))
    assert [item["id"] for item in data(reply)] == ids[3:] and reply.next_query is None


async def test_foreign_cursor_is_2001(repo: Repository) -> None:
    """A cursor we did not issue is an invalid parameter."""
    reply = reply_of(await dispatch(sender_list(limit=2, cursor="bogus"), repo))
    assert reply.status_code == 2001


# ---- sender get ----------------------------------------------------------------------------------------


async def test_sender_get_each_level_and_unknown_is_2003_404(repo: Repository) -> None:
    """GET returns the location, EVSE or connector; anything unknown is 2003 with HTTP 404."""
    await seed(repo, 1)
    assert data(reply_of(await dispatch(sender_get(location_id="L000"), repo)))["id"] == "L000"
    assert data(reply_of(await dispatch(sender_get(location_id="L000", evse_uid="E1"), repo)))["uid"] == "E1"
    got = reply_of(await dispatch(sender_get(location_id="L000", evse_uid="E1", connector_id="1"), repo))
    assert data(got)["id"] == "1" and data(got)["last_updated"] == "2024-05-01T12:00:00Z"
    for request in (
        sender_get(location_id="nope"),
        sender_get(location_id="L000", evse_uid="nope"),
        sender_get(location_id="L000", evse_uid="E1", connector_id="nope"),
    ):
        reply = reply_of(await dispatch(request, repo))
        assert (reply.status_code, reply.http_status) == (2003, 404)


# ---- CPO inputs ----------------------------------------------------------------------------------------


def changed(outcome: Outcome) -> LocationChanged:
    assert len(outcome.events) == 1 and isinstance(outcome.events[0], LocationChanged)
    return outcome.events[0]


async def test_inputs_publish_versions_and_scopes(repo: Repository) -> None:
    """Each applied input announces the full location, its new version and what changed."""
    first = changed(await dispatch(LocationUpsert(event_id="a", location=location()), repo))
    assert (first.version, first.changes) == (1, [LocationChange(ChangeScope.LOCATION)])
    status = EvseStatusSet(event_id="b", location_id="L1", evse_uid="E1", status=Status.CHARGING, at=T0)
    second = changed(await dispatch(status, repo))
    assert (second.version, second.changes) == (2, [LocationChange(ChangeScope.EVSE_STATUS, "E1")])
    assert second.location.evses is not None and second.location.evses[0].status == Status.CHARGING
    third = changed(await dispatch(EvseUpsert(event_id="c", location_id="L1", evse=evse("E2")), repo))
    assert (third.version, third.changes) == (3, [LocationChange(ChangeScope.EVSE, "E2")])


async def test_redelivered_input_changes_nothing_but_announces_current_state(repo: Repository) -> None:
    """The same event_id twice bumps the version once; the second delivery re-announces the stored state."""
    await dispatch(LocationUpsert(event_id="a", location=location()), repo)
    status = EvseStatusSet(event_id="b", location_id="L1", evse_uid="E1", status=Status.CHARGING, at=T0)
    once, twice = changed(await dispatch(status, repo)), changed(await dispatch(status, repo))
    assert once.version == twice.version == 2 and once.location == twice.location
    record = await repo.own.get("L1")
    assert record is not None and record.version == 2


async def test_stale_input_changes_nothing_and_announces_nothing(repo: Repository) -> None:
    """An input older than the stored EVSE produces no change and no event."""
    await dispatch(LocationUpsert(event_id="a", location=location(at=T0 + timedelta(hours=1))), repo)
    stale = EvseStatusSet(event_id="b", location_id="L1", evse_uid="E1", status=Status.CHARGING, at=T0)
    assert (await dispatch(stale, repo)).events == []


async def test_input_for_unknown_location_is_rejected(repo: Repository) -> None:
    """An EVSE status for a location we do not have is rejected (the consumer dead-letters it)."""
    with pytest.raises(Rejected):
        await dispatch(
            EvseStatusSet(event_id="b", location_id="L9", evse_uid="E1", status=Status.CHARGING, at=T0), repo
        )


class RacingOwnLocations(MemorySenderStore[Location]):
    """Another replica changes the location right before our first compare-and-set."""

    def __init__(self) -> None:
        super().__init__(updated_of)
        self.raced = False

    async def save_many(self, writes: Sequence[OwnWrite[Location]]) -> dict[str, int]:
        if not self.raced and all(write.version is not None for write in writes):
            self.raced = True
            for write in writes:
                current = self.records[write.key]
                other = msgspec.structs.replace(current.value, name="changed elsewhere")
                await super().save_many([OwnWrite(write.key, other, current.version, ("x",))])
        return await super().save_many(writes)


async def test_concurrent_change_is_retried_on_the_newer_state(repo: Repository) -> None:
    """A lost compare-and-set reloads and applies the input on top of the other writer's change."""
    own = RacingOwnLocations()
    racing = Repository(own=own, partners=repo.partners)
    await dispatch(LocationUpsert(event_id="a", location=location()), racing)
    status = EvseStatusSet(event_id="b", location_id="L1", evse_uid="E1", status=Status.CHARGING, at=T0)
    event = changed(await dispatch(status, racing))
    assert event.version == 3 and event.location.name == "changed elsewhere"
    assert event.location.evses is not None and event.location.evses[0].status == Status.CHARGING


async def test_a_batch_is_one_stored_change_and_one_event_per_location(repo: Repository) -> None:
    """Inputs applied together: in order per location, each location announced once with every part."""
    await seed(repo, 2)
    later = T0 + timedelta(hours=1)
    batch: list[LocationInput] = [
        EvseStatusSet(event_id="b1", location_id="L000", evse_uid="E1", status=Status.CHARGING, at=later),
        EvseUpsert(event_id="b2", location_id="L001", evse=evse("E2", later)),
        EvseStatusSet(event_id="b3", location_id="L000", evse_uid="E1", status=Status.BLOCKED, at=later),
        EvseStatusSet(event_id="b1", location_id="L000", evse_uid="E1", status=Status.CHARGING, at=later),
        EvseStatusSet(event_id="b4", location_id="L001", evse_uid="E1", status=Status.CHARGING, at=later),
    ]
    outcome = await handle_location_inputs(batch, repo)
    assert outcome.rejected == {}
    events = {e.location.id: e for e in outcome.events if isinstance(e, LocationChanged)}
    assert len(outcome.events) == 2 and set(events) == {"L000", "L001"}
    first, second = events["L000"], events["L001"]
    assert first.version == 2 and first.changes == [LocationChange(ChangeScope.EVSE_STATUS, "E1")]
    assert first.location.evses is not None and first.location.evses[0].status == Status.BLOCKED
    assert second.version == 2
    assert second.changes == [
        LocationChange(ChangeScope.EVSE, "E2"),
        LocationChange(ChangeScope.EVSE_STATUS, "E1"),
    ]
    stored = await repo.own.get("L000")
    assert stored is not None and stored.recent_event_ids[-2:] == ("b1", "b3")


async def test_a_rejected_input_in_a_batch_is_reported_and_the_rest_applies(repo: Repository) -> None:
    """An input that can never apply is named by its batch index; the inputs around it are stored."""
    await seed(repo, 1)
    batch: list[LocationInput] = [
        EvseStatusSet(event_id="r1", location_id="L000", evse_uid="E1", status=Status.CHARGING, at=T0),
        EvseStatusSet(event_id="r2", location_id="L000", evse_uid="NOPE", status=Status.CHARGING, at=T0),
        EvseStatusSet(event_id="r3", location_id="GONE", evse_uid="E1", status=Status.CHARGING, at=T0),
        EvseUpsert(event_id="r4", location_id="L000", evse=evse("E2")),
    ]
    outcome = await handle_location_inputs(batch, repo)
    assert set(outcome.rejected) == {1, 2} and "NOPE" in outcome.rejected[1] and "GONE" in outcome.rejected[2]
    (event,) = outcome.events
    assert isinstance(event, LocationChanged) and event.version == 2
    assert event.changes == [
        LocationChange(ChangeScope.EVSE_STATUS, "E1"),
        LocationChange(ChangeScope.EVSE, "E2"),
    ]


async def test_a_batch_with_a_redelivery_and_a_new_input_stores_only_the_new_one(repo: Repository) -> None:
    """A redelivered input next to a new one: one new version, announcing both parts."""
    await seed(repo, 1)
    first = EvseStatusSet(event_id="d1", location_id="L000", evse_uid="E1", status=Status.CHARGING, at=T0)
    await dispatch(first, repo)
    new = EvseUpsert(event_id="d2", location_id="L000", evse=evse("E2"))
    outcome = await handle_location_inputs([first, new], repo)
    (event,) = outcome.events
    assert isinstance(event, LocationChanged) and event.version == 3
    assert event.changes == [
        LocationChange(ChangeScope.EVSE_STATUS, "E1"),
        LocationChange(ChangeScope.EVSE, "E2"),
    ]


# ---- eMSP receiver ---------------------------------------------------------------------------------------


def put(**kwargs: Any) -> ReceiverPut:
    return receiver_put(country_code="DE", party_id="CPO", location_id="L1", **kwargs)


def patch(fields: dict[str, Any], **kwargs: Any) -> ReceiverPatch:
    return receiver_patch(country_code="DE", party_id="CPO", location_id="L1", patch=fields, **kwargs)


def partner_event(outcome: Outcome) -> PartnerLocationChanged:
    assert len(outcome.events) == 1 and isinstance(outcome.events[0], PartnerLocationChanged)
    return outcome.events[0]


async def test_receiver_put_creates_then_replaces_and_guards(repo: Repository) -> None:
    """PUT answers 201 when new, 200 when replaced; an older or identical PUT succeeds and changes nothing."""
    created = await dispatch(put(location=location()), repo)
    assert (
        reply_of(created).http_status == 201 and partner_event(created).change.scope == ChangeScope.LOCATION
    )
    newer = msgspec.structs.replace(location(at=T0 + timedelta(hours=1)), name="Newer")
    replaced = await dispatch(put(location=newer), repo)
    assert reply_of(replaced).http_status == 200 and partner_event(replaced).location.name == "Newer"
    for same_or_older in (newer, location()):
        outcome = await dispatch(put(location=same_or_older), repo)
        assert reply_of(outcome).status_code == 1000 and outcome.events == []
    stored = await dispatch(receiver_get(country_code="DE", party_id="CPO", location_id="L1"), repo)
    assert data(reply_of(stored))["name"] == "Newer"


async def test_receiver_put_evse_into_unknown_location_is_2003_404(repo: Repository) -> None:
    """An EVSE cannot be stored under a location we do not hold."""
    reply = reply_of(await dispatch(put(evse_uid="E1", evse=evse()), repo))
    assert (reply.status_code, reply.http_status) == (2003, 404)


async def test_receiver_put_body_must_match_the_url(repo: Repository) -> None:
    """A body of the wrong level, or with another id than the URL, is 2001."""
    assert reply_of(await dispatch(put(evse_uid="E1", location=location()), repo)).status_code == 2001
    assert reply_of(await dispatch(put(location=location("L2")), repo)).status_code == 2001


async def test_receiver_put_evse_and_connector_update_parents(repo: Repository) -> None:
    """EVSE and connector PUTs are stored in place and move the location's last_updated."""
    await dispatch(put(location=location()), repo)
    later = T0 + timedelta(minutes=10)
    outcome = await dispatch(put(evse_uid="E2", evse=evse("E2", later)), repo)
    assert reply_of(outcome).http_status == 201
    assert partner_event(outcome).change == LocationChange(ChangeScope.EVSE, "E2")
    outcome = await dispatch(put(evse_uid="E1", connector_id="2", connector=connector("2", later)), repo)
    assert partner_event(outcome).location.last_updated == later
    got = await dispatch(
        receiver_get(country_code="DE", party_id="CPO", location_id="L1", evse_uid="E1"), repo
    )
    assert [c["id"] for c in data(reply_of(got))["connectors"]] == ["1", "2"]


async def test_receiver_patch_merges_and_guards(repo: Repository) -> None:
    """A status PATCH merges into the EVSE; an older PATCH succeeds and changes nothing."""
    await dispatch(put(location=location()), repo)
    later = "2024-05-01T12:10:00Z"
    outcome = await dispatch(patch({"status": "CHARGING", "last_updated": later}, evse_uid="E1"), repo)
    event = partner_event(outcome)
    assert event.change == LocationChange(ChangeScope.EVSE_STATUS, "E1")
    assert event.location.last_updated == T0 + timedelta(minutes=10)
    older = await dispatch(
        patch({"status": "BLOCKED", "last_updated": "2024-05-01T12:05:00Z"}, evse_uid="E1"), repo
    )
    assert reply_of(older).status_code == 1000 and older.events == []
    got = await dispatch(
        receiver_get(country_code="DE", party_id="CPO", location_id="L1", evse_uid="E1"), repo
    )
    assert data(reply_of(got))["status"] == "CHARGING"


async def test_receiver_patch_of_unknown_objects_is_2003_404(repo: Repository) -> None:
    """PATCH of a location, EVSE or connector we lack is 2003/404 so the sender falls back to PUT."""
    assert reply_of(await dispatch(patch({"name": "x"}), repo)).http_status == 404
    await dispatch(put(location=location()), repo)
    for kwargs in ({"evse_uid": "E9"}, {"evse_uid": "E1", "connector_id": "9"}):
        reply = reply_of(
            await dispatch(
                patch({"tariff_id": "T"} if "connector_id" in kwargs else {"status": "BLOCKED"}, **kwargs),
                repo,
            )
        )
        assert (reply.status_code, reply.http_status) == (2003, 404)


async def test_receiver_patch_with_bad_field_is_2001_naming_it(repo: Repository) -> None:
    """A PATCH field of the wrong type is 2001 and the message names the field."""
    await dispatch(put(location=location()), repo)
    reply = reply_of(await dispatch(patch({"status": "SLEEPING"}, evse_uid="E1"), repo))
    assert reply.status_code == 2001 and "status" in (reply.status_message or "")


async def test_partner_import_upserts_with_the_guard(repo: Repository) -> None:
    """A re-sync import stores a newer location and ignores an older one."""
    newer = location(at=T0 + timedelta(hours=1))
    first = await dispatch(PartnerLocationImport(country_code="DE", party_id="CPO", location=newer), repo)
    assert partner_event(first).location == newer
    older = await dispatch(
        PartnerLocationImport(country_code="DE", party_id="CPO", location=location()), repo
    )
    assert older.events == []


async def test_every_contract_message_has_a_handler(repo: Repository) -> None:
    """The dispatch table covers every request and input of the locations contract."""
    from typing import get_args

    from services.locations.handlers import HANDLERS
    from shared.contracts.locations import LocationInput
    from shared.contracts.objects import ObjectRequest, ReceiverDelete, ReceiverPost

    # 2.1.1 never deletes locations, and only CDRs are POSTed.
    expected: set[type[Message]] = {
        *(set(get_args(ObjectRequest)) - {ReceiverDelete, ReceiverPost}),
        *get_args(LocationInput),
        PartnerLocationImport,
    }
    assert set(HANDLERS) == expected
