"""Pure rules of the locations service: guard, PUT/PATCH merges, internal inputs, paging cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.locations.domain import (
    InvalidChange,
    UnknownObject,
    addressed,
    is_stale,
    patch_connector,
    patch_evse,
    patch_location,
    put_connector,
    put_evse,
    put_location,
)
from services.locations.inputs import Rejected, apply_input, change_of, location_id_of
from shared.contracts.locations import (
    ChangeScope,
    ConnectorRemove,
    ConnectorUpsert,
    EvseRemove,
    EvseStatusSet,
    EvseUpsert,
    LocationChange,
    LocationRemove,
    LocationUpsert,
)
from shared.modules.paging import decode_cursor, encode_cursor, next_page_query
from shared.ocpi.v2_1_1.locations import (
    EVSE,
    Connector,
    ConnectorPatch,
    EVSEPatch,
    Facility,
    Location,
    LocationPatch,
    Status,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
replace = msgspec.structs.replace


def connector(cid: str = "1", at: datetime = T0) -> Connector:
    return msgspec.convert(
        {
            "id": cid,
            "standard": "IEC_62196_T2",
            "format": "SOCKET",
            "power_type": "AC_3_PHASE",
            "voltage": 230,
            "amperage": 32,
            "last_updated": at,
        },
        Connector,
    )


def evse(uid: str = "E1", at: datetime = T0, status: Status = Status.AVAILABLE, connectors: int = 1) -> EVSE:
    return EVSE(
        uid=uid,
        status=status,
        connectors=[connector(str(i + 1), at) for i in range(connectors)],
        last_updated=at,
    )


def location(lid: str = "L1", at: datetime = T0, evses: list[EVSE] | None = None) -> Location:
    return msgspec.convert(
        {
            "id": lid,
            "type": "ON_STREET",
            "address": "Main 1",
            "city": "Utrecht",
            "postal_code": "3511",
            "country": "NLD",
            "coordinates": {"latitude": "52.090000", "longitude": "5.120000"},
            "evses": [evse(at=at)] if evses is None else evses,
            "last_updated": at,
        },
        Location,
    )


LATER = T0 + timedelta(minutes=5)
EARLIER = T0 - timedelta(minutes=5)


# ---- guard -----------------------------------------------------------------------------------------


def test_stale_means_strictly_older() -> None:
    """Only an older timestamp is stale; an equal one is applied again (idempotent)."""
    assert is_stale(EARLIER, T0)
    assert not is_stale(T0, T0)
    assert not is_stale(LATER, T0)


def test_naive_and_offset_timestamps_compare_as_utc() -> None:
    """A naive time means UTC and an offset is converted before comparing."""
    assert not is_stale(datetime(2024, 5, 1, 12, 0, 0), T0)
    assert is_stale(datetime(2024, 5, 1, 13, 59, 0, tzinfo=timezone(timedelta(hours=2))), T0)


# ---- receiver PUT ------------------------------------------------------------------------------------


def test_put_location_replaces_newer_and_ignores_older_or_identical() -> None:
    """A location PUT replaces what is stored only when it is not older and not identical."""
    stored = location()
    newer = replace(location(at=LATER), name="New")
    assert put_location(None, stored, "L1") == stored
    assert put_location(stored, newer, "L1") == newer
    assert put_location(newer, stored, "L1") is None
    assert put_location(stored, stored, "L1") is None


def test_put_location_with_other_id_than_url_is_invalid() -> None:
    """The id in the body must be the one in the URL (2001)."""
    with pytest.raises(InvalidChange):
        put_location(None, location("L2"), "L1")


def test_put_evse_adds_or_replaces_and_moves_the_location_last_updated() -> None:
    """A new EVSE joins the location and the location's last_updated follows the EVSE's."""
    stored = location()
    added = put_evse(stored, evse("E2", LATER), "E2")
    assert added is not None
    assert [e.uid for e in added.evses or []] == ["E1", "E2"]
    assert added.last_updated == LATER
    replaced = put_evse(added, evse("E1", LATER, Status.CHARGING), "E1")
    assert replaced is not None and addressed(replaced, "E1", None) == evse("E1", LATER, Status.CHARGING)


def test_put_evse_older_than_stored_evse_changes_nothing() -> None:
    """An EVSE PUT older than the stored EVSE is ignored."""
    assert put_evse(location(at=LATER, evses=[evse(at=LATER)]), evse(at=T0), "E1") is None


def test_put_connector_into_unknown_evse_is_unknown() -> None:
    """A connector cannot be placed under an EVSE we do not hold."""
    with pytest.raises(UnknownObject):
        put_connector(location(), "E9", connector("1"), "1")


def test_put_connector_moves_evse_and_location_last_updated() -> None:
    """A connector change also changes its EVSE's and its location's last_updated."""
    result = put_connector(location(), "E1", connector("2", LATER), "2")
    assert result is not None
    changed = addressed(result, "E1", None)
    assert isinstance(changed, EVSE)
    assert [c.id for c in changed.connectors] == ["1", "2"]
    assert changed.last_updated == LATER and result.last_updated == LATER


# ---- receiver PATCH ----------------------------------------------------------------------------------


def test_patch_location_replaces_present_fields_and_whole_lists() -> None:
    """A PATCH replaces only the fields it names; a list field is replaced as a whole (2.1.1)."""
    stored = replace(location(), facilities=[Facility.CAFE, Facility.HOTEL], name="Old")
    patch = LocationPatch(facilities=[Facility.MALL], last_updated=LATER)
    result = patch_location(stored, patch, now=LATER)
    assert result is not None
    assert result.facilities == [Facility.MALL]
    assert result.name == "Old" and result.evses == stored.evses
    assert result.last_updated == LATER


def test_patch_without_last_updated_is_stamped_now() -> None:
    """2.1.1 PATCH bodies may lack last_updated: the change is stamped with the current time."""
    result = patch_location(location(), LocationPatch(name="Renamed"), now=LATER)
    assert result is not None and result.name == "Renamed" and result.last_updated == LATER


def test_patch_null_clears_an_optional_field() -> None:
    """A field present as null in a PATCH clears it."""
    stored = replace(location(), name="Old")
    result = patch_location(stored, msgspec.convert({"name": None}, LocationPatch), now=LATER)
    assert result is not None and result.name is None


def test_older_patch_changes_nothing() -> None:
    """A PATCH whose last_updated is older than the patched object is ignored."""
    stored = location(at=LATER, evses=[evse(at=LATER)])
    assert patch_location(stored, LocationPatch(name="x", last_updated=T0), now=LATER) is None
    assert patch_evse(stored, "E1", EVSEPatch(status=Status.CHARGING, last_updated=T0), now=LATER) is None


def test_patch_evse_status_moves_the_location_last_updated() -> None:
    """An EVSE status PATCH changes the EVSE and the parent location's last_updated."""
    result = patch_evse(location(), "E1", EVSEPatch(status=Status.CHARGING, last_updated=LATER), now=LATER)
    assert result is not None
    changed = addressed(result, "E1", None)
    assert isinstance(changed, EVSE) and changed.status == Status.CHARGING
    assert changed.last_updated == LATER and result.last_updated == LATER


