"""Entrypoint: python -m services.dispatcher"""

import asyncio

from services.dispatcher.app import SERVICE, build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings

settings = load_settings()
configure_logging(SERVICE, settings.log_format, settings.log_level)
asyncio.run(run_service(SERVICE, settings, build))
