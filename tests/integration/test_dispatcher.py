"""The dispatcher end to end: real RabbitMQ, a MongoDB-wire server, partners as real HTTP servers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import aio_pika
import msgspec
import pytest
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from aiohttp import web

from services.dispatcher.app import build
from services.dispatcher.tuning import Tuning
from shared.contracts.locations import ChangeScope, LocationChange, LocationChanged, PartnerLocationImport
from shared.contracts.partners import (
    PartnerRegistered,
    PartnerSyncStateChanged,
    PartnerUnregistered,
    Party,
    PullRequested,
    SyncState,
)
from shared.messaging.broker import Broker
from shared.messaging.headers import ERROR
from shared.messaging.topology import declare_broadcast_queue
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
from shared.service import ServiceContext
from shared.settings import Role, Settings, load_settings
from tests.integration.test_dispatcher_partner_fake import TOKEN, FakePartner, Received, envelope
from tests.support.gateway_tokens import TEST_KEYS, gateway_tokens
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

T = TypeVar("T")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STATUSES = [Status.CHARGING, Status.AVAILABLE, Status.BLOCKED, Status.OUTOFORDER]


# ---- the platform side -----------------------------------------------------------------------


def make_settings(namespace: str, amqp_url: str, mongo_url: str) -> Settings:
    """Fast retries so outages play out within a test's time."""
    return load_settings(
        environ={},
        namespace=namespace,
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        country_code="NL",
        party_id="ABC",
        push_timeout=1.0,
        push_backoff_base=0.05,
        push_backoff_max=0.4,
        push_max_attempts=4,
        partner_token_keys=TEST_KEYS,
    )


def make_tuning(settings: Settings, **overrides: float | int) -> Tuning:
    """Probe and poll often, so recoveries show within a second or two."""
    knobs: dict[str, float | int] = {
        "probe_min": 0.2,
        "probe_max": 1.0,
        "cpo_probe": 0.3,
        "poll": 0.2,
        "probe_tick": 0.1,
        **overrides,
    }
    return Tuning.from_settings(settings, **knobs)


@asynccontextmanager
async def running_dispatcher(settings: Settings, tuning: Tuning) -> AsyncIterator[ServiceContext]:
    """One dispatcher instance in this process, stopped (in-flight work finished) on exit; with the
    gateway's answer to its token requests (every partner's token is TOKEN)."""
    ctx = ServiceContext("dispatcher", settings)
    await ctx.broker.connect()
    components = [gateway_tokens(ctx.broker, default=TOKEN), *await build(ctx, tuning)]
    for component in components:
        await component.start()
    try:
        yield ctx
    finally:
        for component in reversed(components):
            await component.stop()
        await ctx.broker.close()
        await ctx.mongo.close()


@pytest.fixture
async def dispatcher(namespace: str, amqp_url: str, mongo_url: str) -> AsyncIterator[ServiceContext]:
    """A running dispatcher in the test's namespace."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    async with running_dispatcher(settings, make_tuning(settings)) as ctx:
        yield ctx


@asynccontextmanager
async def started(*partners: FakePartner) -> AsyncIterator[None]:
    """Partners listening for the duration of the block."""
    async with AsyncExitStack() as stack:
        for partner in partners:
            await partner.start()
            stack.push_async_callback(partner.stop)
        yield


class Collector(Generic[T]):
    """Every message of one routing key, decoded, in arrival order."""

    def __init__(self, type_: type[T]) -> None:
        self.items: list[T] = []
        self.message_ids: list[str | None] = []
        self._decoder = msgspec.json.Decoder(type_)

    @classmethod
    async def bind(cls, broker: Broker, exchange: AbstractExchange, type_: type[T], key: str) -> Collector[T]:
        """A private queue on `exchange` for `key`."""
        collector = cls(type_)
        channel = await broker.connection.channel()
        queue = await declare_broadcast_queue(channel, [(exchange, key)])
        await queue.consume(collector._on_message)
        return collector

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.items.append(self._decoder.decode(message.body))
        self.message_ids.append(message.message_id)
        await message.ack()


async def sync_states(broker: Broker) -> Collector[PartnerSyncStateChanged]:
    """What the dispatcher announces about partners."""
    return await Collector.bind(
        broker, broker.exchanges.events, PartnerSyncStateChanged, "dispatcher.partner.sync_state_changed"
    )


def registration(
    partner: FakePartner, partner_id: str, role: Role, party: tuple[str, str]
) -> PartnerRegistered:
    """What the gateway publishes after the credentials handshake with `partner`."""
    return PartnerRegistered(
        partner_id=partner_id,
        name=partner.name,
        role=role,
        parties=[Party(*party)],
        versions_url=partner.versions_url,
        version="2.1.1",
        endpoints=partner.endpoints(role.value),
        registered_at=datetime.now(UTC),
    )


async def register(
    broker: Broker,
    ctx: ServiceContext,
    partner: FakePartner,
    partner_id: str,
    role: Role = Role.EMSP,
    party: tuple[str, str] = ("DE", "XYZ"),
) -> None:
    """Publish the registration and wait until the dispatcher's projection has it."""
    await broker.publish_event(registration(partner, partner_id, role, party))

    async def known() -> bool:
        return await ctx.db["partners"].find_one({"_id": partner_id}) is not None

    await eventually(known, 5, f"{partner_id} in the projection")


