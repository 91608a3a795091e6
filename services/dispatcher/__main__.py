"""Entrypoint: python -m services.dispatcher"""

import asyncio

from services.dispatcher.app import SERVICE, build
from shared.logging import configure_logging
from shared.sealing import sealer_for
from shared.service import run_service
from shared.settings import load_settings, refuse_unsafe

settings = load_settings()
refuse_unsafe(settings)
sealer_for(settings)  # refuses to start (naming PARTNER_TOKEN_KEYS) before anything connects
configure_logging(SERVICE, settings.log_format, settings.log_level)
asyncio.run(run_service(SERVICE, settings, build))
