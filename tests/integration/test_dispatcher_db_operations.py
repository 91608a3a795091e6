"""How many MongoDB operations the dispatcher spends, counted with pymongo's command monitoring on
its own client (real RabbitMQ and MongoDB, fake partners over HTTP).

Targets (issue "A new OCPI module is a table entry"): per EVSE status change at most 3 operations
with one eMSP partner (consume, claim, completion) and at most one more per further partner; idle,
at most 2 per second for the whole deployment. Counts are deterministic: loops that run on their
own (polls, probe ticks, the partner refresh) are slowed down in the per-change tests so that only
the change's own work falls in the window; the idle test runs them at their defaults.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.dispatcher.app import build
from services.dispatcher.tuning import Tuning
from shared.messaging.broker import Broker
from shared.service import ServiceContext
from shared.settings import Role, Settings
from shared.storage import Document, connect_mongo, service_database
from tests.integration.test_dispatcher import LocationModel, make_settings, registration, started
from tests.integration.test_dispatcher_partner_fake import TOKEN, FakePartner
from tests.support.gateway_tokens import gateway_tokens
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# Connection housekeeping, not work: pymongo's handshakes and heartbeats.
NOT_WORK = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "saslStart"})
CHANGES = 10


class Operations(monitoring.CommandListener):
    """Counts the commands sent to one database, by name."""

    def __init__(self) -> None:
        self.database = ""
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database and event.command_name not in NOT_WORK:
            self.counts[f"{event.command_name} {event.command.get(event.command_name)}"] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@asynccontextmanager
async def counted_dispatcher(settings: Settings, tuning: Tuning, ops: Operations) -> AsyncIterator[None]:
    """One dispatcher whose MongoDB client reports every command to `ops`."""
    ctx = ServiceContext("dispatcher", settings)
    await ctx.mongo.close()
    ctx.mongo = AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True, event_listeners=[ops]
    )
    ctx.db = service_database(ctx.mongo, settings.namespace, "dispatcher")
    ops.database = ctx.db.name
    await ctx.broker.connect()
    # The gateway's answer to the dispatcher's token requests (it asks on every registration).
    components = [gateway_tokens(ctx.broker, default=TOKEN), *await build(ctx, tuning)]
    for component in components:
        await component.start()
    try:
        yield
    finally:
        for component in reversed(components):
            await component.stop()
        await ctx.broker.close()
        await ctx.mongo.close()


@pytest.fixture
async def observer(mongo_url: str, namespace: str) -> AsyncIterator[AsyncMongoClient[Document]]:
    """The test's own client (not counted), to see when the dispatcher is done."""
    client = connect_mongo(mongo_url)
    yield client
    await client.close()


async def settled(client: AsyncMongoClient[Document], namespace: str) -> bool:
    """No push pending and no lease held: every completion is written."""
    pushes = service_database(client, namespace, "dispatcher")["pushes"]
    busy = {"$or": [{"due_at": {"$ne": None}}, {"lease_owner": {"$ne": None}}]}
    return await pushes.count_documents(busy) == 0


