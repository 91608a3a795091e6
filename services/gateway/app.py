"""The gateway's composition root: HTTP apps for partners and operators, broker, database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from pymongo import AsyncMongoClient

from services.gateway import (
    admin_loads,
    admin_routes,
    credentials_routes,
    module_routes,
    tokens_routes,
    versions_routes,
)
from services.gateway.auth import TokenCache
from services.gateway.events import start_consumers
from services.gateway.middleware import ocpi_middleware
from services.gateway.partner_client import PartnerClient
from services.gateway.partners import PartnerRepository
from services.gateway.ratelimit import TokenBuckets
from services.gateway.state import GATEWAY, Gateway
from services.gateway.sweeper import RegistrySweeper
from services.gateway.token_requests import token_server
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.messaging.topology import Topology
from shared.outbound_http import outbound_session
from shared.outbound_policy import OutboundPolicy
from shared.sealing import sealer_for
from shared.service import Component, all_ready
from shared.settings import Settings
from shared.storage import Document, connect_mongo, ping, service_database

log = structlog.get_logger(__name__)


def create_apps(settings: Settings) -> tuple[web.Application, web.Application]:
    """The partner-facing OCPI app and the operator's admin app, sharing one Gateway."""
    # Partners' bodies are small; anything far larger is an attack or a mistake (INBOUND_MAX_BODY_BYTES).
    cap = settings.inbound_max_body_bytes
    ocpi = web.Application(middlewares=[ocpi_middleware], client_max_size=cap)
    # The operator loads our own locations in bulk: more room, still bounded.
    admin = web.Application(middlewares=[ocpi_middleware, admin_routes.admin_auth], client_max_size=cap * 8)
    versions_routes.add_routes(ocpi)
    credentials_routes.add_routes(ocpi)
    module_routes.add_routes(ocpi)
    tokens_routes.add_routes(ocpi)
    admin_routes.add_routes(admin)
    admin_loads.add_routes(admin)
    for app in (ocpi, admin):
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        broker = Broker(settings.amqp_url, Topology(settings.namespace), "gateway")
        await broker.connect()
        mongo = connect_mongo(settings.mongo_url)
        sealer = sealer_for(settings)
        partners = PartnerRepository(service_database(mongo, settings.namespace, "gateway"), sealer)
        await partners.create_indexes()
        resealed = await partners.seal_stored()
        if resealed:
            log.info("partner_tokens_sealed", count=resealed, key=sealer.current)
        rpc = RpcClient(broker, settings.rpc_timeout)
        await rpc.start()
        async with outbound_session(OutboundPolicy.from_settings(settings)) as session:
            client = PartnerClient(session, max_body=settings.outbound_max_body_bytes)
            budgets = TokenBuckets(settings.inbound_rate_per_token, settings.inbound_rate_burst)
            gateway = Gateway(settings, broker, rpc, partners, TokenCache(), client, sealer, budgets)
            ocpi[GATEWAY] = gateway
            admin[GATEWAY] = gateway
            ocpi[MONGO] = mongo
            admin[MONGO] = mongo
            consumers: list[Component] = [*await start_consumers(gateway), token_server(gateway)]
            await consumers[-1].start()
            ocpi[CONSUMERS] = consumers
            admin[CONSUMERS] = consumers
            sweeper = RegistrySweeper(gateway)
            await sweeper.start()
            log.info("gateway_started", versions_url=f"{settings.public_url}/ocpi/versions")
            yield
            await sweeper.stop()
            for consumer in consumers:
                await consumer.stop()
        await broker.close()
        await mongo.close()

    ocpi.cleanup_ctx.append(lifecycle)
    return ocpi, admin


MONGO: web.AppKey[AsyncMongoClient[Document]] = web.AppKey("mongo")
CONSUMERS: web.AppKey[list[Component]] = web.AppKey("consumers")


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": "gateway"})


def _consumers(app: web.Application) -> list[Component]:
    return app.get(CONSUMERS) or []


async def readyz(request: web.Request) -> web.Response:
    """Ready while module calls can be answered: broker connected, RPC replies consumed, the event
    consumers consuming and the database answering."""
    gateway = request.app.get(GATEWAY)
    mongo = request.app.get(MONGO)
    ready = bool(
        gateway is not None
        and gateway.broker.is_ready
        and gateway.rpc.ready
        and mongo is not None
        and await ping(mongo)
        and await all_ready(_consumers(request.app))
    )
    return web.json_response({"ready": ready, "service": "gateway"}, status=200 if ready else 503)
