"""Starting a process with settings it must refuse, and what it said."""

from __future__ import annotations

import os
import subprocess
import sys


def refused_start(service: str, **settings: str) -> bytes:
    """Run `python -m services.<service>` with `settings` over this environment (an empty value
    removes the variable) and nothing to connect to; assert it exits failing, return its stderr.
    A process that got as far as connecting would fail too, but only after its timeouts: the
    callers check the message to know it stopped at its settings."""
    env = {
        **os.environ,
        # Nothing listens here: the process must not get as far as trying.
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
        "MONGO_URL": "mongodb://127.0.0.1:1",
        "GATEWAY_PORT": "0",
        "ADMIN_PORT": "0",
        "LOG_FORMAT": "json",
        **settings,
    }
    env = {name: value for name, value in env.items() if value}
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0, done.stderr[-2000:]
    return done.stderr
