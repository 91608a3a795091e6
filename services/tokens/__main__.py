"""Entrypoint: python -m services.tokens"""

import asyncio

from services.tokens.app import build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings

settings = load_settings()
configure_logging("tokens", settings.log_format, settings.log_level)
asyncio.run(run_service("tokens", settings, build))