def test_patch_connector_moves_evse_and_location_last_updated() -> None:
    """A connector PATCH stamps the connector, its EVSE and its location."""
    result = patch_connector(
        location(), "E1", "1", ConnectorPatch(tariff_id="T15", last_updated=LATER), LATER
    )
    assert result is not None
    changed = addressed(result, "E1", "1")
    assert isinstance(changed, Connector) and changed.tariff_id == "T15"
    assert addressed(result, "E1", None).last_updated == LATER and result.last_updated == LATER


def test_patch_of_unknown_evse_or_connector_is_unknown() -> None:
    """PATCHing what we do not hold is an unknown object (the sender falls back to PUT)."""
    with pytest.raises(UnknownObject):
        patch_evse(location(), "E9", EVSEPatch(status=Status.CHARGING), now=LATER)
    with pytest.raises(UnknownObject):
        patch_connector(location(), "E1", "9", ConnectorPatch(tariff_id="T"), now=LATER)


def test_patch_with_other_id_than_url_is_invalid() -> None:
    """An id or uid in a PATCH body that differs from the URL is 2001."""
    with pytest.raises(InvalidChange):
        patch_evse(location(), "E1", EVSEPatch(uid="E2"), now=LATER)


# ---- CPO inputs ----------------------------------------------------------------------------------------


