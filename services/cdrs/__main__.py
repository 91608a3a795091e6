"""Entrypoint: python -m services.cdrs"""

import asyncio

from services.cdrs.app import build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings

settings = load_settings()
configure_logging("cdrs", settings.log_format, settings.log_level)
asyncio.run(run_service("cdrs", settings, build))
