"""Find or start the real servers the integration tests need.

MongoDB: MONGO_URL when set; else testcontainers' mongo:7 when a Docker engine answers; else a
SecantusDB process (MongoDB wire protocol, dev/test only) on a free port with in-memory storage.
RabbitMQ: AMQP_URL when set, else the local server on 127.0.0.1:5672.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _secantus_command() -> list[str]:
    exe = Path(sys.executable).with_name("secantusd-py")
    return [str(exe) if exe.exists() else "secantusd-py"]


@contextlib.contextmanager
def mongo_server() -> Iterator[str]:
    """Yield a MongoDB URL for the test session."""
    if os.environ.get("MONGO_URL"):
        yield os.environ["MONGO_URL"]
        return
    if _docker_answers():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:7") as container:
            yield container.get_connection_url()
        return
    with secantus_server(log_path=os.environ.get("SECANTUS_LOG", os.devnull)) as url:
        yield url


@contextlib.contextmanager
def secantus_server(*options: str, log_path: str = os.devnull) -> Iterator[str]:
    """A SecantusDB of its own, in memory, on a free port, with extra command line `options`
    (e.g. `--enable-test-commands`); its URL until the block ends."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            *_secantus_command(),
            *("--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"),
            *("--log-level", "WARNING", *options),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, 30)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class StoppableMongo:
    """A SecantusDB process keeping its data on disk, that a fault test stops and starts again on the
    same port: a database outage with nothing lost, as a restarted MongoDB would behave."""

    def __init__(self, storage: Path) -> None:
        self.port = free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self._storage = storage
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                *_secantus_command(),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self._storage),
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, 30)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None


def amqp_url() -> str:
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    return url
