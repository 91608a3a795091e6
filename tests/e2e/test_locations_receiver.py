"""B's locations Receiver, as A (a CPO partner) pushes to it through B's gateway."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from shared.ocpi.v2_1_1.codec import to_builtins
from tests.conftest import Connection
from tests.support.http import Reply, request
from tests.support.objects import evse, location, now
from tests.support.roaming import stored_at_b


def _url(connection: Connection, *ids: str, party: str | None = None) -> str:
    pair = connection.pair
    owner = party or f"{pair.cpo.country_code}/{pair.cpo.party_id}"
    return f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations/{owner}/" + "/".join(ids)


async def _as_a(
    connection: Connection, method: str, url: str, body: Any = None, raw: bytes | None = None
) -> Reply:
    return await request(method, url, token=connection.cpo_to_emsp_token, json=body, data=raw)


def _new_id() -> str:
    return f"RCV-{uuid.uuid4().hex[:8]}"


async def test_put_get_patch_and_fallback_signal(connection: Connection) -> None:
    """PUT stores, GET returns it, PATCH merges an EVSE status, PATCH of an unknown object is 404/2003."""
    location_id = _new_id()
    body = to_builtins(location(location_id, ["E1", "E2"]))
    created = await _as_a(connection, "PUT", _url(connection, location_id), body)
    assert created.status_code == 1000, created
    got = await _as_a(connection, "GET", _url(connection, location_id))
    assert got.data["id"] == location_id and len(got.data["evses"]) == 2

    later = (now() + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    patched = await _as_a(
        connection,
        "PATCH",
        _url(connection, location_id, "E2"),
        {"status": "CHARGING", "last_updated": later},
    )
    assert patched.status_code == 1000, patched
    evse2 = await _as_a(connection, "GET", _url(connection, location_id, "E2"))
    assert evse2.data["status"] == "CHARGING" and evse2.data["last_updated"] == later
    assert (await _as_a(connection, "GET", _url(connection, location_id))).data["last_updated"] >= later

    unknown = await _as_a(connection, "PATCH", _url(connection, _new_id(), "E1"), {"status": "CHARGING"})
    assert (unknown.status, unknown.status_code) == (404, 2003)


async def test_another_partys_object_is_refused_and_nothing_is_stored(connection: Connection) -> None:
    """A CPO may only write under its own country_code/party_id."""
    location_id = _new_id()
    body = to_builtins(location(location_id, ["E1"]))
    refused = await _as_a(connection, "PUT", _url(connection, location_id, party="DE/OTH"), body)
    assert refused.status == 403 and refused.status_code == 2000
    assert (await _as_a(connection, "GET", _url(connection, location_id, party="DE/OTH"))).status == 403
    assert await stored_at_b(connection, location_id) == 0


async def test_id_in_body_must_match_the_url(connection: Connection) -> None:
    """A location, EVSE or connector whose id differs from the URL's is 2001 and changes nothing."""
    location_id = _new_id()
    body = to_builtins(location("SOMETHING-ELSE", ["E1"]))
    reply = await _as_a(connection, "PUT", _url(connection, location_id), body)
    assert (reply.status, reply.status_code) == (400, 2001) and "differs" in reply.message
    assert await stored_at_b(connection, location_id) == 0

    await _as_a(connection, "PUT", _url(connection, location_id), to_builtins(location(location_id, ["E1"])))
    wrong_evse = await _as_a(connection, "PUT", _url(connection, location_id, "E9"), to_builtins(evse("E1")))
    assert (wrong_evse.status, wrong_evse.status_code) == (400, 2001)
    patch = await _as_a(connection, "PATCH", _url(connection, location_id, "E1"), {"uid": "E7"})
    assert (patch.status, patch.status_code) == (400, 2001)


async def test_an_older_update_changes_nothing(connection: Connection) -> None:
    """A PUT whose last_updated is older than the stored one is accepted and ignored."""
    location_id = _new_id()
    stamp = now()
    await _as_a(
        connection, "PUT", _url(connection, location_id), to_builtins(location(location_id, ["E1"], stamp))
    )
    older = to_builtins(location(location_id, ["E1", "E2"], stamp - timedelta(minutes=5)))
    older["name"] = "Stale name"
    reply = await _as_a(connection, "PUT", _url(connection, location_id), older)
    assert reply.status_code == 1000
    stored = (await _as_a(connection, "GET", _url(connection, location_id))).data
    assert stored["name"] != "Stale name" and len(stored["evses"]) == 1

    stale_patch = (stamp - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await _as_a(
        connection,
        "PATCH",
        _url(connection, location_id, "E1"),
        {"status": "BLOCKED", "last_updated": stale_patch},
    )
    assert (await _as_a(connection, "GET", _url(connection, location_id, "E1"))).data["status"] == "AVAILABLE"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda body: b'{"id": "x", ', "JSON"),
        (lambda body: {k: v for k, v in body.items() if k != "address"}, "address"),
        (lambda body: {**body, "type": "SPACESHIP"}, "type"),
        (lambda body: {**body, "coordinates": {"latitude": "north", "longitude": "5.1"}}, "latitude"),
        (lambda body: {**body, "evses": [{**body["evses"][0], "status": "HAPPY"}]}, "status"),
    ],
)
async def test_invalid_bodies_are_2001_and_store_nothing(
    connection: Connection, mutate: Any, field: str
) -> None:
    """Broken JSON and invalid objects get 400/2001 naming the problem; B stores nothing."""
    location_id = _new_id()
    bad = mutate(to_builtins(location(location_id, ["E1"])))
    if isinstance(bad, bytes):
        reply = await _as_a(connection, "PUT", _url(connection, location_id), raw=bad)
    else:
        reply = await _as_a(connection, "PUT", _url(connection, location_id), bad)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert field in reply.message
    assert await stored_at_b(connection, location_id) == 0
