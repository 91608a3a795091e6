"""Sessions and CDRs through the dispatcher (real RabbitMQ and MongoDB, eMSP partners as real HTTP
servers): only the token owner's partner receives them; a session is PUT then PATCHed; a CDR is
POSTed once, its Location announced in CdrDelivered, across redeliveries, outages and a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.cdrs import CdrDelivered
from shared.messaging.broker import Broker
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.service import ServiceContext
from shared.storage import connect_mongo, service_database
from tests.integration.test_dispatcher import (
    Collector,
    dispatcher,
    make_settings,
    make_tuning,
    register,
    running_dispatcher,
    started,
    sync_states,
)
from tests.integration.test_dispatcher_partner_fake import FakePartner, Received
from tests.support.dispatcher_billing import EVERY_SESSION_FIELD, cdr, cdr_created, session, session_changed
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
__all__ = ["dispatcher"]  # the fixture, used by name


def emsp(name: str) -> FakePartner:
    """An eMSP partner with sessions and CDRs receivers (and locations, which every eMSP gets)."""
    partner = FakePartner(name)
    partner.modules = ("locations", "sessions", "cdrs")
    return partner


def session_calls(partner: FakePartner) -> list[Received]:
    return [r for r in partner.received if "/emsp/2.1.1/sessions/" in r.path]


def cdr_posts(partner: FakePartner, ok_only: bool = False) -> list[Received]:
    return [
        r
        for r in partner.received
        if r.path == "/ocpi/emsp/2.1.1/cdrs" and (not ok_only or r.answered == 200)
    ]


async def delivered_events(broker: Broker) -> Collector[CdrDelivered]:
    return await Collector.bind(broker, broker.exchanges.events, CdrDelivered, "cdrs.cdr.delivered")


async def settled(ctx: ServiceContext) -> bool:
    """No push pending (nor parked) in the dispatcher's database."""
    return await ctx.db["pushes"].count_documents({"due_at": {"$ne": None}}) == 0


