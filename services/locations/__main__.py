"""Run the locations service: `python -m services.locations` (settings from the environment)."""

import asyncio

from services.locations.app import build
from shared.logging import configure_logging
from shared.service import run_service
from shared.settings import load_settings


def main() -> None:
    """Load settings, configure logging and serve until SIGTERM."""
    settings = load_settings()
    configure_logging("locations", settings.log_format, settings.log_level)
    asyncio.run(run_service("locations", settings, build))


if __name__ == "__main__":
    main()
