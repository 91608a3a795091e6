"""Values the database cannot store are refused at the gateway: 400/2001 naming the field, at once,
nothing stored (real processes, two deployments)."""

from __future__ import annotations

import uuid
from typing import Any

from shared.ocpi.v2_1_1.codec import encode, to_builtins
from tests.conftest import Connection
from tests.support.http import Reply, request
from tests.support.objects import location
from tests.support.roaming import stored_at_b


def _receiver_url(connection: Connection, location_id: str) -> str:
    pair = connection.pair
    return (
        f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/locations/"
        f"{pair.cpo.country_code}/{pair.cpo.party_id}/{location_id}"
    )


async def _put_as_cpo(connection: Connection, location_id: str, raw: bytes) -> Reply:
    return await request(
        "PUT", _receiver_url(connection, location_id), token=connection.cpo_to_emsp_token, data=raw
    )


def _location_json(location_id: str) -> dict[str, Any]:
    body: dict[str, Any] = to_builtins(location(location_id, ["E1"]))
    return body


async def test_offset_beyond_64_bits_is_2001_at_once(connection: Connection) -> None:
    """As an eMSP partner, GET locations?offset=2^63 is 400/2001 naming offset, not a 503 after retries."""
    url = f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/locations?offset=9223372036854775808"
    reply = await request("GET", url, token=connection.emsp_to_cpo_token)
    # Before: the service's BSON encoding failed, the RPC was retried until its deadline, then 503/3000.
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "offset" in reply.message


async def test_voltage_beyond_64_bits_is_2001_naming_the_field(connection: Connection) -> None:
    """As a CPO partner, PUT a Location with a connector voltage of 2^63: 400/2001 naming it, none stored."""
    location_id = f"BIG-{uuid.uuid4().hex[:8]}"
    body = _location_json(location_id)
    body["evses"][0]["connectors"][0]["voltage"] = 9223372036854775808
    reply = await _put_as_cpo(connection, location_id, encode(body))
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "voltage" in reply.message
    assert await stored_at_b(connection, location_id) == 0


async def test_deeply_nested_unknown_field_is_2001(connection: Connection) -> None:
    """A PUT body with 1000-deep nesting in an unknown field is 400/2001, not a 500; nothing stored."""
    location_id = f"DEEP-{uuid.uuid4().hex[:8]}"
    raw = encode(_location_json(location_id))[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    reply = await _put_as_cpo(connection, location_id, raw)
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "nested deeper" in reply.message
    assert await stored_at_b(connection, location_id) == 0


async def test_last_updated_in_year_9999_is_2001(connection: Connection) -> None:
    """A PUT whose last_updated is in year 9999 is 400/2001 naming last_updated; nothing stored, so
    the object cannot be frozen against later updates."""
    location_id = f"FUT-{uuid.uuid4().hex[:8]}"
    body = _location_json(location_id)
    body["last_updated"] = "9999-12-31T23:59:59Z"
    reply = await _put_as_cpo(connection, location_id, encode(body))
    assert (reply.status, reply.status_code) == (400, 2001), reply
    assert "last_updated" in reply.message
    assert await stored_at_b(connection, location_id) == 0

    patch = {"status": "CHARGING", "last_updated": "9999-12-31T23:59:59Z"}
    refused = await request(
        "PATCH",
        _receiver_url(connection, location_id) + "/E1",
        token=connection.cpo_to_emsp_token,
        json=patch,
    )
    assert (refused.status, refused.status_code) == (400, 2001), refused
    assert "last_updated" in refused.message