def _status(status: Status, at: datetime, uid: str = "E1") -> EvseStatusSet:
    return EvseStatusSet(event_id="e", location_id="L1", evse_uid=uid, status=status, at=at)


def test_status_set_changes_evse_and_location() -> None:
    """A new EVSE status is stored with its time, and the location's last_updated follows."""
    result = apply_input(_status(Status.CHARGING, LATER), location())
    assert result is not None
    changed = addressed(result, "E1", None)
    assert isinstance(changed, EVSE) and changed.status == Status.CHARGING and changed.last_updated == LATER
    assert result.last_updated == LATER


def test_status_set_that_is_older_or_the_same_changes_nothing() -> None:
    """A stale status, or the status the EVSE already has, changes nothing."""
    stored = location(at=LATER, evses=[evse(at=LATER)])
    assert apply_input(_status(Status.CHARGING, T0), stored) is None
    assert apply_input(_status(Status.AVAILABLE, LATER + timedelta(1)), stored) is None


def test_status_set_naive_time_means_utc() -> None:
    """The `at` of an input without a zone is taken as UTC."""
    result = apply_input(_status(Status.CHARGING, datetime(2024, 5, 1, 12, 5, 0)), location())
    assert result is not None and result.last_updated == LATER


def test_inputs_for_unknown_objects_are_rejected() -> None:
    """Changing an EVSE of an unknown location, or an unknown EVSE, can never apply."""
    with pytest.raises(Rejected):
        apply_input(_status(Status.CHARGING, LATER), None)
    with pytest.raises(Rejected):
        apply_input(_status(Status.CHARGING, LATER, uid="E9"), location())
    with pytest.raises(Rejected):
        apply_input(
            ConnectorUpsert(event_id="e", location_id="L1", evse_uid="E9", connector=connector()), location()
        )


def test_removing_what_is_not_stored_changes_nothing() -> None:
    """Removes of absent objects leave the wanted end state as it is."""
    assert apply_input(LocationRemove(event_id="e", location_id="L1", at=LATER), None) is None
    assert (
        apply_input(EvseRemove(event_id="e", location_id="L1", evse_uid="E9", at=LATER), location()) is None
    )
    remove = ConnectorRemove(event_id="e", location_id="L1", evse_uid="E1", connector_id="9", at=LATER)
    assert apply_input(remove, location()) is None


def test_evse_remove_sets_status_removed() -> None:
    """An EVSE is removed by status REMOVED, never deleted (2.1.1)."""
    result = apply_input(EvseRemove(event_id="e", location_id="L1", evse_uid="E1", at=LATER), location())
    assert result is not None
    assert [(e.uid, e.status) for e in result.evses or []] == [("E1", Status.REMOVED)]


def test_location_remove_sets_every_evse_removed() -> None:
    """Removing a location marks every EVSE REMOVED; a second remove changes nothing."""
    stored = location(evses=[evse("E1"), evse("E2", status=Status.CHARGING)])
    result = apply_input(LocationRemove(event_id="e", location_id="L1", at=LATER), stored)
    assert result is not None
    assert {e.status for e in result.evses or []} == {Status.REMOVED}
    assert all(e.last_updated == LATER for e in result.evses or []) and result.last_updated == LATER
    assert apply_input(LocationRemove(event_id="f", location_id="L1", at=LATER), result) is None


