"""Entrypoint: python -m services.gateway"""

import asyncio

from services.gateway.server import serve
from shared.logging import configure_logging
from shared.settings import load_settings

settings = load_settings()
configure_logging("gateway", settings.log_format, settings.log_level)
asyncio.run(serve(settings))
