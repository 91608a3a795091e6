"""The gateway's copy of partners' sync states keeps the newest (security review L15).

PartnerSyncStateChanged events reach the gateway on one shared queue, handled concurrently (prefetch
64) and by any replica, so they may be applied out of order: an older state must never replace a
newer one in `partner list`. The event's `at` (when the dispatcher made the transition) decides.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from pymongo import AsyncMongoClient

from services.gateway.auth import TokenCache
from services.gateway.events import start_consumers
from services.gateway.partners import ConnectionStatus, Partner, PartnerRepository, new_partner
from services.gateway.state import Gateway
from shared.contracts.partners import PartnerSyncStateChanged, SyncState
from shared.messaging.broker import Broker
from shared.messaging.consumer import Consumer
from shared.sealing import Sealer
from shared.settings import Role, load_settings
from shared.storage import Document, connect_mongo, service_database
from tests.support.gateway_tokens import TEST_KEYS
from tests.support.waiting import eventually

SEALER = Sealer.from_setting(TEST_KEYS)
pytestmark = pytest.mark.integration

WAIT = 10.0
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def mongo(mongo_url: str, namespace: str) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = connect_mongo(mongo_url)
    yield client
    await client.drop_database(service_database(client, namespace, "gateway").name)
    await client.close()


@pytest.fixture
async def partners(mongo: AsyncMongoClient[Document], namespace: str) -> PartnerRepository:
    return PartnerRepository(service_database(mongo, namespace, "gateway"), SEALER)


@pytest.fixture
async def partner(partners: PartnerRepository) -> Partner:
    stored = new_partner("emsp", Role.EMSP, "DE", "EMP", status=ConnectionStatus.CONNECTED)
    await partners.add(stored)
    return stored


@pytest.fixture
async def consumers(
    broker: Broker, partners: PartnerRepository, amqp_url: str, mongo_url: str, namespace: str
) -> AsyncIterator[list[Consumer]]:
    """The gateway's event consumers, wired as the gateway wires them (RPC and partner calls unused)."""
    settings = load_settings(environ={}, namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url)
    gateway = Gateway(settings, broker, None, partners, TokenCache(), None, SEALER)  # type: ignore[arg-type]
    started = await start_consumers(gateway)
    yield started
    for consumer in started:
        await consumer.stop()


def event(partner: Partner, state: SyncState, seconds: int) -> PartnerSyncStateChanged:
    at = T0 + timedelta(seconds=seconds)
    detail = f"{state.value} at +{seconds}s"
    return PartnerSyncStateChanged(partner_id=partner.id, state=state, detail=detail, at=at)


async def stored(partners: PartnerRepository, partner: Partner) -> tuple[SyncState, str]:
    found = await partners.get(partner.id)
    assert found is not None
    return found.sync_state, found.sync_detail


async def test_an_older_state_arriving_after_a_newer_one_is_ignored(
    broker: Broker, partners: PartnerRepository, partner: Partner, consumers: list[Consumer]
) -> None:
    """OUT_OF_SYNC (+20 s) is applied; RETRYING (+10 s), which the dispatcher announced before it
    but which reaches the gateway after it, changes nothing; IN_SYNC (+30 s) is applied."""
    newer = event(partner, SyncState.OUT_OF_SYNC, 20)
    await broker.publish_event(newer)

    async def newer_stored() -> bool:
        return await stored(partners, partner) == (SyncState.OUT_OF_SYNC, newer.detail)

    await eventually(newer_stored, WAIT, "the newer state stored")
    with structlog.testing.capture_logs() as logs:
        await broker.publish_event(event(partner, SyncState.RETRYING, 10))

        def handled() -> bool:
            return any(line["event"].startswith("partner_sync_state") for line in logs)

        await eventually(handled, WAIT, "the older event handled")
    assert await stored(partners, partner) == (SyncState.OUT_OF_SYNC, newer.detail)
    latest = event(partner, SyncState.IN_SYNC, 30)
    await broker.publish_event(latest)

    async def latest_stored() -> bool:
        return await stored(partners, partner) == (SyncState.IN_SYNC, latest.detail)

    await eventually(latest_stored, WAIT, "the newest state stored")


async def test_states_applied_concurrently_in_any_order_end_at_the_newest(
    partners: PartnerRepository, partner: Partner
) -> None:
    """Forty transitions written at once in a shuffled order: the newest stands, whatever the order."""
    states = [SyncState.RETRYING, SyncState.OUT_OF_SYNC, SyncState.IN_SYNC]
    events = [event(partner, states[n % 3], n) for n in range(40)]
    shuffled = random.Random(7).sample(events, len(events))
    await asyncio.gather(*(partners.set_sync_state(e.partner_id, e.state, e.detail, e.at) for e in shuffled))
    newest = events[-1]
    assert await stored(partners, partner) == (newest.state, newest.detail)


async def test_the_same_event_twice_and_an_unknown_partner_change_nothing_else(
    partners: PartnerRepository, partner: Partner
) -> None:
    """A redelivered event is applied again harmlessly; one for a partner we do not know is a no-op."""
    first = event(partner, SyncState.RETRYING, 5)
    assert await partners.set_sync_state(partner.id, first.state, first.detail, first.at)
    assert await partners.set_sync_state(partner.id, first.state, first.detail, first.at)
    assert not await partners.set_sync_state("nobody", SyncState.IN_SYNC, "", first.at)
    older = event(partner, SyncState.IN_SYNC, 1)
    assert not await partners.set_sync_state(partner.id, older.state, older.detail, older.at)
    assert await stored(partners, partner) == (SyncState.RETRYING, first.detail)
