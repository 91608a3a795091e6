"""The locations service in-process with real RabbitMQ and MongoDB: RPC, input queue, events, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aio_pika.abc import AbstractIncomingMessage
from pymongo.monitoring import CommandListener

from services.locations.app import build
from shared.contracts.base import RpcReply
from shared.contracts.locations import (
    ChangeScope,
    EvseStatusSet,
    LocationChange,
    LocationChanged,
    LocationUpsert,
    PartnerLocationChanged,
    PartnerLocationImport,
)
from shared.contracts.objects import ReceiverPatch, ReceiverPut
from shared.messaging.broker import Broker
from shared.messaging.headers import ERROR
from shared.messaging.rpc import RpcClient
from shared.ocpi.v2_1_1.locations import EVSE, Connector, Location, Status
from shared.storage import connect_mongo, service_database
from tests.support.module_service import (
    RPC_DEADLINE,
    WAIT,
    CommandCounter,
    ServiceClient,
    delete_namespace,
    module_service,
)
from tests.support.object_requests import receiver_get, receiver_patch, receiver_put, sender_get, sender_list
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def location(lid: str, at: datetime = T0) -> Location:
    connector = Connector(
        id="1", standard="IEC_62196_T2", format="SOCKET", power_type="AC_3_PHASE",  # type: ignore[arg-type]
        voltage=230, amperage=32, last_updated=at,
    )  # fmt: skip
    return msgspec.convert(
        {"id": lid, "type": "ON_STREET", "address": "Main 1", "city": "Utrecht", "postal_code": "3511",
         "country": "NLD", "coordinates": {"latitude": "52.090000", "longitude": "5.120000"},
         "evses": [EVSE(uid="E1", status=Status.AVAILABLE, connectors=[connector], last_updated=at)],
         "last_updated": at},
        Location,
    )  # fmt: skip


class Harness(ServiceClient):
    """A running locations service and a client's view of it."""

    async def create(self, *locations: Location) -> None:
        """Create locations one after the other (the service runs inputs concurrently), each announced."""
        for loc in locations:
            await self.publish(LocationUpsert(event_id=f"create-{loc.id}", location=loc))
            (event,) = await self.take(1)
            assert isinstance(event, LocationChanged) and event.location.id == loc.id

    async def crawl(self, limit: int, between: Any = None, **filters: Any) -> list[list[str]]:
        """Follow next_query like a client follows Link; `between(page_no)` runs after each page."""
        pages: list[list[str]] = []
        query: dict[str, Any] = {"limit": limit, **filters}
        for _ in range(50):
            reply = await self.call(sender_list(**query))
            assert reply.status_code == 1000, reply.status_message
            pages.append([item["id"] for item in msgspec.json.decode(reply.data)])
            if reply.next_query is None:
                return pages
            if between is not None:
                await between(len(pages))
            query = dict(reply.next_query)
        raise AssertionError("crawl did not end")


def locations_service(
    amqp_url: str, mongo_url: str, namespace: str, listeners: Sequence[CommandListener] = ()
) -> contextlib.AbstractAsyncContextManager[None]:
    """The locations service running in this process; its database dropped when it stops."""
    return module_service("locations", build, amqp_url, mongo_url, namespace, listeners)


async def _delete_namespace(broker: Broker) -> None:
    await delete_namespace(broker, "locations")


