"""Entrypoint: python -m services.sessions"""

import asyncio

from services.sessions.app import build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings

settings = load_settings()
configure_logging("sessions", settings.log_format, settings.log_level)
asyncio.run(run_service("sessions", settings, build))
