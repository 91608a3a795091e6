"""The local RabbitMQ node as an operator sees it: list and close client connections, restart it.

Fault tests use `rabbitmqctl`, as an operator (or a rolling upgrade) would, so that the platform's
processes see exactly what a real broker-side close or restart does to them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from typing import Any

RABBITMQCTL = "rabbitmqctl"


def _ctl(*args: str, timeout: float = 60.0) -> str:
    done = subprocess.run(
        [RABBITMQCTL, "-q", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout


def _connection_name(client_properties: list[Any]) -> str | None:
    for key, _, value in client_properties:
        if key == "connection_name":
            return str(value)
    return None


def connections_named(name: str) -> list[str]:
    """Erlang pids of the client connections that gave `name` as their connection_name."""
    rows = json.loads(_ctl("list_connections", "name", "client_properties", "--formatter", "json") or "[]")
    wanted = {row["name"] for row in rows if _connection_name(row["client_properties"]) == name}
    # close_connection wants the pid as the table output prints it (<rabbit@host.N.N.N>), not as
    # the JSON formatter does; the table's rows are "pid<TAB>name" after a header line.
    pids = []
    for line in _ctl("list_connections", "pid", "name").splitlines()[1:]:
        pid, _, connection = line.partition("\t")
        if connection in wanted:
            pids.append(pid)
    return pids


def close_connections(name: str) -> int:
    """Have the broker close every connection named `name`; how many it closed."""
    pids = connections_named(name)
    for pid in pids:
        _ctl("close_connection", pid, "closed by a fault test")
    return len(pids)


def _port_open(port: int = 5672) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def restart_broker(down_for: float = 3.0, timeout: float = 120.0) -> None:
    """Stop the whole node, keep it down for `down_for` seconds, start it again and wait for it."""
    _ctl("shutdown", timeout=timeout)
    time.sleep(down_for)
    subprocess.run(["rabbitmq-server", "-detached"], check=True, timeout=60, capture_output=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open():
            try:
                _ctl("await_startup", timeout=max(1.0, deadline - time.monotonic()))
                return
            except subprocess.CalledProcessError:
                pass
        time.sleep(0.5)
    raise TimeoutError("RabbitMQ did not come back")
