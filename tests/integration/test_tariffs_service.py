"""The tariffs service in-process with real RabbitMQ and MongoDB: inputs, list, receiver, dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from services.tariffs.app import build
from shared.contracts import objects
from shared.contracts.partners import Party
from shared.contracts.tariffs import (
    PartnerTariffChanged,
    PartnerTariffImport,
    PartnerTariffRemoved,
    TariffChanged,
    TariffRemove,
    TariffRemoved,
    TariffUpsert,
)
from shared.messaging.broker import Broker
from shared.ocpi.v2_1_1.codec import encode, to_builtins
from shared.storage import connect_mongo, service_database
from tests.support.module_service import WAIT, ServiceClient, data, delete_namespace, module_service
from tests.support.object_requests import sender_list
from tests.support.waiting import eventually
from tests.unit.test_tariffs import tariff

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CPO = Party("DE", "CPO")
EVENTS = [TariffChanged, TariffRemoved, PartnerTariffChanged, PartnerTariffRemoved]


@pytest.fixture
async def client(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> AsyncIterator[ServiceClient]:
    async with module_service("tariffs", build, amqp_url, mongo_url, namespace):
        yield await ServiceClient.start(broker, "tariffs", EVENTS)
    await delete_namespace(broker, "tariffs")


async def listed(client: ServiceClient, **query: Any) -> list[str]:
    reply = await client.call(sender_list("tariffs", limit=50, **query))
    assert reply.status_code == 1000, reply.status_message
    return [item["id"] for item in data(reply)]


async def test_inputs_create_remove_and_recreate_with_versions(client: ServiceClient) -> None:
    """Upsert, removal and re-creation from the input queue: versions 1, 2, 3; the list follows."""
    await client.publish(TariffUpsert(event_id="u1", tariff=tariff("T1")))
    await client.publish(TariffUpsert(event_id="u2", tariff=tariff("T2")))
    created = await client.take(2)
    assert {(e.tariff.id, e.version) for e in created} == {("T1", 1), ("T2", 1)}
    await client.publish(TariffRemove(event_id="r1", tariff_id="T1", at=T0 + timedelta(minutes=1)))
    (removed,) = await client.take(1)
    assert removed == TariffRemoved(tariff_id="T1", version=2, at=T0 + timedelta(minutes=1))
    assert await listed(client) == ["T2"]
    await client.publish(TariffUpsert(event_id="u3", tariff=tariff("T1", T0)))  # not newer than the removal
    await client.publish(TariffUpsert(event_id="u4", tariff=tariff("T1", T0 + timedelta(minutes=2))))
    (again,) = await client.take(1)
    assert isinstance(again, TariffChanged) and again.version == 3
    await client.nothing_more()
    assert await listed(client) == ["T1", "T2"]
    assert await listed(client, date_from=T0 + timedelta(minutes=1)) == ["T1"]


async def test_a_redelivered_upsert_announces_the_same_version(client: ServiceClient) -> None:
    """The same event_id twice stores once; the redelivery announces the stored version again."""
    message = TariffUpsert(event_id="same", tariff=tariff())
    await client.publish(message, message_id="same")
    await client.publish(message, message_id="same")
    first, second = await client.take(2)
    assert first == second and first.version == 1


async def test_bad_inputs_are_dead_lettered_with_the_reason_and_store_nothing(client: ServiceClient) -> None:
    """A tariff without elements and a removal without an id are dead-lettered naming the field; the
    service goes on."""
    broken = to_builtins(tariff("BAD"))
    del broken["elements"]
    body = encode({"type": "tariffs.tariff.upsert", "event_id": "b1", "tariff": broken})
    await client.broker.publish(client.broker.exchanges.internal, "tariffs.tariff.upsert", body)
    no_id = encode({"type": "tariffs.tariff.remove", "event_id": "b2", "at": "2024-05-01T12:00:00Z"})
    await client.broker.publish(client.broker.exchanges.internal, "tariffs.tariff.remove", no_id)
    reasons = await client.dead_letter_reasons(2)
    assert any("elements" in reason for reason in reasons), reasons
    assert any("tariff_id" in reason for reason in reasons), reasons
    assert await listed(client) == []
    await client.publish(TariffUpsert(event_id="ok", tariff=tariff("OK")))
    (event,) = await client.take(1)
    assert isinstance(event, TariffChanged) and event.tariff.id == "OK"


def put(body: Any, tid: str = "T1") -> objects.ReceiverPut:
    return objects.ReceiverPut(module="tariffs", party=CPO, path=[tid], body=msgspec.Raw(encode(body)))


async def test_receiver_put_delete_and_the_outbox(
    client: ServiceClient, mongo_url: str, namespace: str
) -> None:
    """PUT 201 and its event; DELETE and its event; then 404/2000; every outbox mark cleared."""
    created = await client.call(put(tariff()))
    assert (created.http_status, created.status_code) == (201, 1000)
    mismatch = await client.call(put(tariff("T2")))
    assert (mismatch.http_status, mismatch.status_code) == (400, 2001)
    deleted = await client.call(objects.ReceiverDelete(module="tariffs", party=CPO, path=["T1"]))
    assert (deleted.http_status, deleted.status_code) == (200, 1000)
    changed, removed = await client.take(2)
    assert isinstance(changed, PartnerTariffChanged) and changed.version == 1
    assert removed == PartnerTariffRemoved(country_code="DE", party_id="CPO", tariff_id="T1", version=2)
    gone = await client.call(objects.ReceiverGet(module="tariffs", party=CPO, path=["T1"]))
    assert (gone.http_status, gone.status_code) == (404, 2000)
    unknown = await client.call(objects.ReceiverDelete(module="tariffs", party=CPO, path=["T9"]))
    assert (unknown.http_status, unknown.status_code) == (404, 2000)
    mongo = connect_mongo(mongo_url)
    try:
        collection = service_database(mongo, namespace, "tariffs")["partner_tariffs"]

        async def cleared() -> bool:
            return await collection.count_documents({"unannounced_since": {"$exists": True}}) == 0

        await eventually(cleared, WAIT, "the outbox marks cleared")
    finally:
        await mongo.close()


async def test_partner_import_is_stored_like_a_put(client: ServiceClient) -> None:
    """A re-sync import stores the partner's tariff and announces it; an older one changes nothing."""
    newer = tariff(at=T0 + timedelta(hours=1))
    await client.publish(PartnerTariffImport(country_code="DE", party_id="CPO", tariff=newer))
    (event,) = await client.take(1)
    assert isinstance(event, PartnerTariffChanged) and event.tariff == newer
    await client.publish(PartnerTariffImport(country_code="DE", party_id="CPO", tariff=tariff()))
    await client.nothing_more()
    got = await client.call(objects.ReceiverGet(module="tariffs", party=CPO, path=["T1"]))
    assert data(got)["last_updated"] == "2024-05-01T13:00:00Z"


async def test_pages_skip_removed_tariffs(client: ServiceClient) -> None:
    """A crawl by the Link's query pages over live tariffs only; the total counts them."""
    for n in range(1, 5):
        await client.publish(
            TariffUpsert(event_id=f"c{n}", tariff=tariff(f"T{n}", T0 + timedelta(minutes=n)))
        )
        await client.take(1)
    await client.publish(TariffRemove(event_id="r2", tariff_id="T2", at=T0 + timedelta(hours=1)))
    await client.take(1)
    pages: list[list[str]] = []
    query: dict[str, Any] = {"limit": 2}
    while True:
        reply = await client.call(sender_list("tariffs", **query))
        assert reply.total_count == 3
        pages.append([item["id"] for item in data(reply)])
        if reply.next_query is None:
            break
        query = dict(reply.next_query)
    assert pages == [["T1", "T3"], ["T4"]]
