"""What every benchmark shares: the machine's description, servers, one JSON line per figure."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.servers import amqp_url, mongo_server


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def emit(figure: str, **values: Any) -> None:
    print(json.dumps({"figure": figure, **values, "machine": machine()}), flush=True)


@contextmanager
def infrastructure() -> Iterator[tuple[str, str, str]]:
    """(amqp_url, mongo_url, database name): MONGO_URL when set, else SecantusDB in memory."""
    with mongo_server() as mongo_url:
        database = "MongoDB at MONGO_URL" if os.environ.get("MONGO_URL") else "SecantusDB 0.7.0b3 (in-memory)"
        yield amqp_url(), mongo_url, database


def run_load(url: str, token: str | None, concurrency: int, seconds: float) -> dict[str, Any]:
    """Run bench.load in a separate process so the load generator does not share our event loop."""
    command = [
        sys.executable,
        "-m",
        "bench.load",
        url,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    if token:
        command += ["--token", token]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