# ---- our locations, version by version -------------------------------------------------------


def connector(at: datetime) -> Connector:
    """A Type 2 socket."""
    return Connector(
        id="1",
        standard=ConnectorType.IEC_62196_T2,
        format=ConnectorFormat.SOCKET,
        power_type=PowerType.AC_3_PHASE,
        voltage=230,
        amperage=16,
        last_updated=at,
    )


class LocationModel:
    """One of our locations as the locations service would publish it: every change bumps version and time."""

    def __init__(self, location_id: str, evse_uids: list[str]) -> None:
        self.version = 1
        self.location = Location(
            id=location_id, type=LocationType.ON_STREET, name="Start", address="Main 1", city="Gent",
            postal_code="9000", country="BEL",
            coordinates=GeoLocation(latitude="51.047599", longitude="3.729944"),
            evses=[EVSE(uid=u, status=Status.AVAILABLE, connectors=[connector(T0)], last_updated=T0)
                   for u in evse_uids],
            last_updated=T0,
        )  # fmt: skip

    def _next(self, change: LocationChange, **location_fields: Any) -> LocationChanged:
        self.version += 1
        at = T0 + timedelta(seconds=self.version)
        evses = []
        for evse in self.location.evses or []:
            if evse.uid == change.evse_uid:
                fields: dict[str, Any] = {"last_updated": at}
                if change.scope is ChangeScope.EVSE_STATUS:
                    fields["status"] = random.choice([s for s in STATUSES if s != evse.status])
                elif change.scope is ChangeScope.EVSE:
                    fields["physical_reference"] = f"P{self.version}"
                else:
                    fields["connectors"] = [connector(at)]
                evse = msgspec.structs.replace(evse, **fields)
            evses.append(evse)
        self.location = msgspec.structs.replace(
            self.location, evses=evses, last_updated=at, **location_fields
        )
        return self.changed(change)

    def changed(self, change: LocationChange) -> LocationChanged:
        """The event for the current state."""
        return LocationChanged(location=self.location, version=self.version, changes=[change])

    def created(self) -> LocationChanged:
        """The location's first event: a LOCATION-level change."""
        return self.changed(LocationChange(scope=ChangeScope.LOCATION))

    def status(self, evse_uid: str) -> LocationChanged:
        """A charger reported a new status."""
        return self._next(LocationChange(scope=ChangeScope.EVSE_STATUS, evse_uid=evse_uid))

    def random_change(self) -> LocationChanged:
        """Mostly status changes, some EVSE, connector and location-level ones."""
        uid = random.choice([e.uid for e in self.location.evses or []])
        scope = random.choices(list(ChangeScope), weights=[1, 2, 6, 1])[0]
        if scope is ChangeScope.LOCATION:
            return self._next(LocationChange(scope=scope), name=f"Renamed {self.version}")
        connector_id = "1" if scope is ChangeScope.CONNECTOR else None
        return self._next(LocationChange(scope=scope, evse_uid=uid, connector_id=connector_id))

    @property
    def wire(self) -> dict[str, Any]:
        """The current state as JSON builtins, to compare with what the partner holds."""
        result: dict[str, Any] = to_builtins(self.location)
        return result


