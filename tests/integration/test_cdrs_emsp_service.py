"""Received CDRs (eMSP side of the cdrs service) in-process on real RabbitMQ and MongoDB, with the
real tariffs service beside it and a fake locations service (a real RpcServer).

The service is composed here from build_emsp alone (no CPO side), as app.py wires it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, get_args

import msgspec
import pytest

from services.cdrs.emsp import build_emsp
from services.tariffs.app import build as build_tariffs
from shared.contracts.base import Outcome, error, ok
from shared.contracts.cdrs import (
    CdrDisputesList,
    PartnerCdrDisputed,
    PartnerCdrReceived,
    PriceCheck,
    TariffSource,
)
from shared.contracts.objects import ObjectRequest, ReceiverGet, ReceiverPost, ReceiverPut
from shared.contracts.partners import Party
from shared.contracts.tariffs import PartnerTariffChanged
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcServer
from shared.modules.service import object_requests
from shared.ocpi.v2_1_1.codec import encode, to_builtins
from shared.ocpi.v2_1_1.modules import CDRS
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.pricing import price_session
from shared.rpc_service import rpc_server
from shared.service import Component, ServiceContext
from shared.storage import connect_mongo, service_database
from tests.support.cdrs import START, STOP, cdr, energy_tariff
from tests.support.module_service import ServiceClient, data, delete_namespace, module_service
from tests.support.objects import location
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

CPO = Party("NL", "CPA")
EVENTS = [PartnerCdrReceived, PartnerCdrDisputed]
LOOKUP_TIMEOUT = 0.5


def emsp_only(lookup_timeout: float = LOOKUP_TIMEOUT) -> Any:
    """A build of the cdrs service with the eMSP side alone."""

    async def build(ctx: ServiceContext) -> list[Component]:
        emsp = await build_emsp(ctx, lookup_timeout)
        handle = object_requests(CDRS, emsp.object_requests)
        handlers = {kind: handle for kind in get_args(ObjectRequest)} | emsp.other_requests
        rpc = rpc_server(ctx, ObjectRequest | CdrDisputesList, handlers, on_published=emsp.published)
        return [*emsp.components, rpc]

    return build


class FakeLocations:
    """The locations service's ReceiverGet: LOC1 in Europe/Amsterdam, anything else unknown."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def handle(self, body: bytes) -> Outcome:
        request = msgspec.json.decode(body, type=ReceiverGet)
        self.asked.append(request.path)
        if request.path == ["LOC1"]:
            found = msgspec.structs.replace(location("LOC1", ["E1"], at=START), time_zone="Europe/Amsterdam")
            return Outcome(reply=ok(found))
        return Outcome(reply=error(2000, "Unknown Location", http_status=404))


@pytest.fixture
async def service(broker: Broker, amqp_url: str, mongo_url: str, namespace: str) -> AsyncIterator[Any]:
    """The cdrs service (eMSP side), the tariffs service and the fake locations service."""
    locations = FakeLocations()
    server = RpcServer(broker, "locations", locations.handle)
    await server.start()
    async with (
        module_service("tariffs", build_tariffs, amqp_url, mongo_url, namespace),
        module_service("cdrs", emsp_only(), amqp_url, mongo_url, namespace),
    ):
        tariffs = await ServiceClient.start(broker, "tariffs", [PartnerTariffChanged])
        client = await ServiceClient.start(broker, "cdrs", EVENTS)
        yield client, tariffs, locations
    await server.stop()
    await delete_namespace(broker, "cdrs")
    await delete_namespace(broker, "tariffs")


async def hold_tariff(tariffs: ServiceClient, tariff: Tariff) -> None:
    """Our copy of the CPO's tariff, PUT to the tariffs service as the CPO would."""
    body = msgspec.Raw(encode(tariff))
    reply = await tariffs.call(ReceiverPut(module="tariffs", party=CPO, path=[tariff.id], body=body))
    assert reply.status_code == 1000, reply.status_message


def post(received: Any, party: Party = CPO) -> ReceiverPost:
    return ReceiverPost(module="cdrs", party=party, body=msgspec.Raw(encode(received)), partner_id="cpo-1")


