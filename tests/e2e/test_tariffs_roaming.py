"""Tariffs in both roles between two deployments: A's tariffs reach B's copy, B refuses what is not A's."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from shared.contracts.tariffs import TariffRemove, TariffUpsert
from shared.messaging.broker import Broker
from shared.ocpi.v2_1_1.codec import to_builtins
from tests.conftest import Connection
from tests.support import roaming
from tests.support.http import Reply, admin, request
from tests.support.objects import event_id, location, now, publish, tariff
from tests.support.roaming import tariff_at_b
from tests.support.waiting import eventually


@pytest.fixture
async def cpo_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    """A's broker, as the company's billing system sees it."""
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        yield broker


def _new_id() -> str:
    return f"TAR-{uuid.uuid4().hex[:8]}"


def _b_url(connection: Connection, tariff_id: str, party: str | None = None) -> str:
    pair = connection.pair
    owner = party or f"{pair.cpo.country_code}/{pair.cpo.party_id}"
    return f"{pair.emsp.public_url}/ocpi/emsp/2.1.1/tariffs/{owner}/{tariff_id}"


async def _as_a(
    connection: Connection, method: str, url: str, body: Any = None, raw: bytes | None = None
) -> Reply:
    """A call to B's receiver, as A (a CPO partner of B) makes it."""
    return await request(method, url, token=connection.cpo_to_emsp_token, json=body, data=raw)


def _price(copy: Any) -> float:
    return float(copy["elements"][0]["price_components"][0]["price"])


async def test_a_tariff_changed_at_a_is_at_b_and_removed_at_a_is_gone(
    connection: Connection, cpo_broker: Broker
) -> None:
    """Upsert, change and removal from A's billing system reach B: PUT, PUT, DELETE."""
    tariff_id = _new_id()
    first = now() - timedelta(seconds=30)
    await publish(cpo_broker, TariffUpsert(event_id=event_id(), tariff=tariff(tariff_id, 0.25, first)))

    async def priced(price: float) -> bool:
        copy = await tariff_at_b(connection, tariff_id)
        return copy is not None and _price(copy) == price

    await eventually(lambda: priced(0.25), 15, "the new tariff at B")
    await publish(cpo_broker, TariffUpsert(event_id=event_id(), tariff=tariff(tariff_id, 0.31, now())))
    await eventually(lambda: priced(0.31), 15, "the changed tariff at B")

    await publish(cpo_broker, TariffRemove(event_id=event_id(), tariff_id=tariff_id, at=now()))

    async def gone() -> bool:
        reply = await _as_a(connection, "GET", _b_url(connection, tariff_id))
        return reply.status == 404

    await eventually(gone, 15, "the removal at B")


async def test_tariffs_loaded_by_the_operator_are_listed_at_a_and_pushed_to_b(connection: Connection) -> None:
    """`ocpi-admin tariffs load` at A: A lists them to B (pagination headers) and B has them."""
    ids = [_new_id() for _ in range(3)]
    body = json.dumps([to_builtins(tariff(i)) for i in ids]).encode()
    loaded = await admin(connection.pair.cpo, "POST", "/admin/tariffs", raw=body)
    assert loaded.status_code == 1000 and loaded.data == {"published": 3}, loaded

    async def all_at_b() -> bool:
        return all([await tariff_at_b(connection, i) is not None for i in ids])

    await eventually(all_at_b, 15, "the loaded tariffs at B")
    listed = await request(
        "GET",
        f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/tariffs?limit=1000",
        token=connection.emsp_to_cpo_token,
    )
    assert listed.status_code == 1000 and "X-Total-Count" in listed.headers, listed
    assert set(ids) <= {t["id"] for t in listed.data}


async def test_a_location_naming_an_unknown_tariff_is_loaded_with_a_warning(connection: Connection) -> None:
    """A connector whose tariff_id names no tariff of ours is accepted; the operator is told."""
    made = to_builtins(location(f"LOC-{uuid.uuid4().hex[:8]}", ["E1"]))
    made["evses"][0]["connectors"][0]["tariff_id"] = "NO-SUCH-TARIFF"
    loaded = await admin(connection.pair.cpo, "POST", "/admin/locations", raw=json.dumps([made]).encode())
    assert loaded.status_code == 1000, loaded
    assert loaded.data["published"] == 1
    assert any("NO-SUCH-TARIFF" in warning for warning in loaded.data["warnings"]), loaded


async def test_b_receiver_rules(connection: Connection) -> None:
    """PUT 201 then 200, GET, PATCH of the price, an older PUT changes nothing, DELETE, then 404."""
    tariff_id = _new_id()
    url = _b_url(connection, tariff_id)
    created = await _as_a(connection, "PUT", url, to_builtins(tariff(tariff_id, 0.20)))
    assert (created.status, created.status_code) == (201, 1000), created
    again = await _as_a(connection, "PUT", url, to_builtins(tariff(tariff_id, 0.21)))
    assert (again.status, again.status_code) == (200, 1000), again
    assert _price((await _as_a(connection, "GET", url)).data) == 0.21

    patch = {"elements": [{"price_components": [{"type": "TIME", "price": 2.5, "step_size": 300}]}]}
    patched = await _as_a(connection, "PATCH", url, patch)
    assert patched.status_code == 1000, patched
    assert _price((await _as_a(connection, "GET", url)).data) == 2.5

    older = to_builtins(tariff(tariff_id, 9.99, now() - timedelta(days=1)))
    assert (await _as_a(connection, "PUT", url, older)).status_code == 1000
    assert _price((await _as_a(connection, "GET", url)).data) == 2.5

    deleted = await _as_a(connection, "DELETE", url)
    assert deleted.status_code == 1000, deleted
    assert (await _as_a(connection, "GET", url)).status == 404
    assert (await _as_a(connection, "DELETE", url)).status == 404
    unknown = await _as_a(connection, "PATCH", _b_url(connection, _new_id()), patch)
    assert unknown.status == 404, unknown


