"""Unit tests of the dispatcher's pure rules: push planning, answers, backoff, version guard, paging."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dispatcher.domain import (
    Answer,
    change_from_key,
    change_key,
    classify,
    covers,
    first_page_url,
    next_page_url,
    next_probe_interval,
    plan_push,
    pushed_changes,
    retry_delay,
    with_query,
)
from shared.contracts.locations import ChangeScope, LocationChange
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.locations import (
    EVSE,
    Connector,
    ConnectorFormat,
    ConnectorType,
    GeoLocation,
    Location,
    LocationType,
    PowerType,
    Status,
)
from shared.storage import Document

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def evse(uid: str, status: Status = Status.AVAILABLE, at: dt.datetime = T0) -> EVSE:
    connector = Connector(
        id="1",
        standard=ConnectorType.IEC_62196_T2,
        format=ConnectorFormat.SOCKET,
        power_type=PowerType.AC_3_PHASE,
        voltage=230,
        amperage=16,
        last_updated=at,
    )
    return EVSE(uid=uid, status=status, connectors=[connector], last_updated=at)


def location(*evses: EVSE) -> Location:
    return Location(
        id="LOC1",
        type=LocationType.ON_STREET,
        address="Main 1",
        city="Gent",
        postal_code="9000",
        country="BEL",
        coordinates=GeoLocation(latitude="51.047599", longitude="3.729944"),
        evses=list(evses),
        last_updated=T0,
    )


def raw(loc: Location) -> Document:
    """A location as the dispatcher stores and plans it: its JSON form."""
    result: Document = to_builtins(loc)
    return result


def status(uid: str) -> LocationChange:
    return LocationChange(scope=ChangeScope.EVSE_STATUS, evse_uid=uid)


# --- plan_push -----------------------------------------------------------------------------------


def test_status_changes_only_become_one_patch_per_evse() -> None:
    """Only EVSE_STATUS changes give a PATCH of status and last_updated per EVSE, in uid order."""
    later = T0 + dt.timedelta(minutes=5)
    loc = location(evse("E2", Status.CHARGING, later), evse("E1", Status.BLOCKED, later))
    calls = plan_push(raw(loc), [status("E2"), status("E1"), status("E2")])
    assert [(c.method, c.path, c.partial) for c in calls] == [
        ("PATCH", ("LOC1", "E1"), True),
        ("PATCH", ("LOC1", "E2"), True),
    ]
    assert calls[1].body == {"status": "CHARGING", "last_updated": "2024-05-01T12:05:00Z"}


def test_evse_and_connector_changes_put_each_touched_evse() -> None:
    """EVSE or CONNECTOR changes on a few EVSEs PUT those EVSE objects whole."""
    loc = location(evse("E1"), evse("E2"), evse("E3"))
    calls = plan_push(
        raw(loc),
        [
            LocationChange(scope=ChangeScope.EVSE, evse_uid="E1"),
            LocationChange(scope=ChangeScope.CONNECTOR, evse_uid="E3", connector_id="1"),
        ],
    )
    assert [(c.method, c.path) for c in calls] == [("PUT", ("LOC1", "E1")), ("PUT", ("LOC1", "E3"))]
    assert calls[0].body == raw(loc)["evses"][0]


def test_status_and_evse_changes_mix_patch_and_put() -> None:
    """An EVSE with only a status change is PATCHed while another EVSE that changed more is PUT."""
    loc = location(*(evse(f"E{n}") for n in range(1, 7)))
    calls = plan_push(raw(loc), [status("E1"), LocationChange(scope=ChangeScope.EVSE, evse_uid="E2")])
    assert [(c.method, c.path) for c in calls] == [("PATCH", ("LOC1", "E1")), ("PUT", ("LOC1", "E2"))]


@pytest.mark.parametrize(
    "changes",
    [
        [LocationChange(scope=ChangeScope.LOCATION)],
        [status("E1"), LocationChange(scope=ChangeScope.LOCATION)],
        [LocationChange(scope=ChangeScope.EVSE, evse_uid=None)],
        [LocationChange(scope=ChangeScope.EVSE, evse_uid=uid) for uid in ("E1", "E2", "E3", "E4")],
        [status("GONE")],
        [],
    ],
    ids=["location", "location-and-status", "evse-without-uid", "every-evse-whole", "unknown-evse", "none"],
)
def test_everything_else_puts_the_whole_location(changes: list[LocationChange]) -> None:
    """Location-level, larger than the location, inconsistent or empty change sets PUT it whole."""
    loc = location(evse("E1"), evse("E2"), evse("E3"), evse("E4"))
    calls = plan_push(raw(loc), changes)
    assert [(c.method, c.path, c.partial, c.body) for c in calls] == [("PUT", ("LOC1",), False, raw(loc))]


def test_a_large_site_patches_a_few_changed_statuses() -> None:
    """40 EVSEs, 5 changed statuses: 5 PATCHes, not a PUT of 40 EVSEs."""
    loc = location(*(evse(f"E{n:02d}") for n in range(40)))
    calls = plan_push(raw(loc), [status(f"E{n:02d}") for n in range(5)])
    assert [(c.method, c.path[1]) for c in calls] == [("PATCH", f"E{n:02d}") for n in range(5)]


def test_a_large_site_goes_whole_only_when_most_of_its_evses_changed() -> None:
    """40 EVSEs: the PATCHes go until the location is the smaller send, which is past half of them;
    once it goes whole, more changes keep it whole; all 40 changed statuses are one PUT."""
    loc = location(*(evse(f"E{n:02d}") for n in range(40)))
    methods = [
        {c.method for c in plan_push(raw(loc), [status(f"E{n:02d}") for n in range(changed)])}
        for changed in range(1, 41)
    ]
    first_whole = methods.index({"PUT"}) + 1
    assert 20 < first_whole < 40, first_whole
    assert methods[: first_whole - 1] == [{"PATCH"}] * (first_whole - 1)
    assert methods[first_whole - 1 :] == [{"PUT"}] * (41 - first_whole)


def test_whole_evses_go_whole_sooner_than_statuses() -> None:
    """A PUT of an EVSE costs about what the EVSE weighs in the location: 3 of 4 changed EVSEs are
    one location PUT, where 3 changed statuses are 3 PATCHes."""
    loc = location(evse("E1"), evse("E2"), evse("E3"), evse("E4"))
    whole = [LocationChange(scope=ChangeScope.EVSE, evse_uid=uid) for uid in ("E1", "E2", "E3")]
    assert [c.method for c in plan_push(raw(loc), whole)] == ["PUT"]
    assert [c.method for c in plan_push(raw(loc), [status(u) for u in ("E1", "E2", "E3")])] == ["PATCH"] * 3


def test_more_calls_than_a_push_may_make_go_whole() -> None:
    """A push makes at most `max_calls` calls (its lease): beyond, the location goes whole."""
    loc = location(*(evse(f"E{n:02d}") for n in range(40)))
    changes = [status(f"E{n:02d}") for n in range(10)]
    assert len(plan_push(raw(loc), changes, max_calls=10)) == 10
    assert [c.method for c in plan_push(raw(loc), changes, max_calls=9)] == ["PUT"]


def test_pushed_changes_is_none_for_a_location_put() -> None:
    """A push that included a whole-location PUT covered everything."""
    loc = location(evse("E1"))
    assert pushed_changes(plan_push(raw(loc), [LocationChange(scope=ChangeScope.LOCATION)]), []) is None
    changes = [status("E1")]
    assert pushed_changes(plan_push(raw(loc), changes), changes) == changes


def test_covers_tells_which_late_changes_were_already_pushed() -> None:
    """A full PUT covers all; an EVSE PUT covers that EVSE; a PATCH covers only that status."""
    evse_put = [LocationChange(scope=ChangeScope.EVSE, evse_uid="E1")]
    assert covers(None, LocationChange(scope=ChangeScope.LOCATION))
    assert covers(evse_put, status("E1"))
    assert covers(evse_put, LocationChange(scope=ChangeScope.CONNECTOR, evse_uid="E1", connector_id="1"))
    assert not covers(evse_put, status("E2"))
    assert not covers([status("E1")], LocationChange(scope=ChangeScope.EVSE, evse_uid="E1"))
    assert covers([status("E1")], status("E1"))
    assert not covers([status("E1")], LocationChange(scope=ChangeScope.LOCATION))


@given(
    st.sampled_from(list(ChangeScope)),
    st.none() | st.text(max_size=5),
    st.none() | st.text(max_size=5),
)
def test_change_keys_round_trip(scope: ChangeScope, uid: str | None, connector: str | None) -> None:
    """The stored form of a change reads back to the same change."""
    change = LocationChange(scope=scope, evse_uid=uid, connector_id=connector)
    assert change_from_key(change_key(change)) == change


# --- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "status_code", "answer"),
    [
        (200, 1000, Answer.OK),
        (201, 1000, Answer.OK),
        (200, None, Answer.FAILED),
        (200, 2000, Answer.FAILED),
        (200, 3000, Answer.FAILED),
        (404, None, Answer.UNKNOWN_OBJECT),
        (200, 2001, Answer.UNKNOWN_OBJECT),
        (200, 2003, Answer.UNKNOWN_OBJECT),
        (400, 2003, Answer.UNKNOWN_OBJECT),
        (503, None, Answer.FAILED),
        (500, 1000, Answer.FAILED),
        (None, None, Answer.FAILED),
        (429, 2000, Answer.THROTTLED),
        (429, None, Answer.THROTTLED),
    ],
)
def test_classify(http_status: int | None, status_code: int | None, answer: Answer) -> None:
    """Success needs HTTP 2xx and 1000; 404/2001/2003 mean the receiver lacks the object."""
    assert classify(http_status, status_code) is answer


# --- backoff -------------------------------------------------------------------------------------


def test_retry_delay_doubles_until_the_cap() -> None:
    """Without jitter the delay is base * 2**attempts, capped."""
    assert [retry_delay(n, 0.2, 30.0, 1.0) for n in range(10)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        6.4,
        12.8,
        25.6,
        30.0,
        30.0,
    ]


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.5, max_value=1.0))
def test_retry_delay_stays_within_jittered_bounds(attempts: int, jitter: float) -> None:
    """Whatever the attempt count, the delay lies in [cap/2, cap] of its unjittered value."""
    full = min(30.0, 0.2 * 2.0 ** min(attempts, 62))
    delay = retry_delay(attempts, 0.2, 30.0, jitter)
    assert full * 0.5 <= delay <= full


def test_retry_delay_rejects_jitter_outside_the_range() -> None:
    """Jitter factors outside [0.5, 1.0] are a programming error."""
    with pytest.raises(ValueError):
        retry_delay(1, 0.2, 30.0, 0.1)


def test_probe_interval_doubles_within_bounds() -> None:
    """Probe intervals start at the floor, double, and stop at the ceiling."""
    intervals = [0.0]
    for _ in range(7):
        intervals.append(next_probe_interval(intervals[-1], 1.0, 30.0))
    assert intervals[1:] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


# --- paging --------------------------------------------------------------------------------------

PAGE = "https://cpo.example.com/ocpi/cpo/2.1.1/locations?limit=50"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '<https://cpo.example.com/ocpi/cpo/2.1.1/locations?offset=50&limit=50>; rel="next"',
            "https://cpo.example.com/ocpi/cpo/2.1.1/locations?offset=50&limit=50",
        ),
        ("<https://x.test/l?offset=2>; rel=next", "https://x.test/l?offset=2"),
        (
            '<https://x.test/l?offset=0>; rel="prev", <https://x.test/l?offset=4>; rel="next"',
            "https://x.test/l?offset=4",
        ),
        ('<https://x.test/l?a=1,2>;rel="next last"', "https://x.test/l?a=1,2"),
        ('<https://x.test/l?offset=4>; REL="Next"', "https://x.test/l?offset=4"),
        (
            '</ocpi/cpo/2.1.1/locations?offset=50>; rel="next"',
            "https://cpo.example.com/ocpi/cpo/2.1.1/locations?offset=50",
        ),
        ('<https://x.test/l?offset=0>; rel="prev"', None),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_next_page_url(header: str | None, expected: str | None) -> None:
    """The rel="next" target is found among several links, in any case, and resolved if relative."""
    assert next_page_url(header, PAGE) == expected


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=1000))
def test_next_page_url_reads_what_a_server_writes(offset: int, limit: int) -> None:
    """A Link header in the spec's format always yields its URL back."""
    url = f"https://cpo.example.com/ocpi/cpo/2.1.1/locations/?offset={offset}&limit={limit}"
    assert next_page_url(f'<{url}>; rel="next"', PAGE) == url


def test_first_page_url_keeps_existing_query_and_adds_filters() -> None:
    """The first page asks for `limit` and, for a delta sync, `date_from`, keeping the endpoint's query."""
    assert first_page_url("https://x.test/loc?tenant=a", 100, None) == "https://x.test/loc?tenant=a&limit=100"
    assert first_page_url("https://x.test/loc", 10, "2024-05-01T12:00:00Z") == (
        "https://x.test/loc?limit=10&date_from=2024-05-01T12%3A00%3A00Z"
    )
    assert with_query("https://x.test/loc?limit=5", {"limit": "7"}) == "https://x.test/loc?limit=7"