async def get(client: ServiceClient, cdr_id: str) -> Any:
    return await client.call(ReceiverGet(module="cdrs", party=CPO, path=[cdr_id]))


async def stored_documents(mongo_url: str, namespace: str) -> list[dict[str, Any]]:
    mongo = connect_mongo(mongo_url)
    try:
        return await service_database(mongo, namespace, "cdrs")["partner_cdrs"].find().to_list()
    finally:
        await mongo.close()


async def test_a_cdr_posted_twice_is_stored_once_with_the_same_location(
    service: Any, mongo_url: str, namespace: str
) -> None:
    """201 and its Location, then 200/1000 and the same Location; one record, one announcement,
    its outbox mark cleared; GET at the Location path answers the CDR."""
    client, tariffs, _ = service
    await hold_tariff(tariffs, energy_tariff())
    first = await client.call(post(cdr()))
    assert (first.http_status, first.status_code) == (201, 1000)
    assert first.headers == {"Location": "NL/CPA/CDR-1"} and data(first) is None
    again = await client.call(post(cdr()))
    assert (again.http_status, again.status_code, again.headers) == (200, 1000, first.headers)
    (received,) = await client.take(1)
    assert isinstance(received, PartnerCdrReceived) and received.version == 1
    assert (received.country_code, received.party_id, received.partner_id) == ("NL", "CPA", "cpo-1")
    await client.nothing_more()
    assert len(await stored_documents(mongo_url, namespace)) == 1

    async def announced() -> bool:
        return all("unannounced_since" not in d for d in await stored_documents(mongo_url, namespace))

    await eventually(announced, 5, "the outbox mark cleared")
    cc, pid, cdr_id = first.headers["Location"].split("/")
    found = await client.call(ReceiverGet(module="cdrs", party=Party(cc, pid), path=[cdr_id]))
    assert found.status_code == 1000 and data(found) == to_builtins(cdr())


async def test_the_same_id_with_other_content_is_refused_and_changes_nothing(
    service: Any, mongo_url: str, namespace: str
) -> None:
    """2001 naming the conflict; the stored CDR is the first, nothing announced for the second."""
    client, tariffs, _ = service
    await hold_tariff(tariffs, energy_tariff())
    assert (await client.call(post(cdr()))).http_status == 201
    await client.take(1)
    refused = await client.call(post(cdr(total_cost=9.99)))
    assert (refused.http_status, refused.status_code) == (400, 2001)
    assert "CDR already received with different content" in (refused.status_message or "")
    assert data(await get(client, "CDR-1"))["total_cost"] == 2.5
    assert len(await stored_documents(mongo_url, namespace)) == 1
    await client.nothing_more()


async def test_an_unknown_cdr_is_404_with_the_modules_status(service: Any) -> None:
    """GET of a CDR we never received: HTTP 404, status 2000."""
    client, _, _ = service
    missing = await get(client, "NOPE")
    assert (missing.http_status, missing.status_code) == (404, 2000)


async def test_a_cdr_priced_like_us_is_agreed(service: Any) -> None:
    """Our tariff in force at the start prices the CDR like the calculator does: AGREED, no dispute."""
    client, tariffs, _ = service
    ours = energy_tariff()
    await hold_tariff(tariffs, ours)
    received = cdr()
    await client.call(post(received))
    (event,) = await client.take(1)
    expected = price_session(ours, START, STOP, received.charging_periods, "Europe/Amsterdam")
    verdict = event.verdict
    assert verdict.check is PriceCheck.AGREED and verdict.tariff_source is TariffSource.OURS
    assert Decimal(verdict.ours.total_cost) == expected.total_cost == Decimal("2.50")
    assert verdict.difference is not None and Decimal(verdict.difference) == 0
    await client.nothing_more()


