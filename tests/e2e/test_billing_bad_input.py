"""Bad input on every endpoint of sessions and CDRs: HTTP 400 (or 403/404/405), status 2001 naming
the field, and nothing stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Connection
from tests.support.http import Reply, request


def _session(session_id: str) -> dict[str, Any]:
    return {
        "id": session_id,
        "start_datetime": "2026-12-01T10:00:00Z",
        "kwh": 1.5,
        "auth_id": "DE-EMB-C00001",
        "auth_method": "WHITELIST",
        "location": {
            "id": "L1",
            "type": "ON_STREET",
            "address": "Stationsplein 1",
            "city": "Utrecht",
            "postal_code": "3511CE",
            "country": "NLD",
            "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
            "last_updated": "2026-12-01T10:00:00Z",
        },
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": "2026-12-01T10:00:00Z",
    }


def _cdr(cdr_id: str) -> dict[str, Any]:
    session = _session(cdr_id)
    return {
        "id": cdr_id,
        "start_date_time": "2026-12-01T10:00:00Z",
        "stop_date_time": "2026-12-01T11:00:00Z",
        "auth_id": session["auth_id"],
        "auth_method": "WHITELIST",
        "location": session["location"],
        "currency": "EUR",
        "charging_periods": [
            {"start_date_time": "2026-12-01T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 1.5}]}
        ],
        "total_cost": 0.45,
        "total_energy": 1.5,
        "total_time": 1.0,
        "last_updated": "2026-12-01T11:00:00Z",
    }


def _without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


def _sessions_url(connection: Connection, session_id: str, party: str = "NL/CPA") -> str:
    return f"{connection.pair.emsp.public_url}/ocpi/emsp/2.1.1/sessions/{party}/{session_id}"


async def _as_a(connection: Connection, method: str, url: str, body: Any = None) -> Reply:
    if isinstance(body, bytes):
        return await request(method, url, token=connection.cpo_to_emsp_token, data=body)
    return await request(method, url, token=connection.cpo_to_emsp_token, json=body)


def _refused(reply: Reply, field: str, status: int = 400) -> None:
    assert (reply.status, reply.status_code) == (status, 2001), reply
    assert field in reply.message, reply


SESSION_BODIES = [
    (b'{"id": ', "JSON"),
    ("no kwh", "kwh"),
    ("negative kwh", "kwh"),
    ("bad auth_method", "auth_method"),
    ("bad status", "status"),
    ("other id", "id"),
    ("far future", "last_updated"),
    ("long meter_id", "meter_id"),
]


def _bad_session(case: str | bytes, session_id: str) -> Any:
    good = _session(session_id)
    return (
        {
            "no kwh": _without(good, "kwh"),
            "negative kwh": {**good, "kwh": -1},
            "bad auth_method": {**good, "auth_method": "MAGIC"},
            "bad status": {**good, "status": "CHARGING"},
            "other id": {**good, "id": "ANOTHER"},
            "far future": {**good, "last_updated": "2099-01-01T00:00:00Z"},
            "long meter_id": {**good, "meter_id": "M" * 256},
        }.get(case, case)
        if isinstance(case, str)
        else case
    )


@pytest.mark.parametrize(("case", "field"), SESSION_BODIES)
async def test_bad_session_puts_are_refused_and_store_nothing(
    connection: Connection, case: str | bytes, field: str
) -> None:
    session_id = f"BAD-{uuid.uuid4().hex[:8]}"
    url = _sessions_url(connection, session_id)
    _refused(await _as_a(connection, "PUT", url, _bad_session(case, session_id)), field)
    assert (await _as_a(connection, "GET", url)).status == 404


async def test_bad_session_patches_and_requests_are_refused_and_change_nothing(
    connection: Connection,
) -> None:
    session_id = f"BAD-{uuid.uuid4().hex[:8]}"
    url = _sessions_url(connection, session_id)
    good = _session(session_id)
    assert (await _as_a(connection, "PUT", url, good)).status_code == 1000
    _refused(await _as_a(connection, "PATCH", url, {"kwh": "lots"}), "kwh")
    _refused(await _as_a(connection, "PATCH", url, {"total_cost": -3}), "total_cost")
    _refused(await _as_a(connection, "PATCH", url, {}), "names no field")
    _refused(await _as_a(connection, "GET", _sessions_url(connection, "S" * 37)), "session_id")
    # Another party's session: not this partner's to write.
    other = await _as_a(connection, "PUT", _sessions_url(connection, session_id, "FR/XYZ"), good)
    assert (other.status, other.status_code) == (403, 2000), other
    # A session is never deleted.
    assert (await _as_a(connection, "DELETE", url)).status == 405
    copy = (await _as_a(connection, "GET", url)).data
    assert copy["kwh"] == 1.5 and copy["status"] == "ACTIVE"


CDR_BODIES = [
    (b'{"id": "X", ', "JSON"),
    ("no total_cost", "total_cost"),
    ("negative total_cost", "total_cost"),
    ("no periods", "charging_periods"),
    ("negative volume", "volume"),
    ("bad dimension", "type"),
    ("far future", "last_updated"),
]


def _bad_cdr(case: str | bytes, cdr_id: str) -> Any:
    good = _cdr(cdr_id)
    period = good["charging_periods"][0]
    return (
        {
            "no total_cost": _without(good, "total_cost"),
            "negative total_cost": {**good, "total_cost": -0.01},
            "no periods": {**good, "charging_periods": []},
            "negative volume": {
                **good,
                "charging_periods": [{**period, "dimensions": [{"type": "ENERGY", "volume": -1}]}],
            },
            "bad dimension": {
                **good,
                "charging_periods": [{**period, "dimensions": [{"type": "WATTS", "volume": 1}]}],
            },
            "far future": {**good, "last_updated": "2099-01-01T00:00:00Z"},
        }.get(case, case)
        if isinstance(case, str)
        else case
    )


@pytest.mark.parametrize(("case", "field"), CDR_BODIES)
async def test_bad_cdr_posts_are_refused_and_store_nothing(
    connection: Connection, case: str | bytes, field: str
) -> None:
    cdr_id = f"BAD-{uuid.uuid4().hex[:8]}"
    url = f"{connection.pair.emsp.public_url}/ocpi/emsp/2.1.1/cdrs"
    _refused(await _as_a(connection, "POST", url, _bad_cdr(case, cdr_id)), field)
    assert (await _as_a(connection, "GET", f"{url}/NL/CPA/{cdr_id}")).status == 404


async def test_a_cdr_cannot_be_replaced_or_read_as_another_party(connection: Connection) -> None:
    cdr_id = f"BAD-{uuid.uuid4().hex[:8]}"
    url = f"{connection.pair.emsp.public_url}/ocpi/emsp/2.1.1/cdrs"
    assert (await _as_a(connection, "POST", url, _cdr(cdr_id))).status == 201
    changed = await _as_a(connection, "POST", url, {**_cdr(cdr_id), "total_cost": 9.99})
    _refused(changed, "different content")
    assert (await _as_a(connection, "GET", f"{url}/NL/CPA/{cdr_id}")).data["total_cost"] == 0.45
    assert (await _as_a(connection, "GET", f"{url}/FR/XYZ/{cdr_id}")).status == 403
    for method in ("PUT", "PATCH", "DELETE"):
        assert (await _as_a(connection, method, f"{url}/NL/CPA/{cdr_id}", _cdr(cdr_id))).status == 405


@pytest.mark.parametrize(
    ("module", "query", "field"),
    [
        ("sessions", "", "date_from"),
        ("sessions", "?date_from=yesterday", "date_from"),
        ("sessions", "?date_from=2026-01-01T00:00:00Z&limit=-1", "limit"),
        ("cdrs", "?date_to=soon", "date_to"),
        ("cdrs", "?offset=x", "offset"),
    ],
)
async def test_bad_list_queries_at_the_cpo_are_refused(
    connection: Connection, module: str, query: str, field: str
) -> None:
    url = f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/{module}{query}"
    _refused(await request("GET", url, token=connection.emsp_to_cpo_token), field)