def timelines(received: list[Received]) -> dict[tuple[str, str | None], list[str]]:
    """`last_updated` of every location and EVSE state a partner received, in arrival order."""
    lines: dict[tuple[str, str | None], list[str]] = {}
    for request in received:
        segments = request.segments
        if len(segments) == 3:
            lines.setdefault((segments[2], None), []).append(request.body["last_updated"])
            for evse in request.body.get("evses", []):
                lines.setdefault((segments[2], evse["uid"]), []).append(evse["last_updated"])
        elif len(segments) == 4:
            lines.setdefault((segments[2], segments[3]), []).append(request.body["last_updated"])
    return lines


def assert_never_older_after_newer(received: list[Received]) -> None:
    """Per location and per EVSE, no state arrived after a newer one."""
    for key, line in timelines(received).items():
        assert line == sorted(line), f"{key} went back in time: {line}"


# ---- tests ---------------------------------------------------------------------------------------


async def test_evse_status_change_reaches_the_partner_as_a_patch_within_a_second(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """A status change of one EVSE goes out as one PATCH of status and last_updated within a second."""
    partner = FakePartner("emsp")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        model = LocationModel("LOC1", ["E1", "E2"])
        await broker.publish_event(model.created())
        await eventually(lambda: "LOC1" in partner.store, 5, "the first PUT")
        event = model.status("E2")
        published = time.monotonic()
        await broker.publish_event(event)
        await eventually(lambda: len(partner.pushes()) == 2, 5, "the PATCH")
        patch = partner.pushes()[1]
        assert patch.at - published < 1.0
        assert (patch.method, patch.segments) == ("PATCH", ["NL", "ABC", "LOC1", "E2"])
        evse = event.location.evses[1]  # type: ignore[index]
        assert patch.body == {"status": evse.status.value, "last_updated": "2024-05-01T12:00:02Z"}
        assert patch.headers["Authorization"] == f"Token {TOKEN}"
        assert patch.headers["Content-Type"].startswith("application/json")
        assert patch.headers["X-Request-ID"]
        assert partner.store["LOC1"] == model.wire


@pytest.mark.parametrize("refusal", ["404", "2003"])
async def test_patch_of_an_unknown_location_falls_back_to_a_location_put(
    broker: Broker, dispatcher: ServiceContext, refusal: str
) -> None:
    """A PATCH refused as unknown (HTTP 404 or status 2003) is followed by a PUT of the whole location."""
    partner = FakePartner("emsp")
    partner.unknown_answer = refusal
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        model = LocationModel("LOC7", ["E1"])
        model.status("E1")
        await broker.publish_event(model.status("E1"))
        await eventually(lambda: "LOC7" in partner.store, 5, "the fallback PUT")
        calls = [(r.method, r.segments[2:]) for r in partner.pushes(ok_only=False)]
        assert calls == [("PATCH", ["LOC7", "E1"]), ("PUT", ["LOC7"])]
        assert partner.store["LOC7"] == model.wire


async def test_outage_coalesces_marks_out_of_sync_and_recovers_in_order(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """During an outage updates coalesce; the partner goes OUT_OF_SYNC and gets only the newest state back."""
    states = await sync_states(broker)
    partner = FakePartner("emsp")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        model = LocationModel("LOC1", ["E1", "E2", "E3"])
        await broker.publish_event(model.created())
        await eventually(lambda: "LOC1" in partner.store, 5, "the first PUT")
        partner.down = True
        updates = 0
        for i in range(30):
            await broker.publish_event(model.status(f"E{i % 3 + 1}"))
            updates += 1
        await eventually(lambda: SyncState.OUT_OF_SYNC in [s.state for s in states.items], 10, "OUT_OF_SYNC")
        for i in range(30):  # the partner is still down: these are parked with the rest
            await broker.publish_event(model.status(f"E{i % 2 + 1}"))
            updates += 1
        await asyncio.sleep(0.5)
        during_outage = len(partner.pushes(ok_only=False))
        partner.down = False
        await eventually(lambda: states.items[-1].state is SyncState.IN_SYNC, 10, "IN_SYNC")
        await eventually(lambda: partner.store["LOC1"] == model.wire, 10, "the newest state")
        expected = [SyncState.RETRYING, SyncState.OUT_OF_SYNC, SyncState.IN_SYNC]
        assert [s.state for s in states.items] == expected
        assert {s.partner_id for s in states.items} == {"emsp-1"}
        pushes = partner.pushes(ok_only=False)
        failed = [p for p in pushes if p.answered != 200]
        after = pushes[during_outage:]
        assert len(failed) == during_outage - 1 <= 4 + 1  # max attempts, then parked (one more in flight)
        assert len(after) <= 3  # one PATCH per EVSE carries the newest state of 60 updates
        assert_never_older_after_newer(pushes)


async def test_a_retrying_partner_that_answers_again_is_in_sync(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """A partner that fails once and then accepts the retry goes RETRYING and back to IN_SYNC."""
    states = await sync_states(broker)
    partner = FakePartner("emsp")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        partner.down = True
        model = LocationModel("LOC1", ["E1"])
        await broker.publish_event(model.created())
        await eventually(lambda: bool(states.items), 5, "RETRYING")
        partner.down = False
        await eventually(lambda: len(states.items) == 2, 5, "IN_SYNC")
        assert [s.state for s in states.items] == [SyncState.RETRYING, SyncState.IN_SYNC]
        assert partner.store["LOC1"] == model.wire


async def test_a_partner_answering_429_is_retried_without_spending_attempts(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """HTTP 429 is the partner asking us to slow down: more 429s than the attempts allowed (5 here)
    neither park the push nor change the partner's sync state; it goes out once they stop."""
    states = await sync_states(broker)
    partner = FakePartner("emsp")
    throttled = 0

    async def too_many(_: web.Request) -> web.StreamResponse:
        nonlocal throttled
        throttled += 1
        if throttled >= 6:
            partner.answer = None  # from the next call on, the partner takes pushes again
        return envelope(None, 2000, http=429)

    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        partner.answer = too_many
        model = LocationModel("LOC1", ["E1"])
        await broker.publish_event(model.created())
        await eventually(lambda: partner.store.get("LOC1") == model.wire, 30, "the push after the 429s")
    assert throttled == 6
    assert states.items == []


async def test_two_dispatchers_never_deliver_out_of_order(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """Two replicas share queue and pushes; per location and EVSE the partner never goes back in time."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    partner = FakePartner("emsp")
    partner.delay = 0.03
    models = [LocationModel(f"LOC{n}", ["E1", "E2", "E3"]) for n in range(4)]
    async with (
        started(partner),
        running_dispatcher(settings, make_tuning(settings)) as first,
        running_dispatcher(settings, make_tuning(settings)),
    ):
        await register(broker, first, partner, "emsp-1")
        for model in models:
            await broker.publish_event(model.created())
        for _ in range(120):
            await broker.publish_event(random.choice(models).random_change())
        await eventually(
            lambda: all(partner.store.get(m.location.id) == m.wire for m in models), 25, "every newest state"
        )
    assert_never_older_after_newer(partner.pushes(ok_only=False))
    assert len(partner.pushes()) < 124


async def test_an_unregistered_partner_gets_nothing(broker: Broker, dispatcher: ServiceContext) -> None:
    """After PartnerUnregistered nothing reaches the partner, not even pushes that were waiting for it."""
    stays, leaves = FakePartner("stays"), FakePartner("leaves")
    async with started(stays, leaves):
        await register(broker, dispatcher, stays, "emsp-stays")
        await register(broker, dispatcher, leaves, "emsp-leaves", party=("FR", "LEA"))
        leaves.down = True
        model = LocationModel("LOC1", ["E1"])
        await broker.publish_event(model.created())
        await eventually(lambda: bool(leaves.pushes(ok_only=False)), 5, "a failing push to the leaver")
        await broker.publish_event(PartnerUnregistered(partner_id="emsp-leaves"))

        async def forgotten() -> bool:
            return await dispatcher.db["pushes"].count_documents({"partner_id": "emsp-leaves"}) == 0

        await eventually(forgotten, 5, "the leaver's pending pushes to go")
        await asyncio.sleep(1.2)  # longer than any push that was already on the wire
        leaves.received.clear()
        leaves.down = False
        await broker.publish_event(model.status("E1"))
        await eventually(lambda: stays.store.get("LOC1") == model.wire, 5, "the newest state at the stayer")
        await asyncio.sleep(0.5)
        assert leaves.pushes(ok_only=False) == []
        # Only a tombstone is left, so a late registration event cannot bring the partner back.
        left = await dispatcher.db["partners"].find_one({"_id": "emsp-leaves"})
        assert left is not None and left.get("tombstone") is True and "token" not in left


def location_json(location_id: str, minute: int) -> dict[str, Any]:
    """A CPO partner's location as its API serves it."""
    model = LocationModel(location_id, ["E1"])
    data: dict[str, Any] = to_builtins(model.location)
    data["last_updated"] = f"2024-05-01T12:{minute:02d}:00Z"
    return data


async def test_pull_follows_links_and_imports_the_good_locations(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """A CPO partner is pulled page by page; bad objects are skipped, good ones imported with its party."""
    imports = await Collector.bind(
        broker, broker.exchanges.internal, PartnerLocationImport, "locations.partner_location.import"
    )
    partner = FakePartner("cpo")
    bad = location_json("BAD", 3)
    del bad["address"]
    partner.cpo_locations = [
        location_json("P1", 1),
        location_json("P2", 2),
        bad,
        location_json("P3", 4),
        location_json("P4", 5),
    ]
    settings = make_settings(namespace, amqp_url, mongo_url)
    tuning = make_tuning(settings, pull_page_limit=2)
    async with started(partner), running_dispatcher(settings, tuning) as ctx:
        await register(broker, ctx, partner, "cpo-1", role=Role.CPO, party=("BE", "CPO"))
        await eventually(lambda: len(imports.items) == 4, 10, "four imports")
        assert [i.location.id for i in imports.items] == ["P1", "P2", "P3", "P4"]
        assert {(i.country_code, i.party_id) for i in imports.items} == {("BE", "CPO")}
        assert imports.message_ids[0] == "cpo-1:P1:2024-05-01T12:01:00Z"
        pages = [r for r in partner.received if r.path.endswith("/cpo/2.1.1/locations")]
        pages_asked = [(p.query.get("offset"), p.query["limit"]) for p in pages]
        assert pages_asked == [(None, "2"), ("2", "2"), ("4", "2")]
        assert all("date_from" not in p.query for p in pages)
        assert pages[0].headers["Authorization"] == f"Token {TOKEN}"

        async def synced() -> bool:
            doc = await ctx.db["pulls"].find_one({"_id": {"partner_id": "cpo-1", "module": "locations"}})
            return doc is not None and doc.get("due_at") is None and "last_sync_started" in doc

        await eventually(synced, 5, "the sync time")
        partner.received.clear()
        await broker.publish_event(PullRequested(partner_id="cpo-1"))
        await eventually(lambda: len(imports.items) == 8, 10, "the delta pull")
        assert "date_from" in partner.received[0].query
        partner.received.clear()
        await broker.publish_event(PullRequested(partner_id="cpo-1", full=True))
        await eventually(lambda: len(imports.items) == 12, 10, "the full pull")
        assert "date_from" not in partner.received[0].query


async def test_a_cpo_partner_coming_back_after_an_outage_is_pulled(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """The probe sees a CPO partner go down and come back, and pulls what changed meanwhile."""
    imports = await Collector.bind(
        broker, broker.exchanges.internal, PartnerLocationImport, "locations.partner_location.import"
    )
    partner = FakePartner("cpo")
    partner.cpo_locations = [location_json("P1", 1)]
    await partner.start()
    try:
        await register(broker, dispatcher, partner, "cpo-1", role=Role.CPO, party=("BE", "CPO"))
        await eventually(lambda: len(imports.items) == 1, 10, "the first pull")
        await partner.stop()

        async def unreachable() -> bool:
            doc = await dispatcher.db["partners"].find_one({"_id": "cpo-1"})
            return doc is not None and doc["reachable"] is False

        await eventually(unreachable, 5, "the probe to notice the outage")
        partner.cpo_locations.append(location_json("P2", 2))
        await partner.start()
        await eventually(lambda: len(imports.items) == 3, 10, "the pull after the outage")
        assert {i.location.id for i in imports.items[1:]} == {"P1", "P2"}
        pulls = [r for r in partner.received if r.path.endswith("/cpo/2.1.1/locations")]
        assert "date_from" in pulls[-1].query
    finally:
        await partner.stop()


async def test_an_undecodable_event_is_dead_lettered(broker: Broker, dispatcher: ServiceContext) -> None:
    """An event the dispatcher cannot read goes to the dead-letter queue with the reason."""
    body = b'{"type": "locations.location.changed", "version": "not a number"}'
    await broker.publish(broker.exchanges.events, "locations.location.changed", body)
    channel = await broker.connection.channel()
    queue = await channel.get_queue(broker.topology.dead_letter_queue)
    deadline = time.monotonic() + 5
    message: aio_pika.abc.AbstractIncomingMessage | None = None
    while message is None and time.monotonic() < deadline:
        message = await queue.get(fail=False)
        await asyncio.sleep(0.05)
    assert message is not None
    assert "not a dispatcher event" in str((message.headers or {})[ERROR])
    await message.ack()


async def test_status_changes_at_a_large_site_stay_patches_under_load(
    broker: Broker, dispatcher: ServiceContext
) -> None:
    """A burst of status changes of 5 EVSEs of a 40-EVSE location coalesces into PATCHes of those
    EVSEs (sent concurrently), never a PUT of the whole location."""
    partner = FakePartner("emsp")
    async with started(partner):
        await register(broker, dispatcher, partner, "emsp-1")
        model = LocationModel("BIG", [f"E{n:02d}" for n in range(40)])
        await broker.publish_event(model.created())
        await eventually(lambda: "BIG" in partner.store, 5, "the first PUT")
        partner.delay = 0.05  # pushes take a while: changes pile up behind them and coalesce
        for _ in range(4):
            for n in range(5):
                await broker.publish_event(model.status(f"E{n:02d}"))
        await eventually(lambda: partner.store["BIG"] == model.wire, 10, "the newest state")
    later = partner.pushes(ok_only=False)[1:]
    assert later and all(r.method == "PATCH" and len(r.segments) == 4 for r in later)
    assert len(later) < 20  # coalesced
    assert_never_older_after_newer(partner.pushes(ok_only=False))


async def test_a_change_during_its_objects_push_goes_out_without_waiting_for_a_poll(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """A change that arrives while the same location is being pushed finds it leased; it goes out
    right after that push is written (no poll: polls and second looks are an hour apart here)."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    tuning = make_tuning(settings, poll=3600.0, missed_retry=3600.0, probe_tick=3600.0)
    partner = FakePartner("emsp")
    async with started(partner), running_dispatcher(settings, tuning) as ctx:
        await register(broker, ctx, partner, "emsp-1")
        model = LocationModel("LOC1", ["E1", "E2"])
        await broker.publish_event(model.created())
        await eventually(lambda: "LOC1" in partner.store, 5, "the first PUT")
        partner.pause = 0.5
        await broker.publish_event(model.status("E1"))
        await asyncio.sleep(0.25)  # the PATCH is at the partner, its push holds the lease
        await broker.publish_event(model.status("E2"))
        await eventually(lambda: partner.store["LOC1"] == model.wire, 5, "the change made during the push")
    methods = [r.method for r in partner.pushes()]
    assert methods[0] == "PUT" and set(methods[1:]) == {"PATCH"}
