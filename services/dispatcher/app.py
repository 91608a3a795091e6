"""Composition root: wire stores, HTTP client, loops and the events consumer into components."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

import aiohttp
import structlog
from aio_pika.abc import AbstractChannel

from services.dispatcher.authorize import PartnerAuthorizer
from services.dispatcher.handlers import Deps, handle_batch
from services.dispatcher.health import PartnerHealth
from services.dispatcher.migrate import migrate_legacy
from services.dispatcher.ocpi_client import OcpiClient
from services.dispatcher.partner_tokens import PartnerTokens
from services.dispatcher.partners import PartnerCache, PartnerProjection
from services.dispatcher.probe import PartnerProbe
from services.dispatcher.pull import PullRunner
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.push_worker import PushWorker
from services.dispatcher.pushes import PushQueue
from services.dispatcher.tuning import Tuning
from shared.contracts.tokens import PartnerAuthorize
from shared.messaging.batch import BatchConsumer, BatchHandler
from shared.messaging.broker import Broker
from shared.messaging.consumer import Delivery
from shared.messaging.queues import DISPATCHER_EVENTS, DISPATCHER_TOKEN_EVENTS, WorkQueue, declare
from shared.messaging.rpc import RpcClient, RpcClientReadiness
from shared.outbound_http import outbound_session
from shared.rpc_service import rpc_server
from shared.sealing import sealer_for
from shared.service import Component, ServiceContext

log = structlog.get_logger(__name__)
SERVICE = "dispatcher"
# Real-time authorizations handled at a time per replica: each may wait for a slow eMSP until its
# caller's deadline, and the others must not queue behind it.
AUTHORIZE_CONCURRENCY = 64


class EventsConsumer:
    """One of the dispatcher's durable work queues on the events exchange, shared by its replicas."""

    def __init__(
        self,
        broker: Broker,
        handler: BatchHandler,
        batch: int = 100,
        linger: float = 0.0,
        queue: WorkQueue = DISPATCHER_EVENTS,
        retired: tuple[str, ...] = (),
    ) -> None:
        self._broker = broker
        self._handler = handler
        self._batch = batch
        self._linger = linger
        self._queue = queue
        # Routing keys the queue was bound to by earlier versions, that another queue takes now.
        self._retired = retired
        self._channel: AbstractChannel | None = None
        self._consumer: BatchConsumer | None = None

    async def start(self) -> None:
        """Declare and bind the queue, then consume it."""
        self._channel = await self._broker.channel(2 * self._batch)
        topology, exchanges = self._broker.topology, self._broker.exchanges
        queue = await declare(self._channel, topology, exchanges, self._queue)
        for key in self._retired:
            # Else those events would come twice, once here behind everything else (idempotent).
            await queue.unbind(exchanges.events, key)
        name = f"{SERVICE}.{self._queue.purpose}"
        self._consumer = BatchConsumer(
            self._broker, queue, self._handler, name, self._batch, linger=self._linger
        )
        await self._consumer.start()

    async def ready(self) -> bool:
        return self._consumer is not None and await self._consumer.ready()

    async def stop(self) -> None:
        """Stop consuming and wait for the events in flight."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._channel = None


class HttpSession:
    """Owns the one aiohttp session of the process; stopped last, after every loop that uses it."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def start(self) -> None:
        """Nothing to start: the session connects lazily."""

    async def stop(self) -> None:
        """Close the connection pool."""
        await self.session.close()


async def build(ctx: ServiceContext, tuning: Tuning | None = None) -> list[Component]:
    """The dispatcher's components, in start order (they stop in reverse)."""
    settings = ctx.settings
    tuning = tuning or Tuning.from_settings(settings)
    sealer = sealer_for(settings)
    partners = PartnerProjection(ctx.db, sealer)
    cache = PartnerCache(partners, tuning.partner_ttl)
    pushes = PushQueue(ctx.db)
    pulls = PullSchedule(ctx.db)
    await migrate_legacy(ctx.db)
    await partners.ensure_indexes()
    resealed = await partners.seal_stored()
    if resealed:
        log.info("partner_tokens_sealed", count=resealed, key=sealer.current)
    rpc = RpcClient(ctx.broker, settings.rpc_timeout)
    await rpc.start()
    await pushes.ensure_indexes()
    await pulls.ensure_indexes()
    http = HttpSession(outbound_session(limit=200, limit_per_host=32))
    client = OcpiClient(http.session, tuning.push_timeout, settings.outbound_max_body_bytes)
    # Leases name their holder: host, process, and this instance (tests run two in one process).
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    health = PartnerHealth(cache, pushes, ctx.broker.publish_event, tuning.probe_min)
    worker = PushWorker(
        pushes, cache, health, client, settings, tuning, owner, publish=ctx.broker.publish_event
    )
    runner = PullRunner(pulls, partners, client, ctx.broker.publish_internal, settings, tuning)
    probe = PartnerProbe(partners, pushes, pulls, health, client, tuning, runner.wake)
    authorizer = PartnerAuthorizer(cache, client, tuning.push_timeout)
    health.on_unparked = worker.wake
    health.on_probe_due = probe.wake_in
    deps = Deps(
        partners=cache,
        tokens=PartnerTokens(rpc, sealer),
        pushes=pushes,
        pulls=pulls,
        wake_pushes=worker.wake_for,
        wake_pulls=runner.wake,
        cpo_probe=tuning.cpo_probe,
    )

    async def on_events(deliveries: Sequence[Delivery]) -> list[str | None]:
        return await handle_batch(deliveries, deps)

    linger = tuning.consume_linger
    events = EventsConsumer(
        ctx.broker, on_events, linger=linger, retired=DISPATCHER_TOKEN_EVENTS.routing_keys
    )
    # Token changes on a queue of their own: a blocked card is not read after a backlog of locations.
    token_events = EventsConsumer(ctx.broker, on_events, linger=linger, queue=DISPATCHER_TOKEN_EVENTS)
    authorizations = rpc_server(
        ctx, PartnerAuthorize, {PartnerAuthorize: authorizer.authorize}, prefetch=AUTHORIZE_CONCURRENCY
    )
    return [http, RpcClientReadiness(rpc), worker, runner, probe, token_events, events, authorizations]