@pytest.fixture
async def harness(broker: Broker, amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[Harness]:
    async with locations_service(amqp_url, mongo_url, namespace):
        yield await _harness(broker)
    await _delete_namespace(broker)


async def _harness(broker: Broker) -> Harness:
    harness: Harness = await Harness.start(broker, "locations", [LocationChanged, PartnerLocationChanged])
    return harness


def ids(reply: RpcReply) -> list[str]:
    return [item["id"] for item in msgspec.json.decode(reply.data)]


async def test_pages_around_the_limit(harness: Harness) -> None:
    """Four objects paged with limit 5, 4, 3 (limit-1, limit, limit+1): a next page only when more follow."""
    created = [location(f"L{i}", T0 + timedelta(minutes=i)) for i in range(4)]
    await harness.create(*created)
    expected = [loc.id for loc in created]
    for limit, sizes in ((5, [4]), (4, [4]), (3, [3, 1])):
        pages = await harness.crawl(limit)
        assert [len(page) for page in pages] == sizes
        assert [i for page in pages for i in page] == expected
    first = await harness.call(sender_list(limit=3))
    assert (first.total_count, first.limit) == (4, 3)
    assert first.next_query is not None and first.next_query["offset"] == "3" and first.next_query["cursor"]


async def test_crawl_during_updates_neither_skips_nor_repeats(harness: Harness) -> None:
    """While a client crawls a date window, seen objects leave it, unseen ones change and new ones appear."""
    created = [location(f"L{i}", T0 + timedelta(minutes=i)) for i in range(9)]
    await harness.create(*created)

    async def churn(page_no: int) -> None:
        if page_no >= 3:
            return
        seen, unseen = created[page_no * 3 - 1], created[page_no * 3]
        leave = EvseStatusSet(event_id=f"out{page_no}", location_id=seen.id, evse_uid="E1",
                              status=Status.CHARGING, at=T0 + timedelta(days=1))  # fmt: skip
        inside = EvseStatusSet(event_id=f"in{page_no}", location_id=unseen.id, evse_uid="E1",
                               status=Status.BLOCKED, at=T0 + timedelta(minutes=30))  # fmt: skip
        await harness.publish(leave)
        await harness.publish(inside)
        await harness.publish(LocationUpsert(event_id=f"new{page_no}", location=location(f"N{page_no}")))
        assert len(await harness.take(3)) == 3

    pages = await harness.crawl(3, between=churn, date_to=T0 + timedelta(hours=1))
    seen = [i for page in pages for i in page]
    assert seen == [loc.id for loc in created] + ["N1", "N2"]


async def test_date_filters_and_next_query(harness: Harness) -> None:
    """date_from is inclusive, date_to exclusive, the total counts the filter and the Link keeps it."""
    await harness.create(*[location(f"L{i}", T0 + timedelta(minutes=i)) for i in range(5)])
    window = sender_list(limit=2, date_from=T0 + timedelta(minutes=1), date_to=T0 + timedelta(minutes=4))
    reply = await harness.call(window)
    assert ids(reply) == ["L1", "L2"] and reply.total_count == 3
    assert reply.next_query is not None
    assert (reply.next_query["date_from"], reply.next_query["date_to"]) == (
        "2024-05-01T12:01:00Z",
        "2024-05-01T12:04:00Z",
    )
    last = await harness.call(sender_list(**reply.next_query))
    assert ids(last) == ["L3"] and last.next_query is None


async def test_redelivered_input_applies_once(harness: Harness) -> None:
    """The same event_id delivered again bumps the version once; the redelivery announces that version."""
    await harness.create(location("L1"))
    status = EvseStatusSet(event_id="s1", location_id="L1", evse_uid="E1", status=Status.CHARGING, at=T0)
    await harness.publish(status, message_id="s1")
    (first,) = await harness.take(1)
    await harness.publish(status, message_id="s1")
    (second,) = await harness.take(1)
    assert isinstance(first, LocationChanged) and isinstance(second, LocationChanged)
    assert first.version == second.version == 2
    assert first.changes == second.changes == [LocationChange(ChangeScope.EVSE_STATUS, "E1")]
    later = EvseStatusSet(event_id="s2", location_id="L1", evse_uid="E1", status=Status.AVAILABLE, at=T0)
    await harness.publish(later, message_id="s2")
    (third,) = await harness.take(1)
    assert isinstance(third, LocationChanged) and third.version == 3
    got = await harness.call(sender_get(location_id="L1", evse_uid="E1"))
    assert msgspec.json.decode(got.data)["status"] == "AVAILABLE"


def put(location_id: str = "L1", **body: Any) -> ReceiverPut:
    return receiver_put(country_code="DE", party_id="CPO", location_id=location_id, **body)


def patch(fields: dict[str, Any], evse_uid: str) -> ReceiverPatch:
    return receiver_patch(
        country_code="DE", party_id="CPO", location_id="L1", evse_uid=evse_uid, patch=fields
    )


async def test_published_partner_changes_lose_their_outbox_mark(
    harness: Harness, mongo_url: str, namespace: str
) -> None:
    """A receiver PUT is announced with its version, and the mark that would republish it is cleared."""
    reply = await harness.call(put(location=location("L1")))
    assert reply.status_code == 1000
    (event,) = await harness.take(1)
    assert isinstance(event, PartnerLocationChanged) and event.version == 1
    client = connect_mongo(mongo_url)
    try:
        collection = service_database(client, namespace, "locations")["partner_locations"]

        async def cleared() -> bool:
            return await collection.count_documents({"unannounced_since": {"$exists": True}}) == 0

        await eventually(cleared, WAIT, "the outbox mark cleared")
    finally:
        await client.close()


async def test_receiver_guard_and_merge(harness: Harness) -> None:
    """Receiver PUT/PATCH merge into our copy; older pushes change nothing; unknown objects are 2003/404."""
    newer = location("L1", T0 + timedelta(hours=1))
    created = await harness.call(put(location=newer))
    assert (created.status_code, created.http_status) == (1000, 201)
    patched = await harness.call(patch({"status": "CHARGING", "last_updated": "2024-05-01T13:30:00Z"}, "E1"))
    assert patched.status_code == 1000
    older = await harness.call(put(location=location("L1")))
    assert (older.status_code, older.http_status) == (1000, 200)
    put_event, patch_event = await harness.take(2)
    assert isinstance(put_event, PartnerLocationChanged) and put_event.location == newer
    assert isinstance(patch_event, PartnerLocationChanged)
    assert patch_event.change.scope is ChangeScope.EVSE_STATUS
    assert patch_event.location.last_updated == T0 + timedelta(hours=1, minutes=30)
    await harness.nothing_more()
    got = await harness.call(receiver_get(country_code="DE", party_id="CPO", location_id="L1", evse_uid="E1"))
    stored = msgspec.json.decode(got.data)
    assert stored["status"] == "CHARGING" and stored["last_updated"] == "2024-05-01T13:30:00Z"
    unknown_evse = await harness.call(patch({"status": "BLOCKED"}, "E9"))
    assert (unknown_evse.status_code, unknown_evse.http_status) == (2003, 404)
    orphan = await harness.call(put("L9", evse_uid="E1", evse=(newer.evses or [])[0]))
    assert (orphan.status_code, orphan.http_status) == (2003, 404)


async def test_partner_import_from_the_input_queue(harness: Harness) -> None:
    """A re-sync import on the internal exchange stores the partner's location and announces it."""
    await harness.publish(PartnerLocationImport(country_code="DE", party_id="CPO", location=location("P1")))
    (event,) = await harness.take(1)
    assert isinstance(event, PartnerLocationChanged) and event.location.id == "P1"
    got = await harness.call(receiver_get(country_code="DE", party_id="CPO", location_id="P1"))
    assert got.status_code == 1000 and msgspec.json.decode(got.data)["id"] == "P1"


async def test_poison_inputs_are_dead_lettered_with_the_reason(harness: Harness) -> None:
    """Undecodable input and input for an unknown location are dead-lettered; the service goes on."""
    broker = harness.broker
    await broker.publish(broker.exchanges.internal, "locations.evse.set_status", b"{not json")
    orphan = EvseStatusSet(event_id="o1", location_id="nowhere", evse_uid="E1", status=Status.CHARGING, at=T0)
    await harness.publish(orphan)
    channel = await broker.channel()
    dead = await channel.get_queue(broker.topology.dead_letter_queue)
    reasons: list[str] = []
    async with asyncio.timeout(WAIT):
        while len(reasons) < 2:
            message = await dead.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            reasons.append(str((message.headers or {}).get(ERROR)))
    assert any("invalid" in reason for reason in reasons) and any("nowhere" in reason for reason in reasons)
    await channel.close()
    await harness.create(location("L1"))


async def test_an_input_published_before_the_service_first_ran_is_kept(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """Any process's connect declares the input queue: an input sent before locations ever started
    waits there and is applied when it starts."""
    await broker.publish_internal(LocationUpsert(event_id="early", location=location("EARLY")))
    async with locations_service(amqp_url, mongo_url, namespace):
        rpc = RpcClient(broker, timeout=RPC_DEADLINE)
        await rpc.start()

        async def stored() -> bool:
            reply = await rpc.call("locations", sender_get(location_id="EARLY"))
            return reply.status_code == 1000

        await eventually(stored, WAIT, "the early input applied")


async def test_a_poison_import_among_199_inputs_in_one_batch_is_dead_lettered_alone(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """199 of our inputs and one partner import carrying a connector voltage BSON cannot store wait in
    the queue before the service starts, so they arrive together (in one or two batches, as the
    prefetch fills): the 199 are applied and the import alone is dead-lettered with a reason naming
    the field."""
    poison = location("BAD")
    poison.evses[0].connectors[0].voltage = 2**63  # Struct init does not validate; decoding does
    for n in range(100):
        await broker.publish_internal(LocationUpsert(event_id=f"up-{n}", location=location(f"L{n:03}")))
    await broker.publish_internal(PartnerLocationImport(country_code="DE", party_id="CPO", location=poison))
    for n in range(100, 199):
        await broker.publish_internal(LocationUpsert(event_id=f"up-{n}", location=location(f"L{n:03}")))
    async with locations_service(amqp_url, mongo_url, namespace):
        rpc = RpcClient(broker, timeout=RPC_DEADLINE)
        await rpc.start()
        channel = await broker.channel()

        missing = {f"L{n:03}" for n in range(199)}

        async def all_stored() -> bool:
            for location_id in sorted(missing):
                if (await rpc.call("locations", sender_get(location_id=location_id))).status_code == 1000:
                    missing.discard(location_id)
            return not missing

        await eventually(all_stored, 3 * WAIT, "the 199 inputs applied", pause=0.5)
        dead = await channel.get_queue(broker.topology.dead_letter_queue)
        dead_letters: list[AbstractIncomingMessage] = []

        async def dead_lettered() -> bool:
            message = await dead.get(no_ack=True, fail=False)
            if message is not None:
                dead_letters.append(message)
            return bool(dead_letters)

        await eventually(dead_lettered, WAIT, "the poison dead-lettered")
        message = dead_letters[0]
        assert message.routing_key == "locations.partner_location.import"
        assert "voltage" in str((message.headers or {}).get(ERROR))
        await asyncio.sleep(0.5)
        assert await dead.get(no_ack=True, fail=False) is None, "only the poison is dead-lettered"
        got = await rpc.call("locations", receiver_get(country_code="DE", party_id="CPO", location_id="BAD"))
        assert got.status_code != 1000
        await channel.close()


async def test_generic_object_requests_are_answered(harness: Harness) -> None:
    """The gateway's generic `objects.*` requests for module "locations" reach the same rules."""
    from shared.contracts import objects
    from shared.contracts.partners import Party
    from shared.ocpi.v2_1_1.codec import encode

    party = Party("DE", "CPO")
    body = msgspec.Raw(encode(location("L1")))
    created = await harness.call(objects.ReceiverPut(module="locations", party=party, path=["L1"], body=body))
    assert (created.status_code, created.http_status) == (1000, 201)
    status = msgspec.Raw(b'{"status": "CHARGING"}')
    patched = await harness.call(
        objects.ReceiverPatch(module="locations", party=party, path=["L1", "E1"], body=status)
    )
    assert patched.status_code == 1000
    got = await harness.call(objects.ReceiverGet(module="locations", party=party, path=["L1", "E1"]))
    assert msgspec.json.decode(got.data)["status"] == "CHARGING"
    assert len(await harness.take(2)) == 2  # the PUT's and the PATCH's PartnerLocationChanged
    await harness.create(location("O1"))
    listed = await harness.call(objects.SenderList(module="locations", limit=10))
    assert ids(listed) == ["O1"]
    one = await harness.call(objects.SenderGet(module="locations", path=["O1", "E1", "1"]))
    assert msgspec.json.decode(one.data)["id"] == "1"
    missing = await harness.call(objects.SenderGet(module="locations", path=["O9"]))
    assert (missing.status_code, missing.http_status) == (2003, 404)


async def test_a_status_change_costs_one_database_operation(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """In the steady state each EVSE status change (a batch of one) is one bulk write: the location is
    known from the write that created it, and nothing is read back."""
    counter = CommandCounter(f"{namespace}_locations")
    async with locations_service(amqp_url, mongo_url, namespace, [counter]):
        harness = await _harness(broker)
        await harness.create(location("L1"))
        changes = 20
        before = len(counter.commands)
        for n in range(changes):
            status = Status.CHARGING if n % 2 == 0 else Status.AVAILABLE
            at = T0 + timedelta(minutes=n + 1)
            await harness.publish(
                EvseStatusSet(event_id=f"s{n}", location_id="L1", evse_uid="E1", status=status, at=at)
            )
            (event,) = await harness.take(1)
            assert isinstance(event, LocationChanged) and event.version == n + 2
        spent = counter.commands[before:]
        assert len(spent) <= changes, spent
        assert set(spent) == {"update"}, spent
    await _delete_namespace(broker)
