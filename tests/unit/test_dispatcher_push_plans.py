"""Unit tests of the push plans per module: the table matches the catalogue, tariffs go whole,
sessions are PATCHed or PUT, CDRs POSTed to the endpoint itself."""

from __future__ import annotations

import datetime as dt

import msgspec

from services.dispatcher.domain import PushCall
from services.dispatcher.handlers import coalesce
from services.dispatcher.ocpi_client import Reply
from services.dispatcher.push_plans import CDR_VERSION, MODULE_PLANS, PUSH_PLANS
from shared.contracts.catalogue import PUSHED, flat
from shared.contracts.cdrs import CdrCreated, CdrDelivered
from shared.contracts.locations import LocationChanged
from shared.contracts.sessions import SessionChanged
from shared.contracts.tariffs import TariffChanged, TariffRemoved
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.locations import GeoLocation, Location, LocationType
from shared.ocpi.v2_1_1.tariffs import PriceComponent, Tariff, TariffDimensionType, TariffElement
from shared.ocpi.v2_1_1.versions import ModuleID
from tests.support.dispatcher_billing import EVERY_SESSION_FIELD, cdr, cdr_created, session, session_changed

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


# ---- sessions -------------------------------------------------------------------------------------


def session_plan_calls(event: SessionChanged) -> list[PushCall]:
    snapshot = PUSH_PLANS[SessionChanged].snapshot(event, None)
    return MODULE_PLANS[ModuleID.SESSIONS].calls(snapshot.key, snapshot.state, snapshot.parts, 80)


def test_a_session_goes_to_its_owner_partner_only_and_a_new_one_is_put_whole() -> None:
    """The snapshot names the connection serving the token (nobody without one); a new session
    (every field changed) is one PUT {session_id} of the whole session; a partner without any
    version gets the whole session first (whole_first), never a PATCH it cannot place."""
    event = session_changed(session("S1"), 1, EVERY_SESSION_FIELD, partner_id="emsp-1")
    snapshot = PUSH_PLANS[SessionChanged].snapshot(event, "req-1")
    assert (snapshot.module, snapshot.key, snapshot.version, snapshot.audience) == (
        ModuleID.SESSIONS,
        "S1",
        1,
        frozenset({"emsp-1"}),
    )
    nobody = PUSH_PLANS[SessionChanged].snapshot(
        session_changed(session(), 1, ["kwh"], partner_id=None), None
    )
    assert nobody.audience == frozenset()
    (put,) = session_plan_calls(event)
    assert (put.method, put.path, put.partial, put.collection) == ("PUT", ("S1",), False, False)
    assert put.body == to_builtins(session("S1"))
    plan = MODULE_PLANS[ModuleID.SESSIONS]
    assert plan.whole_first and plan.fallback(to_builtins(session("S1"))) == put
    assert plan.pushed([put], snapshot.parts) is None


def test_running_fields_of_a_session_are_patched_with_last_updated() -> None:
    """kwh, total_cost, status, end_datetime, charging_periods: one PATCH of those fields and
    last_updated (always), from the newest state; what it carried is the parts it covered."""
    running = session("S1", kwh=4.5, minutes=20)
    (patch,) = session_plan_calls(session_changed(running, 3, ["kwh", "total_cost"]))
    assert (patch.method, patch.path, patch.partial) == ("PATCH", ("S1",), True)
    assert patch.body == {"kwh": 4.5, "total_cost": 1.12, "last_updated": "2024-05-01T12:20:00Z"}
    ended = session("S1", kwh=9.0, minutes=40, completed=True)
    (stop,) = session_plan_calls(session_changed(ended, 4, ["kwh", "status", "end_datetime", "last_updated"]))
    assert (stop.method, stop.body) == (
        "PATCH",
        {
            "kwh": 9.0,
            "status": "COMPLETED",
            "last_updated": "2024-05-01T12:40:00Z",
            "end_datetime": "2024-05-01T12:40:00Z",
        },
    )
    plan = MODULE_PLANS[ModuleID.SESSIONS]
    parts = [{"field": "kwh"}, {"field": "total_cost"}]
    assert plan.pushed([patch], parts) == parts
    assert plan.covers(parts, {"field": "kwh"}) and not plan.covers(parts, {"field": "status"})
    assert plan.covers(None, {"field": "location"})


def test_a_session_change_beyond_the_running_fields_or_emptying_one_is_a_put() -> None:
    """Any other field (the location, the auth_id) sends the whole session; so does a patchable
    field the newest state no longer holds (an omitted optional field: only a PUT clears it)."""
    (put,) = session_plan_calls(session_changed(session("S1", kwh=2.0), 2, ["kwh", "location"]))
    assert (put.method, put.partial) == ("PUT", False)
    (cleared,) = session_plan_calls(session_changed(session("S1", kwh=2.0), 2, ["end_datetime"]))
    assert (cleared.method, cleared.partial) == ("PUT", False)
    (nothing_named,) = session_plan_calls(session_changed(session("S1"), 2, []))
    assert nothing_named.method == "PUT"


# ---- CDRs -----------------------------------------------------------------------------------------


def test_a_cdr_is_posted_whole_to_the_emsps_cdrs_endpoint_itself() -> None:
    """mod_cdrs.md 2.2.2: POST to the endpoint (collection: no cc/party/id in the URL), the whole
    CDR as body; version 1 whatever the event says (a CDR never changes); owner only."""
    event = cdr_created("C1", partner_id="hub-1")
    snapshot = PUSH_PLANS[CdrCreated].snapshot(msgspec.structs.replace(event, version=7), None)
    assert (snapshot.module, snapshot.key, snapshot.version, snapshot.parts, snapshot.audience) == (
        ModuleID.CDRS,
        "C1",
        CDR_VERSION,
        [],
        frozenset({"hub-1"}),
    )
    plan = MODULE_PLANS[ModuleID.CDRS]
    (post,) = plan.calls(snapshot.key, snapshot.state, snapshot.parts, 80)
    assert (post.method, post.path, post.partial, post.collection) == ("POST", (), False, True)
    assert post.body == to_builtins(cdr("C1"))
    assert plan.pushed([post], []) is None and plan.fallback(to_builtins(cdr("C1"))) is None
    assert not plan.whole_first


def test_a_delivered_cdr_is_announced_with_the_emsps_location() -> None:
    """After the POST: CdrDelivered(cdr_id, partner_id, the Location header or "", at); nothing for
    other modules."""
    at = T0
    plan = MODULE_PLANS[ModuleID.CDRS]
    answered = Reply(201, 1000, "", "rid", location="https://emsp.example/ocpi/emsp/2.1.1/cdrs/C1")
    assert plan.announce("C1", "emsp-1", [answered], at) == CdrDelivered(
        cdr_id="C1", partner_id="emsp-1", location="https://emsp.example/ocpi/emsp/2.1.1/cdrs/C1", at=at
    )
    silent = Reply(200, 1000, "", "rid")
    assert plan.announce("C1", "emsp-1", [silent], at) == CdrDelivered(
        cdr_id="C1", partner_id="emsp-1", location="", at=at
    )
    assert plan.announce("C1", "emsp-1", [], at) is None
    assert MODULE_PLANS[ModuleID.SESSIONS].announce("S1", "emsp-1", [answered], at) is None