async def test_another_partys_tariff_is_refused_and_nothing_is_stored(connection: Connection) -> None:
    """A CPO may only write tariffs under its own country_code/party_id."""
    tariff_id = _new_id()
    other = _b_url(connection, tariff_id, party="DE/OTH")
    for method, body in (("PUT", to_builtins(tariff(tariff_id))), ("GET", None), ("DELETE", None)):
        refused = await _as_a(connection, method, other, body)
        assert (refused.status, refused.status_code) == (403, 2000), (method, refused)
    assert await tariff_at_b(connection, tariff_id) is None


BAD_TARIFFS: list[tuple[str, Any, str]] = [
    ("malformed JSON", b'{"id": ', "Malformed JSON"),
    (
        "no currency",
        {"elements": [{"price_components": [{"type": "ENERGY", "price": 1, "step_size": 1}]}]},
        "currency",
    ),
    ("no elements", {"currency": "EUR", "elements": []}, "elements"),
    (
        "bad dimension",
        {
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "KWH", "price": 1, "step_size": 1}]}],
        },
        "type",
    ),
    (
        "negative step",
        {
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 1, "step_size": -1}]}],
        },
        "step_size",
    ),
    (
        "price as text",
        {
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]}],
        },
        "price",
    ),
]


@pytest.mark.parametrize(("case", "body", "names"), BAD_TARIFFS, ids=[case for case, _, _ in BAD_TARIFFS])
async def test_bad_tariff_bodies_are_2001_naming_the_field_and_store_nothing(
    connection: Connection, case: str, body: Any, names: str
) -> None:
    """Every bad PUT is 400/2001 naming what is wrong, and B stores nothing."""
    tariff_id = _new_id()
    if isinstance(body, dict):
        body = {"id": tariff_id, "last_updated": now().strftime("%Y-%m-%dT%H:%M:%SZ"), **body}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await _as_a(connection, "PUT", _b_url(connection, tariff_id), raw=raw)
    assert (reply.status, reply.status_code) == (400, 2001), (case, reply)
    assert names in reply.message, (case, reply.message)
    assert await tariff_at_b(connection, tariff_id) is None


async def test_bad_tariff_requests_are_2001(connection: Connection) -> None:
    """A PATCH with a bad field, an id too long, an id differing from the URL, a bad list query."""
    tariff_id = _new_id()
    url = _b_url(connection, tariff_id)
    await _as_a(connection, "PUT", url, to_builtins(tariff(tariff_id)))
    bad_patch = await _as_a(connection, "PATCH", url, {"currency": "EURO"})
    assert (bad_patch.status, bad_patch.status_code) == (400, 2001) and "currency" in bad_patch.message
    long_id = "T" * 37
    long_body = {**to_builtins(tariff(tariff_id)), "id": long_id}
    too_long = await _as_a(connection, "PUT", _b_url(connection, long_id), long_body)
    assert (too_long.status, too_long.status_code) == (400, 2001) and "tariff_id" in too_long.message
    mismatch = await _as_a(connection, "PUT", url, to_builtins(tariff("SOMETHING-ELSE")))
    assert (mismatch.status, mismatch.status_code) == (400, 2001) and "differs" in mismatch.message
    assert _price((await _as_a(connection, "GET", url)).data) == 0.25
    sender = f"{connection.pair.cpo.public_url}/ocpi/cpo/2.1.1/tariffs"
    for query, names in (
        ("limit=x", "limit"),
        ("date_from=yesterday", "date_from"),
        ("cursor=%21%21", "cursor"),
        ("cursor=abcdef", "cursor"),
    ):
        listed = await request("GET", f"{sender}?{query}", token=connection.emsp_to_cpo_token)
        assert (listed.status, listed.status_code) == (400, 2001) and names in listed.message, (query, listed)


async def test_a_copy_lost_at_b_comes_back_with_a_sync(connection: Connection, cpo_broker: Broker) -> None:
    """`ocpi-admin partner sync A --module tariffs` at B pulls A's tariffs again."""
    tariff_id = _new_id()
    await publish(cpo_broker, TariffUpsert(event_id=event_id(), tariff=tariff(tariff_id, 0.4)))
    await eventually(lambda: _present(connection, tariff_id), 15, "the tariff at B")
    # B's copy goes (as if B had lost it); A still has the tariff.
    assert (await _as_a(connection, "DELETE", _b_url(connection, tariff_id))).status_code == 1000
    assert await tariff_at_b(connection, tariff_id) is None

    path = f"/admin/partners/{connection.cpo_at_emsp}/sync?module=tariffs"
    synced = await admin(connection.pair.emsp, "POST", path)
    assert synced.status_code == 1000 and synced.data == {"requested": ["tariffs"]}, synced
    await eventually(lambda: _present(connection, tariff_id), 30, "the tariff pulled again")


async def _present(connection: Connection, tariff_id: str) -> bool:
    return await tariff_at_b(connection, tariff_id) is not None
