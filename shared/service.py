"""The life of a service process: connect, serve health, run components, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import structlog
from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from shared.outbound_http import set_process_policy
from shared.outbound_policy import OutboundPolicy
from shared.settings import Settings, refuse_unsafe
from shared.storage import Document, connect_mongo, ping, service_database

log = structlog.get_logger(__name__)


class Component(Protocol):
    """Anything a service runs: consumers, RPC servers, background loops."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@runtime_checkable
class Ready(Protocol):
    """A component that can tell whether it is doing its work (a consumer: consuming, not holding)."""

    async def ready(self) -> bool: ...


async def all_ready(components: Sequence[object]) -> bool:
    """Whether every component that can tell is ready."""
    for component in components:
        if isinstance(component, Ready) and not await component.ready():
            return False
    return True


class ServiceContext:
    """The connections a service's composition root wires its handlers with."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.broker = Broker(settings.amqp_url, Topology(settings.namespace), name)
        self.mongo: AsyncMongoClient[Document] = connect_mongo(settings.mongo_url)
        self.db: AsyncDatabase[Document] = service_database(self.mongo, settings.namespace, name)
        self.components: list[Component] = []

    async def ready(self) -> bool:
        """Broker connected, database answering, and every consumer consuming."""
        return self.broker.is_ready and await ping(self.mongo) and await all_ready(self.components)


Build = Callable[[ServiceContext], Awaitable[list[Component]]]


async def stop_all(components: Sequence[Component]) -> None:
    """Stop `components` in reverse start order; one that fails to stop does not keep the others
    from stopping (and draining), e.g. with the broker away at SIGTERM (L14)."""
    for component in reversed(components):
        try:
            await component.stop()
        except Exception:
            log.exception("component_stop_failed", component=type(component).__name__)


async def _health_app(context: ServiceContext) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": context.name})

    async def readyz(_: web.Request) -> web.Response:
        ready = await context.ready()
        return web.json_response({"ready": ready, "service": context.name}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def run_service(name: str, settings: Settings, build: Build) -> None:
    """Run until SIGTERM/SIGINT, then stop taking work and finish what is in flight."""
    refuse_unsafe(settings)
    # Every session this process makes towards partners connects under the deployment's policy (M1).
    set_process_policy(OutboundPolicy.from_settings(settings))
    context = ServiceContext(name, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = await _health_app(context)
    if settings.health_port:
        await web.TCPSite(health, settings.gateway_host, settings.health_port).start()
    await context.broker.connect()
    components = await build(context)
    context.components = components
    for component in components:
        await component.start()
    log.info("service_started", health_port=settings.health_port)
    await stop.wait()
    log.info("service_stopping")
    await stop_all(components)
    await context.broker.close()
    await context.mongo.close()
    await health.cleanup()
    log.info("service_stopped")
