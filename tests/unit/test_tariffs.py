"""Tariffs: the pure input rules, and the service's answers driven through its handlers in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from services.tariffs.app import RULES, requests, updated_of
from services.tariffs.rules import apply_input, mark_of, partner_event
from shared.contracts import objects
from shared.contracts.base import Message, Outcome, RpcReply
from shared.contracts.partners import Party
from shared.contracts.tariffs import (
    PartnerTariffChanged,
    PartnerTariffRemoved,
    TariffChanged,
    TariffRemove,
    TariffRemoved,
    TariffUpsert,
)
from shared.modules.memory import MemoryReceiverStore, MemorySenderStore
from shared.modules.sender import Removed, apply_inputs
from shared.ocpi.v2_1_1.codec import encode
from shared.ocpi.v2_1_1.tariffs import Tariff

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CPO = Party("DE", "CPO")


def tariff(tid: str = "T1", at: datetime = T0, price: float = 0.25) -> Tariff:
    return msgspec.convert(
        {"id": tid, "currency": "EUR", "last_updated": at,
         "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}]},
        Tariff,
    )  # fmt: skip


def upsert(t: Tariff, event_id: str | None = None) -> TariffUpsert:
    return TariffUpsert(event_id=event_id or f"up-{t.id}-{t.last_updated.isoformat()}", tariff=t)


def remove(tid: str = "T1", at: datetime = T0, event_id: str = "rm") -> TariffRemove:
    return TariffRemove(event_id=event_id, tariff_id=tid, at=at)


# ---- pure rules ---------------------------------------------------------------------------------------


def test_upsert_creates_and_replaces_only_with_something_newer() -> None:
    """A new tariff is stored; an older or identical upsert changes nothing; a newer one replaces."""
    assert apply_input(upsert(tariff()), None) == tariff()
    later = tariff(at=T0 + timedelta(hours=1), price=0.3)
    assert apply_input(upsert(tariff()), later) is None
    assert apply_input(upsert(later), later) is None
    assert apply_input(upsert(later), tariff()) == later


def test_removal_leaves_a_tombstone_at_its_time() -> None:
    """Removing a stored tariff makes a tombstone whose last_updated is the removal time."""
    at = T0 + timedelta(minutes=5)
    assert apply_input(remove(at=at), tariff()) == Removed(msgspec.structs.replace(tariff(), last_updated=at))


def test_removing_what_is_not_there_or_older_changes_nothing() -> None:
    """Removing an unknown or already removed tariff, or removing before the stored change, is a no-op."""
    assert apply_input(remove(), None) is None
    assert apply_input(remove(), Removed(tariff())) is None
    assert apply_input(remove(at=T0 - timedelta(minutes=1)), tariff()) is None


def test_recreation_must_be_newer_than_the_removal() -> None:
    """After a removal at t, an upsert of t or older changes nothing; a later one creates it again."""
    tombstone = Removed(tariff(at=T0 + timedelta(hours=1)))
    assert apply_input(upsert(tariff()), tombstone) is None
    assert apply_input(upsert(tariff(at=T0 + timedelta(hours=1))), tombstone) is None
    later = tariff(at=T0 + timedelta(hours=2))
    assert apply_input(upsert(later), tombstone) == later


# ---- the input loop over the generic sender store ------------------------------------------------------


@pytest.fixture
def own() -> MemorySenderStore[Tariff]:
    return MemorySenderStore(updated_of)


@pytest.fixture
def partners() -> MemoryReceiverStore[Tariff]:
    return MemoryReceiverStore()


async def test_versions_run_on_through_removal_and_recreation(own: MemorySenderStore[Tariff]) -> None:
    """Create (1), remove (2), re-create (3): each announced with its version (removal: TariffRemoved)."""
    created = await apply_inputs(own, RULES, [upsert(tariff())])
    removed = await apply_inputs(own, RULES, [remove(at=T0 + timedelta(minutes=1))])
    again = await apply_inputs(own, RULES, [upsert(tariff(at=T0 + timedelta(minutes=2)))])
    (first,), (second,), (third,) = created.events, removed.events, again.events
    assert isinstance(first, TariffChanged) and first.version == 1
    assert second == TariffRemoved(tariff_id="T1", version=2, at=T0 + timedelta(minutes=1))
    assert isinstance(third, TariffChanged) and third.version == 3


async def test_a_redelivered_removal_changes_nothing_twice(own: MemorySenderStore[Tariff]) -> None:
    """The same removal (event_id) twice: one new version; the second only announces it again."""
    await apply_inputs(own, RULES, [upsert(tariff())])
    once = await apply_inputs(own, RULES, [remove(at=T0 + timedelta(minutes=1))])
    twice = await apply_inputs(own, RULES, [remove(at=T0 + timedelta(minutes=1))])
    assert once.events == twice.events and (await own.get("T1")) is not None
    assert [r.version for r in own.records.values()] == [2]


async def test_removed_tariffs_are_not_listed(own: MemorySenderStore[Tariff]) -> None:
    """The list and its total leave tombstones out."""
    await apply_inputs(own, RULES, [upsert(tariff("T1")), upsert(tariff("T2")), upsert(tariff("T3"))])
    await apply_inputs(own, RULES, [remove("T2", T0 + timedelta(minutes=1))])
    reply = await call(requests(own, MemoryReceiverStore()), objects.SenderList(module="tariffs", limit=10))
    assert [item["id"] for item in data(reply)] == ["T1", "T3"] and reply.total_count == 2


# ---- the gateway's requests ------------------------------------------------------------------------------


async def call(handlers: dict[type[Message], Any], request: objects.ObjectRequest) -> RpcReply:
    outcome = await handle(handlers, request)
    assert outcome.reply is not None
    return outcome.reply


async def handle(handlers: dict[type[Message], Any], request: objects.ObjectRequest) -> Outcome:
    from shared.modules.service import object_requests
    from shared.ocpi.v2_1_1.modules import TARIFFS

    result: Outcome = await object_requests(TARIFFS, handlers)(request)
    return result


def data(reply: RpcReply) -> Any:
    return msgspec.json.decode(reply.data)


def put(body: Any, tid: str = "T1") -> objects.ReceiverPut:
    return objects.ReceiverPut(module="tariffs", party=CPO, path=[tid], body=msgspec.Raw(encode(body)))


def patch(fields: dict[str, Any], tid: str = "T1") -> objects.ReceiverPatch:
    return objects.ReceiverPatch(module="tariffs", party=CPO, path=[tid], body=msgspec.Raw(encode(fields)))


def get(tid: str = "T1") -> objects.ReceiverGet:
    return objects.ReceiverGet(module="tariffs", party=CPO, path=[tid])


def delete(tid: str = "T1") -> objects.ReceiverDelete:
    return objects.ReceiverDelete(module="tariffs", party=CPO, path=[tid])


async def test_put_creates_replaces_and_ignores_older(
    own: MemorySenderStore[Tariff], partners: MemoryReceiverStore[Tariff]
) -> None:
    """201 when new, 200 when replaced, 200 without an event when older or identical."""
    handlers = requests(own, partners)
    created = await handle(handlers, put(tariff()))
    assert created.reply is not None and created.reply.http_status == 201
    (event,) = created.events
    assert isinstance(event, PartnerTariffChanged) and event.version == 1
    newer = tariff(at=T0 + timedelta(hours=1), price=0.3)
    replaced = await handle(handlers, put(newer))
    assert replaced.reply is not None and replaced.reply.http_status == 200 and len(replaced.events) == 1
    for same_or_older in (newer, tariff()):
        outcome = await handle(handlers, put(same_or_older))
        assert outcome.reply is not None and outcome.reply.status_code == 1000 and outcome.events == []
    assert data(await call(handlers, get()))["elements"][0]["price_components"][0]["price"] == 0.3


async def test_bad_requests_are_400_2001_and_store_nothing(
    own: MemorySenderStore[Tariff], partners: MemoryReceiverStore[Tariff]
) -> None:
    """An id differing from the URL, a body that is no Tariff, a path of two ids: 400/2001, none stored."""
    handlers = requests(own, partners)
    mismatch = await call(handlers, put(tariff("T2"), tid="T1"))
    assert (mismatch.http_status, mismatch.status_code) == (400, 2001) and "differs" in (
        mismatch.status_message or ""
    )
    broken = await call(handlers, put({"id": "T1", "currency": "EUR"}))
    assert (broken.http_status, broken.status_code) == (400, 2001) and "elements" in (
        broken.status_message or ""
    )
    deep = objects.ReceiverGet(module="tariffs", party=CPO, path=["T1", "x"])
    assert (await call(handlers, deep)).status_code == 2001
    assert partners.records == {}


async def test_unknown_tariffs_are_404_2000(
    own: MemorySenderStore[Tariff], partners: MemoryReceiverStore[Tariff]
) -> None:
    """GET, PATCH and DELETE of a tariff we do not hold: HTTP 404 with status 2000."""
    handlers = requests(own, partners)
    for request in (get(), patch({"currency": "USD"}), delete()):
        reply = await call(handlers, request)
        assert (reply.http_status, reply.status_code) == (404, 2000), request


async def test_patch_merges_and_guards(
    own: MemorySenderStore[Tariff], partners: MemoryReceiverStore[Tariff]
) -> None:
    """Fields present replace ours; an older last_updated changes nothing; absent means now."""
    handlers = requests(own, partners)
    await handle(handlers, put(tariff()))
    older = await handle(handlers, patch({"currency": "USD", "last_updated": "2024-05-01T11:00:00Z"}))
    assert older.events == [] and data(await call(handlers, get()))["currency"] == "EUR"
    merged = await handle(handlers, patch({"currency": "USD"}))
    (event,) = merged.events
    assert isinstance(event, PartnerTariffChanged) and event.tariff.currency == "USD" and event.version == 2
    assert event.tariff.last_updated > T0
    wrong = await call(handlers, patch({"id": "T9"}))
    assert (wrong.http_status, wrong.status_code) == (400, 2001)


async def test_delete_then_put_again(
    own: MemorySenderStore[Tariff], partners: MemoryReceiverStore[Tariff]
) -> None:
    """DELETE announces the removal; the tariff is then unknown; a PUT creates it again (201, version 3)."""
    handlers = requests(own, partners)
    await handle(handlers, put(tariff()))
    deleted = await handle(handlers, delete())
    assert deleted.reply is not None and deleted.reply.http_status == 200
    assert deleted.events == [
        PartnerTariffRemoved(country_code="DE", party_id="CPO", tariff_id="T1", version=2)
    ]
    assert mark_of(deleted.events[0]) == ("DE", "CPO", "T1", 2)
    assert (await call(handlers, get())).http_status == 404
    assert (await call(handlers, delete())).http_status == 404
    again = await handle(handlers, put(tariff()))
    assert again.reply is not None and again.reply.http_status == 201
    (event,) = again.events
    assert isinstance(event, PartnerTariffChanged) and event.version == 3


async def test_a_tariff_by_id_is_for_the_platform_only(
    own: MemorySenderStore[Tariff], partners: MemoryReceiverStore[Tariff]
) -> None:
    """2.1.1's tariffs Sender interface is the list only: the gateway has no route of one tariff, but
    the service answers the sessions service's internal GET (the tariff of a connector)."""
    from aiohttp import web

    from services.gateway.module_routes import add_routes

    app = web.Application()
    add_routes(app)
    paths = {resource.canonical for resource in app.router.resources()}
    assert "/ocpi/cpo/2.1.1/tariffs" in paths
    assert not any(path.startswith("/ocpi/cpo/2.1.1/tariffs/") for path in paths)

    handlers = requests(own, partners)
    unknown = await call(handlers, objects.SenderGet(module="tariffs", path=["T1"]))
    assert (unknown.http_status, unknown.status_code) == (404, 2000)
    await apply_inputs(own, RULES, [TariffUpsert(event_id="e1", tariff=tariff("T1"))])
    known = await call(handlers, objects.SenderGet(module="tariffs", path=["T1"]))
    assert msgspec.json.decode(known.data, type=Tariff) == tariff("T1")
    other = await call(handlers, objects.SenderList(module="locations", limit=1))
    assert (other.http_status, other.status_code) == (400, 2001)


def test_partner_events_name_the_party_and_version() -> None:
    """The outbox's sweep announces a stored record as it is: changed, or removed."""
    from shared.modules.receiver import PartnerRecord

    changed = partner_event(PartnerRecord(CPO, "T1", tariff(), 4))
    assert changed == PartnerTariffChanged(country_code="DE", party_id="CPO", tariff=tariff(), version=4)
    removed = partner_event(PartnerRecord(CPO, "T1", tariff(), 5, removed=True))
    assert removed == PartnerTariffRemoved(country_code="DE", party_id="CPO", tariff_id="T1", version=5)
