"""Entrypoint: python -m services.tariffs"""

import asyncio

from services.tariffs.app import build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings

settings = load_settings()
configure_logging("tariffs", settings.log_format, settings.log_level)
asyncio.run(run_service("tariffs", settings, build))
