"""`make run`: the whole platform on this machine, logs prefixed by service, Ctrl-C stops it all.

MongoDB: MONGO_URL when set, otherwise a local SecantusDB (a MongoDB-wire dev server) keeping its
data in .data/mongo. RabbitMQ: AMQP_URL (default the local server).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from deploy.local_stack import SERVICES, Deployment, Stack
from shared.sealing import new_key

ROOT = Path(__file__).resolve().parent.parent


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_secantus(port: int) -> subprocess.Popen[bytes]:
    data = ROOT / ".data" / "mongo"
    data.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("secantusd-py")
    log = open(ROOT / ".data" / "secantus.log", "ab")
    proc = subprocess.Popen(
        [
            str(exe) if exe.exists() else "secantusd-py",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data),
            "--log-level",
            "WARNING",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(150):
        if _listening(port):
            return proc
        time.sleep(0.2)
    raise SystemExit("SecantusDB did not start; see .data/secantus.log")


def _kept_secret(setting: str, file: str, make: Callable[[], str]) -> str:
    """The setting when set; otherwise a value generated once and kept in .data/<file> (mode 0600),
    so that it stays the same across runs."""
    given = os.environ.get(setting, "")
    if given:
        return given
    path = ROOT / ".data" / file
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return value


def _admin_token() -> str:
    """`ocpi-admin` keeps working across runs (the processes refuse a well-known token)."""
    return _kept_secret("OCPI_ADMIN_TOKEN", "admin-token", lambda: secrets.token_urlsafe(32))


def _partner_token_keys() -> str:
    """The tokens partners gave us, sealed in .data's database, open again on the next run."""
    return _kept_secret("PARTNER_TOKEN_KEYS", "partner-token-keys", new_key)


def main() -> None:
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if "127.0.0.1:5672" in amqp_url and not _listening(5672) and shutil.which("rabbitmq-server"):
        print("starting rabbitmq-server", flush=True)
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        for _ in range(60):
            if _listening(5672):
                break
            time.sleep(1)
    secantus = None
    mongo_url = os.environ.get("MONGO_URL", "")
    if not mongo_url:
        port = int(os.environ.get("LOCAL_MONGO_PORT", "27018"))
        if not _listening(port):
            secantus = _start_secantus(port)
        mongo_url = f"mongodb://127.0.0.1:{port}"
    deployment = Deployment(
        namespace=os.environ.get("OCPI_NAMESPACE", "ocpi"),
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        gateway_port=int(os.environ.get("GATEWAY_PORT", "8080")),
        admin_port=int(os.environ.get("ADMIN_PORT", "8081")),
        health_port_base=int(os.environ.get("HEALTH_PORT_BASE", "8090")),
        country_code=os.environ.get("OCPI_COUNTRY_CODE", "NL"),
        party_id=os.environ.get("OCPI_PARTY_ID", "ABC"),
        roles=os.environ.get("OCPI_ROLES", "CPO,EMSP"),
        admin_token=_admin_token(),
        partner_token_keys=_partner_token_keys(),
        # The services write to a pipe, not a terminal: ask for readable lines anyway.
        extra_env={
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "console"),
            # A second local deployment (or a partner on this machine) is http://127.0.0.1:<port>;
            # production refuses both (docs/security.md).
            "OUTBOUND_ALLOW_HTTP": os.environ.get("OUTBOUND_ALLOW_HTTP", "true"),
            "OUTBOUND_ALLOW_PRIVATE": os.environ.get("OUTBOUND_ALLOW_PRIVATE", "true"),
        },
    )
    stack = Stack(deployment)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    stack.start(SERVICES)
    try:
        stack.wait_ready(90)
        admin_env = f"OCPI_ADMIN_URL={deployment.admin_url} OCPI_ADMIN_TOKEN={deployment.admin_token}"
        print(
            f"\n  OCPI versions URL: {deployment.public_url}/ocpi/versions"
            f"\n  Admin API:         {deployment.admin_url}"
            f"\n  Add a partner:     {admin_env} \\"
            "\n                     .venv/bin/ocpi-admin partner add --name acme --country-code DE"
            " --party-id ACM --role EMSP"
            "\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            dead = [name for name, proc in stack.processes.items() if proc.poll() is not None]
            if dead:
                print(f"service(s) exited: {', '.join(dead)}; stopping", flush=True)
                break
            time.sleep(0.5)
    finally:
        print("stopping...", flush=True)
        stack.stop()
        if secantus is not None:
            secantus.terminate()
            secantus.wait(10)


if __name__ == "__main__":
    main()