async def test_a_session_goes_to_its_owners_partner_only_put_first_then_patched(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """emsp-1 serves the token: PUT of the new session, PATCHes of its running fields and its end.
    emsp-2, another eMSP with a sessions endpoint, gets nothing; nor does anybody for a session
    whose token no partner serves. A session emsp-1 never had is PUT whole even when only its meter
    changed (no PATCH it could not place)."""
    first, second = emsp("emsp-1"), emsp("emsp-2")
    async with started(first, second):
        await register(broker, dispatcher, first, "emsp-1", party=("DE", "EMP"))
        await register(broker, dispatcher, second, "emsp-2", party=("FR", "EMX"))
        await broker.publish_event(session_changed(session("S1"), 1, EVERY_SESSION_FIELD))
        await eventually(lambda: "S1" in first.sessions, 5, "the PUT of S1")
        running = session("S1", kwh=4.0, minutes=10)
        await broker.publish_event(session_changed(running, 2, ["kwh", "total_cost", "last_updated"]))
        await eventually(lambda: first.sessions["S1"]["kwh"] == 4.0, 5, "the PATCH of S1's meter")
        ended = session("S1", kwh=7.5, minutes=30, completed=True)
        await broker.publish_event(
            session_changed(ended, 3, ["kwh", "total_cost", "status", "end_datetime", "last_updated"])
        )
        await eventually(lambda: first.sessions["S1"]["status"] == "COMPLETED", 5, "the PATCH ending S1")
        assert first.sessions["S1"] == to_builtins(ended)
        # Nobody serves this token; S3 is new to emsp-1 although only its meter is named.
        await broker.publish_event(session_changed(session("S2"), 1, EVERY_SESSION_FIELD, partner_id=None))
        await broker.publish_event(session_changed(session("S3", kwh=1.0), 4, ["kwh", "last_updated"]))
        await eventually(lambda: "S3" in first.sessions, 5, "the PUT of S3")
        await eventually(lambda: settled(dispatcher), 5, "no push left pending")
    calls = [(r.method, r.path.split("/sessions/")[1], r.answered) for r in session_calls(first)]
    assert calls == [
        ("PUT", "NL/ABC/S1", 200),
        ("PATCH", "NL/ABC/S1", 200),
        ("PATCH", "NL/ABC/S1", 200),
        ("PUT", "NL/ABC/S3", 200),
    ]
    assert session_calls(first)[1].body == {
        "kwh": 4.0,
        "total_cost": 1.0,
        "last_updated": "2024-05-01T12:10:00Z",
    }
    assert session_calls(second) == []
    assert (
        await dispatcher.db["pushes"].count_documents({"module": "sessions", "partner_id": {"$ne": "emsp-1"}})
        == 0
    )


async def test_a_cdr_is_posted_once_and_its_location_announced_even_when_its_event_comes_again(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """POST {cdrs endpoint} with the CDR, to the owner's partner only; CdrDelivered carries the
    eMSP's Location. A redelivered CdrCreated finds the CDR delivered: nothing more is sent or
    announced."""
    announced = await delivered_events(broker)
    first, second = emsp("emsp-1"), emsp("emsp-2")
    async with started(first, second):
        await register(broker, dispatcher, first, "emsp-1", party=("DE", "EMP"))
        await register(broker, dispatcher, second, "emsp-2", party=("FR", "EMX"))
        await broker.publish_event(cdr_created("C1"))
        await eventually(lambda: len(announced.items) == 1, 5, "CdrDelivered of C1")
        (event,) = announced.items
        assert (event.cdr_id, event.partner_id, event.location) == ("C1", "emsp-1", first.cdr_url("C1"))
        assert first.cdrs == {"C1": to_builtins(cdr("C1"))}
        # The same event again (a redelivery, or the cdrs service announcing it once more), then C2:
        # both queue behind each other, so once C2 is announced and nothing is pending, C1's second
        # event has been handled.
        await broker.publish_event(cdr_created("C1"))
        await broker.publish_event(cdr_created("C2"))
        await eventually(lambda: len(announced.items) == 2, 5, "CdrDelivered of C2")
        await eventually(lambda: settled(dispatcher), 5, "no push left pending")
    assert [(r.method, r.body["id"], r.answered) for r in cdr_posts(first)] == [
        ("POST", "C1", 200),
        ("POST", "C2", 200),
    ]
    assert [e.cdr_id for e in announced.items] == ["C1", "C2"]
    assert cdr_posts(second) == []


async def test_a_cdr_for_a_partner_that_is_down_is_posted_until_it_arrives_once(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """The eMSP answers 503: the POST is retried, the partner goes OUT_OF_SYNC and the CDR is
    parked; once the eMSP answers again it is POSTed and taken exactly once, and announced once."""
    announced = await delivered_events(broker)
    states = await sync_states(broker)
    partner = emsp("emsp-1")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1", party=("DE", "EMP"))
        partner.down = True
        await broker.publish_event(cdr_created("C1"))
        await eventually(
            lambda: any(s.state.value == "OUT_OF_SYNC" for s in states.items), 20, "emsp-1 out of sync"
        )
        assert await dispatcher.db["pushes"].count_documents({"module": "cdrs", "parked": True}) == 1
        partner.down = False
        await eventually(lambda: len(announced.items) == 1, 20, "CdrDelivered after the outage")
        await eventually(lambda: settled(dispatcher), 5, "no push left pending")
    refused = [r for r in cdr_posts(partner) if r.answered == 503]
    assert len(refused) >= 2  # the attempts before parking
    assert len(cdr_posts(partner, ok_only=True)) == 1
    assert partner.cdrs == {"C1": to_builtins(cdr("C1"))}
    assert announced.items[0].location == partner.cdr_url("C1")


async def test_a_cdr_the_emsp_refuses_for_good_is_set_aside_alone_and_the_partner_stays_in_sync(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """The eMSP answers 400/2001 to C1 every time: after the attempts C1 is set aside with the
    reason, the partner is never OUT_OF_SYNC, and C2 still goes (before: every push of the partner
    was parked, and C1 went again after every recovery)."""
    announced = await delivered_events(broker)
    states = await sync_states(broker)
    partner = emsp("emsp-1")
    partner.refused_cdrs.add("C1")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1", party=("DE", "EMP"))
        await broker.publish_event(cdr_created("C1"))

        async def refused() -> bool:
            record = await dispatcher.db["pushes"].find_one({"module": "cdrs", "key": "C1"})
            return record is not None and "refused" in record

        await eventually(refused, 20, "C1 set aside")
        record = await dispatcher.db["pushes"].find_one({"module": "cdrs", "key": "C1"})
        assert record is not None and record["due_at"] is None and not record["parked"]
        assert "2001" in record["refused"]["detail"] and record["refused"]["version"] == 1
        await broker.publish_event(cdr_created("C2"))
        await eventually(lambda: len(announced.items) == 1, 10, "C2 delivered")
        await broker.publish_event(cdr_created("C1"))  # announced again: still refused, not sent
        await eventually(lambda: settled(dispatcher), 5, "no push left pending")
    attempts = [r for r in cdr_posts(partner) if r.body["id"] == "C1"]
    assert len(attempts) == make_settings("x", "x", "x").push_max_attempts
    assert [e.cdr_id for e in announced.items] == ["C2"]
    assert not any(s.state.value == "OUT_OF_SYNC" for s in states.items)


async def test_a_crash_between_the_emsps_answer_and_the_completion_posts_the_cdr_once_more(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """The one window where a CDR goes twice: the eMSP answered the POST but the completion was not
    written (the process died). The record is then as the claim left it: pending, delivered unset,
    leased by the dead replica. The next dispatcher POSTs it once more when the lease runs out (the
    eMSP deduplicates by CDR id) and announces it again; after that, nothing more.

    Simulated in-process: the first dispatcher delivers C1, then its completion is undone."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    announced = await delivered_events(broker)
    partner = emsp("emsp-1")
    async with started(partner):
        async with running_dispatcher(settings, make_tuning(settings)) as first:
            await register(broker, first, partner, "emsp-1", party=("DE", "EMP"))
            await broker.publish_event(cdr_created("C1"))
            await eventually(lambda: len(announced.items) == 1, 5, "the first CdrDelivered")
            await eventually(lambda: settled(first), 5, "the completion written")
        mongo = connect_mongo(mongo_url)
        try:
            pushes = service_database(mongo, namespace, "dispatcher")["pushes"]
            now = datetime.now(UTC)
            undone = await pushes.update_one(
                {"module": "cdrs", "key": "C1"},
                {
                    "$set": {
                        "due_at": now,
                        "lease_owner": "dead-replica",
                        "lease_until": now + timedelta(seconds=0.5),
                    },
                    "$unset": {"delivered": "", "pushed": ""},
                },
            )
            assert undone.modified_count == 1
        finally:
            await mongo.close()
        async with running_dispatcher(settings, make_tuning(settings)) as second:
            await eventually(lambda: len(announced.items) == 2, 10, "the second CdrDelivered")
            await eventually(lambda: settled(second), 5, "the completion written")
            # Delivered now: its event again sends nothing.
            await broker.publish_event(cdr_created("C1"))
            await broker.publish_event(cdr_created("C2"))
            await eventually(lambda: len(announced.items) == 3, 5, "CdrDelivered of C2")
            await eventually(lambda: settled(second), 5, "no push left pending")
            record = await second.db["pushes"].find_one({"module": "cdrs", "key": "C1"})
            assert record is not None and record["delivered"] == 1
    assert [r.body["id"] for r in cdr_posts(partner, ok_only=True)] == ["C1", "C1", "C2"]
    assert list(partner.cdrs) == ["C1", "C2"]
    assert [(e.cdr_id, e.location) for e in announced.items] == [
        ("C1", partner.cdr_url("C1")),
        ("C1", partner.cdr_url("C1")),
        ("C2", partner.cdr_url("C2")),
    ]
