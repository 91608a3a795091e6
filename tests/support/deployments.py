"""Deployments of the whole platform as real processes, for end-to-end and fault tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from deploy.local_stack import SERVICES, Deployment, Stack
from tests.support.servers import free_port


def _log_sink(path: str | None = None) -> IO[str]:
    """Service logs go to `path`, else to the file named by TEST_SERVICE_LOG, else nowhere."""
    path = path or os.environ.get("TEST_SERVICE_LOG")
    if path:
        return open(path, "a")
    return open(os.devnull, "w")


def new_deployment(amqp_url: str, mongo_url: str, country_code: str, party_id: str, roles: str) -> Deployment:
    return Deployment(
        namespace=f"t{uuid.uuid4().hex[:8]}",
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        gateway_port=free_port(),
        admin_port=free_port(),
        health_port_base=free_port(),
        # One checked port each: base + n may be some connection's ephemeral port by now.
        health_ports={service: free_port() for service in SERVICES if service != "gateway"},
        country_code=country_code,
        party_id=party_id,
        roles=roles,
        admin_token=uuid.uuid4().hex,
        extra_env={
            "LOG_FORMAT": "json",
            "RPC_TIMEOUT_SECONDS": "3",
            "PYTHONPATH": os.getcwd(),
            # The two deployments and the fake partners talk over http://127.0.0.1 (M1 policy).
            "OUTBOUND_ALLOW_HTTP": "true",
            "OUTBOUND_ALLOW_PRIVATE": "true",
        },
    )


@contextmanager
def running(
    deployment: Deployment, label: str, services: tuple[str, ...] = SERVICES, log_path: str | None = None
) -> Iterator[Stack]:
    """Start the deployment's processes, wait until each is ready, stop them at the end; their logs
    go to `log_path` when given (a test that reads them), else as _log_sink says."""
    sink = _log_sink(log_path)
    stack = Stack(deployment, log=sink, label=label)
    try:
        for attempt in range(START_ATTEMPTS):
            stack.start(services)
            try:
                stack.wait_ready(90)
                break
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == START_ATTEMPTS - 1:
                    raise
                # A port that was free when picked was taken before the service bound it (another
                # process's ephemeral port): start the deployment again on fresh ports.
                stack.stop()
                _fresh_ports(deployment)
        yield stack
    finally:
        stack.stop()
        sink.close()


START_ATTEMPTS = 3


def _fresh_ports(deployment: Deployment) -> None:
    deployment.gateway_port = free_port()
    deployment.admin_port = free_port()
    deployment.health_port_base = free_port()
    deployment.health_ports = {service: free_port() for service in deployment.health_ports}
