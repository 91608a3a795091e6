"""Run the tariffs service: `python -m services.tariffs` (settings from the environment)."""

import asyncio

from services.tariffs.app import build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings


def main() -> None:
    """Load settings, configure logging and serve until SIGTERM."""
    settings = load_settings()
    configure_logging("tariffs", settings.log_format, settings.log_level)
    asyncio.run(run_service("tariffs", settings, build))


if __name__ == "__main__":
    main()