def test_upserts_add_and_replace() -> None:
    """Location, EVSE and connector upserts create or replace, guarded by last_updated."""
    created = apply_input(LocationUpsert(event_id="e", location=location()), None)
    assert created == location()
    with_e2 = apply_input(EvseUpsert(event_id="e", location_id="L1", evse=evse("E2", LATER)), created)
    assert with_e2 is not None and len(with_e2.evses or []) == 2
    upsert = ConnectorUpsert(event_id="e", location_id="L1", evse_uid="E2", connector=connector("2", LATER))
    with_c2 = apply_input(upsert, with_e2)
    assert with_c2 is not None and len(addressed(with_c2, "E2", None).connectors) == 2  # type: ignore[union-attr]
    assert apply_input(LocationUpsert(event_id="e", location=location(at=EARLIER)), with_c2) is None


def test_evse_left_out_of_an_upsert_stays_as_removed() -> None:
    """An EVSE missing from a newer location upsert is kept with status REMOVED, never dropped."""
    stored = location(evses=[evse("E1"), evse("E2")])
    result = apply_input(
        LocationUpsert(event_id="e", location=location(at=LATER, evses=[evse("E1", LATER)])), stored
    )
    assert result is not None
    assert [(e.uid, e.status, e.last_updated) for e in result.evses or []] == [
        ("E1", Status.AVAILABLE, LATER),
        ("E2", Status.REMOVED, LATER),
    ]


def test_connector_remove_keeps_at_least_one_connector() -> None:
    """A connector is removed from its EVSE, but the last connector cannot go (remove the EVSE)."""
    stored = location(evses=[evse(connectors=2)])
    remove = ConnectorRemove(event_id="e", location_id="L1", evse_uid="E1", connector_id="2", at=LATER)
    result = apply_input(remove, stored)
    assert result is not None
    assert [c.id for c in addressed(result, "E1", None).connectors] == ["1"]  # type: ignore[union-attr]
    last = ConnectorRemove(event_id="e", location_id="L1", evse_uid="E1", connector_id="1", at=LATER)
    with pytest.raises(Rejected):
        apply_input(last, result)


def test_change_scopes_and_location_ids() -> None:
    """Each input names the part of the location it changed, for the dispatcher."""
    assert change_of(_status(Status.CHARGING, T0)) == LocationChange(ChangeScope.EVSE_STATUS, "E1")
    assert change_of(EvseRemove(event_id="e", location_id="L1", evse_uid="E1", at=T0)) == LocationChange(
        ChangeScope.EVSE, "E1"
    )
    upsert = ConnectorUpsert(event_id="e", location_id="L1", evse_uid="E1", connector=connector("3"))
    assert change_of(upsert) == LocationChange(ChangeScope.CONNECTOR, "E1", "3")
    assert change_of(LocationUpsert(event_id="e", location=location("L7"))) == LocationChange(
        ChangeScope.LOCATION
    )
    assert location_id_of(LocationUpsert(event_id="e", location=location("L7"))) == "L7"


# ---- paging ------------------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**63))
def test_cursor_round_trips_and_is_url_safe(seq: int) -> None:
    """Any creation sequence number survives the cursor, which needs no URL escaping."""
    cursor = encode_cursor(seq)
    assert decode_cursor(cursor) == seq
    assert cursor.replace("-", "").replace("_", "").isalnum() and len(cursor) <= 64


@pytest.mark.parametrize("cursor", ["", "abc", "!!", encode_cursor(5)[:-1] + "*", "czE6LTE", "eDo1"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    """A cursor we did not issue (garbage, negative, other prefix) raises ValueError."""
    with pytest.raises(ValueError):
        decode_cursor(cursor)


def test_next_page_query_keeps_the_filters() -> None:
    """The next page's query carries offset, limit, the date filters in OCPI form and the cursor."""
    query = next_page_query(
        offset=10, limit=5, returned=5, last_seq=42, date_from=T0, date_to=datetime(2024, 6, 1, 2, 0, 0)
    )
    assert query == {
        "offset": "15",
        "limit": "5",
        "date_from": "2024-05-01T12:00:00Z",
        "date_to": "2024-06-01T02:00:00Z",
        "cursor": encode_cursor(42),
    }
    assert "date_from" not in next_page_query(
        offset=0, limit=5, returned=5, last_seq=1, date_from=None, date_to=None
    )
