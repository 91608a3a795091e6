"""Tariffs through the dispatcher (real RabbitMQ and MongoDB, fake partners over HTTP): PUT on change,
DELETE on removal, and pulls of a CPO partner's tariffs next to its locations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.contracts.locations import PartnerLocationImport
from shared.contracts.partners import PullRequested
from shared.contracts.tariffs import PartnerTariffImport, TariffChanged, TariffRemoved
from shared.messaging.broker import Broker
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.tariffs import PriceComponent, Tariff, TariffDimensionType, TariffElement
from shared.service import ServiceContext
from shared.settings import Role
from tests.integration.test_dispatcher import Collector, dispatcher, location_json, register, started
from tests.integration.test_dispatcher_partner_fake import FakePartner, Received
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
__all__ = ["dispatcher"]  # the fixture, used by name

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def tariff(tariff_id: str, price: float) -> Tariff:
    component = PriceComponent(type=TariffDimensionType.ENERGY, price=price, step_size=1)
    return Tariff(
        id=tariff_id, currency="EUR", elements=[TariffElement(price_components=[component])], last_updated=T0
    )


def tariff_calls(partner: FakePartner) -> list[Received]:
    return [r for r in partner.received if "/emsp/2.1.1/tariffs/" in r.path]


async def test_a_changed_tariff_is_put_and_a_removed_one_deleted(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """TariffChanged -> PUT {tariffs}/NL/ABC/{id}; TariffRemoved -> DELETE; a DELETE answered 404 is done."""
    partner = FakePartner("emsp")
    partner.modules = ("locations", "tariffs")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        await broker.publish_event(TariffChanged(tariff=tariff("T1", 0.25), version=1))
        await eventually(lambda: "T1" in partner.tariffs, 5, "the PUT of T1")
        await broker.publish_event(TariffChanged(tariff=tariff("T1", 0.30), version=2))
        await eventually(
            lambda: partner.tariffs["T1"]["elements"][0]["price_components"][0]["price"] == 0.30, 5, "v2"
        )
        assert partner.tariffs["T1"] == to_builtins(tariff("T1", 0.30))
        await broker.publish_event(TariffRemoved(tariff_id="T1", version=3, at=T0))
        await eventually(lambda: "T1" not in partner.tariffs, 5, "the DELETE of T1")
        # Never sent to the partner: its DELETE meets 404, which counts as delivered (no retry).
        await broker.publish_event(TariffRemoved(tariff_id="T2", version=1, at=T0))
        await eventually(lambda: any(r.answered == 404 for r in tariff_calls(partner)), 5, "the DELETE of T2")

        async def settled() -> bool:
            return await dispatcher.db["pushes"].count_documents({"due_at": {"$ne": None}}) == 0

        await eventually(settled, 5, "no push left pending")
    calls = [(r.method, r.path.split("/tariffs/")[1], r.answered) for r in tariff_calls(partner)]
    assert calls == [
        ("PUT", "NL/ABC/T1", 200),
        ("PUT", "NL/ABC/T1", 200),
        ("DELETE", "NL/ABC/T1", 200),
        ("DELETE", "NL/ABC/T2", 404),
    ]
    assert partner.pushes(ok_only=False) == []  # no location call for a tariff


def tariff_json(tariff_id: str) -> dict[str, Any]:
    result: dict[str, Any] = to_builtins(tariff(tariff_id, 0.2))
    return result


async def test_a_cpo_partner_has_its_locations_and_tariffs_pulled(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """On first registration every module the partner sends is pulled; PullRequested honours `module`."""
    locations = await Collector.bind(
        broker, broker.exchanges.internal, PartnerLocationImport, "locations.partner_location.import"
    )
    tariffs = await Collector.bind(
        broker, broker.exchanges.internal, PartnerTariffImport, "tariffs.partner_tariff.import"
    )
    partner = FakePartner("cpo")
    partner.modules = ("locations", "tariffs")
    partner.cpo_locations = [location_json("P1", 1)]
    partner.cpo_tariffs = [tariff_json("T1"), tariff_json("T2")]
    async with started(partner):
        await register(broker, dispatcher, partner, "cpo-1", role=Role.CPO, party=("BE", "CPO"))
        await eventually(
            lambda: len(tariffs.items) == 2 and len(locations.items) == 1, 10, "both first pulls"
        )
        assert [(t.country_code, t.party_id, t.tariff.id) for t in tariffs.items] == [
            ("BE", "CPO", "T1"),
            ("BE", "CPO", "T2"),
        ]
        assert tariffs.message_ids[0] == "cpo-1:T1:2024-05-01T12:00:00Z"
        await broker.publish_event(PullRequested(partner_id="cpo-1", module="tariffs", full=True))
        await eventually(lambda: len(tariffs.items) == 4, 10, "the requested tariffs pull")
        assert len(locations.items) == 1