async def test_a_cdr_priced_higher_is_disputed_with_both_numbers(service: Any) -> None:
    """Theirs 3.10 against our 2.50: DISPUTED with both totals and the difference; PartnerCdrDisputed
    published; the disputes list shows it."""
    client, tariffs, _ = service
    await hold_tariff(tariffs, energy_tariff())
    await client.call(post(cdr("CDR-OK")))
    await client.call(post(cdr("CDR-HIGH", total_cost=3.1)))
    events = await client.take(3)
    disputed = [e for e in events if isinstance(e, PartnerCdrDisputed)]
    assert len(disputed) == 1 and disputed[0].cdr_id == "CDR-HIGH" and disputed[0].currency == "EUR"
    verdict = disputed[0].verdict
    assert verdict.check is PriceCheck.DISPUTED
    assert (verdict.theirs.total_cost, Decimal(verdict.ours.total_cost)) == ("3.1", Decimal("2.50"))
    assert Decimal(verdict.difference) == Decimal("-0.60")
    listed = data(await client.call(CdrDisputesList()))
    assert [(d["party_id"], d["cdr_id"], d["theirs"]) for d in listed] == [("CPA", "CDR-HIGH", "3.1")]
    line = listed[0]
    assert (Decimal(line["ours"]), Decimal(line["difference"])) == (Decimal("2.50"), Decimal("-0.60"))
    assert listed[0]["currency"] == "EUR" and listed[0]["received_at"]


async def test_the_disputes_list_is_newest_first_and_limited(service: Any) -> None:
    """Three disputed CDRs: the newest first; limit=2 gives two."""
    client, tariffs, _ = service
    await hold_tariff(tariffs, energy_tariff())
    for cdr_id in ("D1", "D2", "D3"):
        await client.call(post(cdr(cdr_id, total_cost=5.0)))
    await client.take(6)
    listed = data(await client.call(CdrDisputesList(limit=2)))
    assert [d["cdr_id"] for d in listed] == ["D3", "D2"]


async def test_the_cdrs_own_tariff_prices_it_when_ours_changed_after_the_session(service: Any) -> None:
    """Our copy is newer than the session (0.40/kWh): the copy the CDR carries (0.25/kWh) prices it."""
    client, tariffs, _ = service
    await hold_tariff(tariffs, energy_tariff(price=0.40, at=START + timedelta(hours=2)))
    await client.call(post(cdr(tariffs=[energy_tariff(price=0.25)])))
    (event,) = await client.take(1)
    assert event.verdict.check is PriceCheck.AGREED and event.verdict.tariff_source is TariffSource.CDR
    assert Decimal(event.verdict.ours.total_cost) == Decimal("2.50")


async def test_without_any_tariff_the_cdr_is_stored_unchecked(service: Any) -> None:
    """Neither ours nor in the CDR: stored (201) UNCHECKED with the reason; no dispute."""
    client, _, _ = service
    reply = await client.call(post(cdr(connector_tariff="T-NONE")))
    assert reply.http_status == 201
    (event,) = await client.take(1)
    assert event.verdict.check is PriceCheck.UNCHECKED and event.verdict.ours is None
    assert "no tariff T-NONE" in event.verdict.reason
    await client.nothing_more()


async def test_the_time_zone_comes_from_our_copy_of_the_location(service: Any) -> None:
    """A CDR location without time_zone: our copy of LOC1 is asked for it, and the CDR is priced."""
    client, tariffs, locations = service
    await hold_tariff(tariffs, energy_tariff())
    await client.call(post(cdr(time_zone=None)))
    (event,) = await client.take(1)
    assert locations.asked == [["LOC1"]] and event.verdict.check is PriceCheck.AGREED


@pytest.fixture
async def alone(
    broker: Broker, amqp_url: str, mongo_url: str, namespace: str
) -> AsyncIterator[ServiceClient]:
    """The cdrs service with no tariffs or locations service answering."""
    async with module_service("cdrs", emsp_only(), amqp_url, mongo_url, namespace):
        yield await ServiceClient.start(broker, "cdrs", EVENTS)
    await delete_namespace(broker, "cdrs")


async def test_a_cdr_is_stored_unchecked_when_the_tariffs_service_is_silent(alone: ServiceClient) -> None:
    """No tariffs service: the CPO still gets 201 within the lookup timeout; UNCHECKED with the reason."""
    reply = await alone.call(post(cdr()))
    assert (reply.http_status, reply.status_code) == (201, 1000)
    (event,) = await alone.take(1)
    assert event.verdict.check is PriceCheck.UNCHECKED
    assert event.verdict.reason == "tariffs service unavailable"
    assert (await get(alone, "CDR-1")).status_code == 1000
