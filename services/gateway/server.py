"""Run the gateway's two listeners until SIGTERM; aiohttp finishes in-flight requests on shutdown."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from services.gateway.app import create_apps
from shared.outbound_http import set_process_policy
from shared.outbound_policy import OutboundPolicy
from shared.sealing import sealer_for
from shared.settings import Settings, refuse_unsafe

log = structlog.get_logger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve OCPI on gateway_port and the admin API on admin_port until `stop` or a signal."""
    refuse_unsafe(settings)
    sealer_for(settings)  # refuses to start (naming PARTNER_TOKEN_KEYS) before anything listens
    set_process_policy(OutboundPolicy.from_settings(settings))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ocpi, admin = create_apps(settings)
    ocpi_runner = web.AppRunner(ocpi, access_log=None, shutdown_timeout=10)
    await ocpi_runner.setup()
    # The admin app shares the OCPI app's Gateway, so it starts after it and stops before it.
    admin_runner = web.AppRunner(admin, access_log=None, shutdown_timeout=10)
    await admin_runner.setup()
    await web.TCPSite(ocpi_runner, settings.gateway_host, settings.gateway_port).start()
    await web.TCPSite(admin_runner, settings.admin_host, settings.admin_port).start()
    log.info("gateway_listening", ocpi_port=settings.gateway_port, admin_port=settings.admin_port)
    await stop.wait()
    await admin_runner.cleanup()
    await ocpi_runner.cleanup()
