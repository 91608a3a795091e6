"""Unit tests of the push plans per module: the table matches the catalogue, tariffs go whole."""

from __future__ import annotations

import datetime as dt

from services.dispatcher.handlers import coalesce
from services.dispatcher.push_plans import MODULE_PLANS, PUSH_PLANS
from shared.contracts.catalogue import PUSHED, flat
from shared.contracts.locations import LocationChanged
from shared.contracts.tariffs import TariffChanged, TariffRemoved
from shared.ocpi.v2_1_1.locations import GeoLocation, Location, LocationType
from shared.ocpi.v2_1_1.tariffs import PriceComponent, Tariff, TariffDimensionType, TariffElement
from shared.ocpi.v2_1_1.versions import ModuleID

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def tariff(tariff_id: str = "T1", price: float = 0.25) -> Tariff:
    component = PriceComponent(type=TariffDimensionType.ENERGY, price=price, step_size=1)
    return Tariff(
        id=tariff_id, currency="EUR", elements=[TariffElement(price_components=[component])], last_updated=T0
    )


def location(location_id: str = "T1") -> Location:
    return Location(
        id=location_id,
        type=LocationType.ON_STREET,
        address="Main 1",
        city="Gent",
        postal_code="9000",
        country="BEL",
        coordinates=GeoLocation(latitude="51.047599", longitude="3.729944"),
        last_updated=T0,
    )


def test_every_pushed_event_has_a_plan_and_every_plan_is_pushed() -> None:
    """PUSH_PLANS and the catalogue's PUSHED list the same events; every module has its plan."""
    assert set(PUSH_PLANS) == set(flat(PUSHED))
    assert {plan.module for plan in PUSH_PLANS.values()} == set(PUSHED) == set(MODULE_PLANS)
    for module, kinds in PUSHED.items():
        assert all(PUSH_PLANS[kind].module is module for kind in kinds)


def test_a_changed_tariff_is_put_whole_and_a_removed_one_deleted() -> None:
    """TariffChanged: PUT {tariff_id} with the tariff; TariffRemoved: DELETE, where 404 counts as done."""
    changed = PUSH_PLANS[TariffChanged].snapshot(TariffChanged(tariff=tariff(), version=3), "req-1")
    assert (changed.module, changed.key, changed.version, changed.request_id) == (
        ModuleID.TARIFFS,
        "T1",
        3,
        "req-1",
    )
    plan = MODULE_PLANS[ModuleID.TARIFFS]
    (put,) = plan.calls(changed.key, changed.state, changed.parts, 3)
    assert (put.method, put.path, put.partial, put.absent_ok) == ("PUT", ("T1",), False, False)
    assert put.body == changed.state and changed.state is not None and changed.state["currency"] == "EUR"
    removed = PUSH_PLANS[TariffRemoved].snapshot(TariffRemoved(tariff_id="T1", version=4, at=T0), None)
    assert removed.state is None
    (delete,) = plan.calls(removed.key, removed.state, removed.parts, 3)
    assert (delete.method, delete.path, delete.body, delete.absent_ok) == ("DELETE", ("T1",), None, True)
    assert plan.pushed([delete], []) is None and plan.fallback(changed.state) is None


def test_a_tariff_and_a_location_with_the_same_id_never_coalesce() -> None:
    """Objects are keyed by (module, key): tariff T1 and location T1 stay two snapshots."""
    snapshots = coalesce(
        [
            PUSH_PLANS[LocationChanged].snapshot(
                LocationChanged(location=location(), version=7, changes=[]), None
            ),
            PUSH_PLANS[TariffChanged].snapshot(TariffChanged(tariff=tariff(), version=1), None),
            PUSH_PLANS[TariffRemoved].snapshot(TariffRemoved(tariff_id="T1", version=2, at=T0), "newest"),
        ]
    )
    assert [(s.module, s.key, s.version, s.state is None, s.request_id) for s in snapshots] == [
        (ModuleID.LOCATIONS, "T1", 7, False, None),
        (ModuleID.TARIFFS, "T1", 2, True, "newest"),
    ]
