"""Run one deployment of the platform as local processes (for `make run` and the tests).

Each service is its own process, exactly as in containers; logs are prefixed with the service name.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO

from shared.sealing import new_key

SERVICES = ("gateway", "locations", "tokens", "sessions", "cdrs", "tariffs", "dispatcher")
# The processes that call partners, and so hold the keys of the tokens partners gave us.
SEALING = ("gateway", "dispatcher")


@dataclass
class Deployment:
    """Settings of one deployment; ports are the gateway's and the first health port."""

    namespace: str
    amqp_url: str
    mongo_url: str
    gateway_port: int
    admin_port: int
    health_port_base: int
    country_code: str = "NL"
    party_id: str = "ABC"
    roles: str = "CPO,EMSP"
    # Random per deployment: every process refuses a well-known admin token (docs/security.md).
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Random per deployment; only the gateway and the dispatcher get it (shared/sealing.py).
    partner_token_keys: str = field(default_factory=new_key)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Explicit health ports per service; otherwise health_port_base + the service's index.
    health_ports: dict[str, int] = field(default_factory=dict)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def health_port(self, service: str) -> int:
        if service == "gateway":
            return self.gateway_port
        return self.health_ports.get(service, self.health_port_base + SERVICES.index(service))

    def env(self, service: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            OCPI_NAMESPACE=self.namespace,
            AMQP_URL=self.amqp_url,
            MONGO_URL=self.mongo_url,
            OCPI_PUBLIC_URL=self.public_url,
            GATEWAY_PORT=str(self.gateway_port),
            ADMIN_PORT=str(self.admin_port),
            HEALTH_PORT=str(self.health_port(service)) if service != "gateway" else "0",
            OCPI_COUNTRY_CODE=self.country_code,
            OCPI_PARTY_ID=self.party_id,
            OCPI_ROLES=self.roles,
            OCPI_ADMIN_TOKEN=self.admin_token,
            PYTHONUNBUFFERED="1",
        )
        if service in SEALING:
            env["PARTNER_TOKEN_KEYS"] = self.partner_token_keys
        env.update(self.extra_env)
        return env


def _pump(stream: IO[bytes], prefix: str, sink: IO[str], tail: deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        tail.append(line)
        sink.write(f"{prefix} {line}")
        sink.flush()


class Stack:
    """Start, watch, kill and restart the processes of one deployment."""

    def __init__(self, deployment: Deployment, log: IO[str] | None = None, label: str = "") -> None:
        self.deployment = deployment
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        # The last lines each service wrote, for the error when one does not come up.
        self.tails: dict[str, deque[str]] = {}
        self._log = log or sys.stderr
        self._label = label

    def start(self, services: tuple[str, ...] = SERVICES) -> None:
        for service in services:
            self.start_one(service)

    def start_one(self, service: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=self.deployment.env(service),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.processes[service] = proc
        prefix = f"[{self._label}{service:>10}]"
        assert proc.stdout is not None
        self.tails[service] = deque(maxlen=20)
        threading.Thread(
            target=_pump, args=(proc.stdout, prefix, self._log, self.tails[service]), daemon=True
        ).start()

    def wait_ready(self, timeout: float = 60.0, services: tuple[str, ...] | None = None) -> None:
        """Block until every service answers /readyz with 200."""
        deadline = time.monotonic() + timeout
        for service in services or tuple(self.processes):
            url = f"http://127.0.0.1:{self.deployment.health_port(service)}/readyz"
            while True:
                proc = self.processes[service]
                if proc.poll() is not None:
                    time.sleep(0.2)  # let the pump read the last lines
                    last = "".join(self.tails.get(service, ()))
                    raise RuntimeError(f"{service} exited with {proc.returncode}:\n{last}")
                try:
                    with urllib.request.urlopen(url, timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} not ready after {timeout}s")
                time.sleep(0.2)

    def kill(self, service: str) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        proc = self.processes[service]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(
        self, services: tuple[str, ...] | None = None, timeout: float = 15.0
    ) -> Mapping[str, int | None]:
        """SIGTERM, wait for a clean exit, SIGKILL what is left."""
        names = services or tuple(self.processes)
        for name in names:
            if self.processes[name].poll() is None:
                self.processes[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            proc = self.processes[name]
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return {name: self.processes[name].returncode for name in names}