async def measure_changes(
    broker: Broker,
    namespace: str,
    amqp_url: str,
    mongo_url: str,
    observer: AsyncMongoClient[Document],
    emsps: int,
) -> Counter[str]:
    """Operations for CHANGES status changes, one at a time, each delivered to `emsps` partners."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    quiet = 3600.0  # the loops that run on their own stay out of the window
    # The group commit waits for every push of a change; 1 s keeps a loaded machine deterministic.
    tuning = Tuning.from_settings(
        settings, poll=quiet, probe_tick=quiet, reconcile_every=quiet, partner_ttl=quiet, complete_window=1.0
    )
    ops = Operations()
    partners = [FakePartner(f"emsp{n}") for n in range(emsps)]
    model = LocationModel("LOC1", ["E1", "E2"])
    async with started(*partners), counted_dispatcher(settings, tuning, ops):
        for n, partner in enumerate(partners):
            await broker.publish_event(registration(partner, f"emsp-{n}", partner_role(), ("DE", f"X{n}")))
        db = service_database(observer, namespace, "dispatcher")

        async def registered() -> bool:
            return await db["partners"].count_documents({}) == emsps

        await eventually(registered, 5, "the registrations")
        await broker.publish_event(model.created())
        await eventually(lambda: all("LOC1" in p.store for p in partners), 5, "the first PUTs")
        await eventually(lambda: settled(observer, namespace), 5, "the first completions")
        before = ops.counts.copy()
        for i in range(CHANGES):
            await broker.publish_event(model.status("E1"))
            # The first PUT, then one PATCH per change.
            await eventually(lambda n=i + 2: all(len(p.pushes()) == n for p in partners), 5, f"PATCH {i}")
            await eventually(lambda: settled(observer, namespace), 5, f"completion {i}")
        counts = ops.counts - before
    assert all(r.method == "PATCH" for p in partners for r in p.pushes()[1:])
    return counts


def partner_role() -> Role:
    return Role.EMSP


async def test_a_status_change_to_one_partner_costs_at_most_three_operations(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str, observer: AsyncMongoClient[Document]
) -> None:
    """One eMSP: consume (one bulk write), claim (findAndModify), completion (one update)."""
    counts = await measure_changes(broker, namespace, amqp_url, mongo_url, observer, emsps=1)
    print(f"1 partner, {CHANGES} changes: {dict(counts)}")
    assert sum(counts.values()) <= 3 * CHANGES, counts


async def test_a_further_partner_costs_at_most_one_more_operation(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str, observer: AsyncMongoClient[Document]
) -> None:
    """Two eMSPs: the consume stays one bulk write, one claim each, the completions go out together."""
    counts = await measure_changes(broker, namespace, amqp_url, mongo_url, observer, emsps=2)
    print(f"2 partners, {CHANGES} changes: {dict(counts)}")
    assert sum(counts.values()) <= 4 * CHANGES, counts


IDLE_SECONDS = 10.0


async def test_an_idle_dispatcher_costs_at_most_two_operations_a_second(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str, observer: AsyncMongoClient[Document]
) -> None:
    """With one eMSP registered and nothing happening, at the default tuning."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    ops = Operations()
    partner = FakePartner("emsp")
    async with started(partner), counted_dispatcher(settings, Tuning.from_settings(settings), ops):
        await broker.publish_event(registration(partner, "emsp-0", Role.EMSP, ("DE", "XYZ")))
        db = service_database(observer, namespace, "dispatcher")

        async def registered() -> bool:
            return await db["partners"].count_documents({}) == 1

        await eventually(registered, 5, "the registration")
        await asyncio.sleep(1.0)  # start-up work (indexes, first polls) out of the window
        before = ops.counts.copy()
        await asyncio.sleep(IDLE_SECONDS)
        counts = ops.counts - before
    print(f"idle {IDLE_SECONDS:.0f} s: {dict(counts)} = {sum(counts.values()) / IDLE_SECONDS:.2f}/s")
    assert sum(counts.values()) <= 2 * IDLE_SECONDS, counts


async def test_an_idle_cpo_partner_costs_its_probe(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str, observer: AsyncMongoClient[Document]
) -> None:
    """A CPO partner is probed every `cpo_probe` (5 s) to notice its outages; with it registered the
    idle dispatcher still stays within the deployment's 2 operations a second."""
    settings = make_settings(namespace, amqp_url, mongo_url)
    ops = Operations()
    partner = FakePartner("cpo")
    async with started(partner), counted_dispatcher(settings, Tuning.from_settings(settings), ops):
        await broker.publish_event(registration(partner, "cpo-0", Role.CPO, ("BE", "CPO")))
        db = service_database(observer, namespace, "dispatcher")

        async def pulled() -> bool:
            return await db["pulls"].count_documents({"last_sync_started": {"$ne": None}}) == 1

        await eventually(pulled, 10, "the first pull")
        await asyncio.sleep(1.0)
        before = ops.counts.copy()
        await asyncio.sleep(IDLE_SECONDS)
        counts = ops.counts - before
    print(f"idle {IDLE_SECONDS:.0f} s, one CPO: {dict(counts)} = {sum(counts.values()) / IDLE_SECONDS:.2f}/s")
    assert sum(counts.values()) <= 2 * IDLE_SECONDS, counts
