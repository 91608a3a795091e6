"""Helpers shared by the roaming benchmarks: deployments as in the e2e pair, waiting, cleanup, stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from bench.load import percentile
from deploy.local_stack import Deployment
from tests.support.cleanup import delete_namespaces
from tests.support.deployments import new_deployment

# As tests/conftest.py's `pair`: production queue type, and the production RPC timeout.
RPC_TIMEOUT_SECONDS = "5"
# Services log warnings only unless BENCH_LOG_LEVEL says otherwise (with TEST_SERVICE_LOG=<file>,
# e.g. info to see the locations service's batch sizes and store/publish times).
LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "warning")


def deployment(amqp: str, mongo: str, country_code: str, party_id: str, roles: str) -> Deployment:
    """A deployment like the e2e pair's (quorum queues), logging warnings only, production RPC timeout."""
    d = new_deployment(amqp, mongo, country_code, party_id, roles)
    d.extra_env["OCPI_QUEUE_TYPE"] = "quorum"
    d.extra_env["LOG_LEVEL"] = LOG_LEVEL
    d.extra_env["RPC_TIMEOUT_SECONDS"] = RPC_TIMEOUT_SECONDS
    return d


def settings_of(*deployments: Deployment) -> dict[str, Any]:
    """What the figures say about how the deployments were configured."""
    first = deployments[0].extra_env
    return {
        "queue_type": first.get("OCPI_QUEUE_TYPE"),
        "log_level": first.get("LOG_LEVEL"),
        "rpc_timeout_seconds": float(first.get("RPC_TIMEOUT_SECONDS", "5")),
    }


def cleanup_broker(amqp: str, *deployments: Deployment) -> None:
    """Delete the quorum queues and exchanges the deployments declared (they outlive the processes)."""
    with contextlib.suppress(Exception):
        asyncio.run(delete_namespaces(amqp, {d.namespace for d in deployments}))


def stats_ms(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of durations given in seconds, in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {name: float("nan") for name in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }
