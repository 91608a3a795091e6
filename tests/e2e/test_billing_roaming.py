"""The billing chain between two deployments: a session at A's charger with B's card reaches B as it
runs, and its CDR reaches B once, with a total B computes the same to the cent.

A's charger backend is the test publishing the documented session events on A's broker; B's
copies are read through B's receiver interface, as A (a CPO partner of B) may read them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from shared.contracts.sessions import SessionMeter, SessionStop
from shared.contracts.tariffs import TariffUpsert
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.pricing import price_session
from tests.conftest import Connection
from tests.support import roaming
from tests.support.billing import (
    Site,
    a_list,
    at_b,
    cdr_at_b,
    charge,
    prepare_site,
    start_message,
)
from tests.support.fake_partner import MODULES, fake_partner, register_throwaway
from tests.support.http import admin, request
from tests.support.objects import event_id, now, publish
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
async def a_broker(connection: Connection, amqp_url: str) -> AsyncIterator[Broker]:
    """A's broker, as its charger backend and billing system see it."""
    async with roaming.cpo_broker(connection, amqp_url) as broker:
        yield broker


@pytest.fixture(scope="module")
async def charger(a_broker: Broker) -> AsyncIterator[RpcClient]:
    client = RpcClient(a_broker, timeout=10.0)
    await client.start()
    yield client


@pytest.fixture(scope="module")
async def site(connection: Connection, a_broker: Broker, b_broker: Broker, charger: RpcClient) -> Site:
    return await prepare_site(connection, a_broker, b_broker, charger)


class OtherEmsp:
    """C: another eMSP partner of A, with sessions and CDRs endpoints, recording every call it gets."""

    def __init__(self, token: str, calls: list[tuple[str, str]]) -> None:
        self.token = token
        self.calls = calls

    def billing_calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.calls if "/sessions" in path or "/cdrs" in path]


@pytest.fixture(scope="module")
async def other_emsp(connection: Connection) -> AsyncIterator[OtherEmsp]:
    calls: list[tuple[str, str]] = []
    party = "C" + uuid.uuid4().hex[:2].upper()
    async with fake_partner((*MODULES, "sessions", "cdrs"), calls) as versions_url:
        token = await register_throwaway(connection.pair.cpo, versions_url, "EMSP", "DE", party)
        yield OtherEmsp(token, calls)


async def test_a_session_reaches_b_as_it_runs_and_its_cdr_once_with_the_same_total(
    connection: Connection, a_broker: Broker, site: Site, other_emsp: OtherEmsp
) -> None:
    """B's card at A: B sees the session within a second and its cost moving; at the stop B holds a
    CDR whose total it computes the same; C, another eMSP of A, sees nothing of it."""
    location_id, uid, tariff = site.location_id, site.uid, site.tariff
    session_id = f"S-{uuid.uuid4().hex[:10]}"
    began = now() - timedelta(hours=2)
    await publish(a_broker, start_message(session_id, location_id, uid, began))

    async def started() -> bool:
        return await at_b(connection, "sessions", session_id) is not None

    took = await eventually(started, 15, "the session at B", pause=0.02)
    assert took < 1.0, f"the session took {took:.3f} s to reach B"
    first = await at_b(connection, "sessions", session_id)
    assert first["status"] == "ACTIVE" and first["auth_id"] == f"DE-EMB-{uid}"
    assert first["location"]["evses"][0]["uid"] == "E1"

    for minutes, kwh in ((30, 5.5), (60, 11.0), (75, 13.25)):
        await publish(
            a_broker,
            SessionMeter(
                event_id=event_id(), session_id=session_id, at=began + timedelta(minutes=minutes), kwh=kwh
            ),
        )

    async def running() -> bool:
        copy = await at_b(connection, "sessions", session_id)
        return copy is not None and copy["kwh"] == 13.25

    await eventually(running, 15, "the running session's energy at B")
    copy = await at_b(connection, "sessions", session_id)
    assert copy["total_cost"] > first["total_cost"]

    # Parked for 20 minutes once full, then gone.
    await publish(
        a_broker,
        SessionMeter(
            event_id=event_id(),
            session_id=session_id,
            at=began + timedelta(minutes=80),
            kwh=14.0,
            charging=False,
        ),
    )
    await publish(
        a_broker,
        SessionStop(event_id=event_id(), session_id=session_id, at=began + timedelta(minutes=100), kwh=14.0),
    )

    async def billed() -> bool:
        return await at_b(connection, "cdrs", session_id) is not None

    await eventually(billed, 20, "the CDR at B")
    cdr = msgspec.convert(await at_b(connection, "cdrs", session_id), CDR)
    at_a = [c for c in await a_list(connection, "cdrs") if c["id"] == session_id]
    assert len(at_a) == 1
    assert cdr == msgspec.convert(at_a[0], CDR)
    # B's own computation from the CDR alone gives A's total to the cent.
    ours = price_session(
        tariff, cdr.start_date_time, cdr.stop_date_time, cdr.charging_periods, "Europe/Amsterdam"
    )
    assert Decimal(repr(cdr.total_cost)) == ours.total_cost
    assert cdr.total_energy == 14.0 and cdr.total_parking_time == pytest.approx(20 / 60)
    ended = await at_b(connection, "sessions", session_id)
    assert ended["status"] == "COMPLETED" and ended["total_cost"] == cdr.total_cost
    print(f"start→B {took:.3f}s, CDR total {cdr.total_cost} {cdr.currency}")
    # A lists the session to B (its own token's) and only once.
    assert [s["id"] for s in await a_list(connection, "sessions")].count(session_id) == 1
    assert to_builtins(cdr)["tariffs"][0]["id"] == tariff.id
    # B agrees with A's price: the CDR is not among B's disputes.
    disputes = (await admin(connection.pair.emsp, "GET", "/admin/cdrs/disputes")).data
    assert session_id not in {d["cdr_id"] for d in disputes}
    # C got no call about the session or its CDR, and A's lists show C none of them.
    assert other_emsp.billing_calls() == []
    for module in ("sessions", "cdrs"):
        assert session_id not in {o["id"] for o in await a_list(connection, module, other_emsp.token)}


async def test_a_session_across_midnight_and_the_end_of_summer_time_is_priced_in_local_time(
    connection: Connection, a_broker: Broker, site: Site
) -> None:
    """21:30 CEST on 24 October 2026 to 07:30 CET the next morning (clocks go back at 03:00), 5 kWh
    an hour, hourly meter values: A cuts the periods where the price changes, at 22:00 CEST (20:00
    UTC) and at 07:00 CET (06:00 UTC; with the summer offset it would be 05:00 UTC). Day energy
    21:30-22:00 and 07:00-07:30, night the rest: 0.50 + 5 x 0.31 + 50 x 0.23 = 13.55."""
    location_id, uid, tariff = site.location_id, site.uid, site.tariff
    session_id = f"S-{uuid.uuid4().hex[:10]}"
    began = datetime.fromisoformat("2026-10-24T19:30:00+00:00")
    await charge(a_broker, session_id, location_id, uid, began, 11, 5.0)
    cdr = await cdr_at_b(connection, session_id)
    assert cdr.total_cost == 13.55 and cdr.total_energy == 55.0 and cdr.total_time == 11.0
    starts = {p.start_date_time.strftime("%d %H:%M") for p in cdr.charging_periods}
    assert {"24 20:00", "25 06:00"} <= starts and "25 05:00" not in starts
    assert cdr.total_cost == float(
        price_session(
            tariff, cdr.start_date_time, cdr.stop_date_time, cdr.charging_periods, "Europe/Amsterdam"
        ).total_cost
    )


async def test_a_tariff_changed_mid_session_leaves_the_session_at_the_price_of_its_start(
    connection: Connection, a_broker: Broker, site: Site
) -> None:
    """The price shown at the start holds: the CDR carries the tariff of the start, and B, whose copy
    is newer than the session, checks it with that tariff and agrees."""
    location_id, uid, tariff = site.location_id, site.uid, site.tariff
    session_id = f"S-{uuid.uuid4().hex[:10]}"
    began = now() - timedelta(hours=3)
    await publish(a_broker, start_message(session_id, location_id, uid, began))

    async def started() -> bool:
        return await at_b(connection, "sessions", session_id) is not None

    await eventually(started, 15, "the session at B")
    dearer = msgspec.structs.replace(
        tariff, elements=tariff.elements[1:], last_updated=now() - timedelta(seconds=10)
    )
    await publish(a_broker, TariffUpsert(event_id=event_id(), tariff=dearer))

    async def changed_at_b() -> bool:
        copy = await at_b(connection, "tariffs", tariff.id)
        return copy is not None and len(copy["elements"]) == 2

    await eventually(changed_at_b, 15, "the changed tariff at B")
    stop = SessionStop(event_id=event_id(), session_id=session_id, at=began + timedelta(hours=1), kwh=10.0)
    await publish(a_broker, stop)
    cdr = await cdr_at_b(connection, session_id)
    assert cdr.tariffs is not None and len(cdr.tariffs[0].elements) == 3  # the start's, FLAT fee and all
    expected = price_session(
        tariff, cdr.start_date_time, cdr.stop_date_time, cdr.charging_periods, "Europe/Amsterdam"
    )
    assert cdr.total_cost == float(expected.total_cost)
    disputes = (await admin(connection.pair.emsp, "GET", "/admin/cdrs/disputes")).data
    assert session_id not in {d["cdr_id"] for d in disputes}
    # Later sessions get the new tariff.
    await publish(
        a_broker,
        TariffUpsert(event_id=event_id(), tariff=msgspec.structs.replace(tariff, last_updated=now())),
    )


async def test_a_cdr_whose_total_b_computes_otherwise_is_flagged_with_both_numbers(
    connection: Connection, a_broker: Broker, site: Site
) -> None:
    """A CDR posted to B (as A could) with a total 1.00 too high: stored once (posted twice), disputed
    with A's number and B's."""
    location_id, uid = site.location_id, site.uid
    session_id = f"S-{uuid.uuid4().hex[:10]}"
    began = now() - timedelta(hours=5)
    await charge(a_broker, session_id, location_id, uid, began, 2, 7.0)
    honest = await cdr_at_b(connection, session_id)
    wrong = msgspec.structs.replace(honest, id=f"X{session_id}"[:36], total_cost=honest.total_cost + 1.0)
    url = f"{connection.pair.emsp.public_url}/ocpi/emsp/2.1.1/cdrs"
    body = to_builtins(wrong)
    first = await request("POST", url, token=connection.cpo_to_emsp_token, json=body)
    again = await request("POST", url, token=connection.cpo_to_emsp_token, json=body)
    assert (first.status, first.status_code, again.status, again.status_code) == (201, 1000, 200, 1000)
    assert first.headers["Location"] == again.headers["Location"]
    assert first.headers["Location"].endswith(f"/ocpi/emsp/2.1.1/cdrs/NL/CPA/{wrong.id}")
    disputes = (await admin(connection.pair.emsp, "GET", "/admin/cdrs/disputes")).data
    [dispute] = [d for d in disputes if d["cdr_id"] == wrong.id]
    assert Decimal(dispute["theirs"]) == Decimal(repr(wrong.total_cost))
    assert Decimal(dispute["ours"]) == Decimal(repr(honest.total_cost))
    assert Decimal(dispute["difference"]) == Decimal("-1.00")
    assert honest.id not in {d["cdr_id"] for d in disputes}
