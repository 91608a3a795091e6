"""A lost broker connection and its return are in our own log lines (security review L20).

aio-pika reports a reconnect at INFO under its own logger, which the services quiet to WARNING, so
the Broker logs both itself. The broker closes only this test's connection (as `rabbitmqctl
close_connection` or a network blip would); RabbitMQ itself keeps running.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from shared.messaging.broker import Broker
from shared.messaging.topology import Topology
from tests.support.rabbit import close_connections
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

WAIT = 30.0


def named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == event]


async def test_a_dropped_connection_logs_lost_then_reconnected(amqp_url: str, namespace: str) -> None:
    """The broker closes the process's connection: `broker_connection_lost` (warning, with the
    connection's name and the reason), then `broker_reconnected` (info) once it is back; an explicit
    close at shutdown logs neither."""
    broker = Broker(amqp_url, Topology(namespace), "reconnect-logs")
    await broker.connect()
    try:
        with structlog.testing.capture_logs() as logs:
            closed = await asyncio.to_thread(close_connections, broker.connection_name)
            assert closed == 1
            await eventually(lambda: bool(named(logs, "broker_reconnected")), WAIT, "reconnect logged")
            await eventually(lambda: broker.is_ready, WAIT, "connected again")
        [lost] = named(logs, "broker_connection_lost")
        assert lost["log_level"] == "warning"
        assert lost["connection"] == broker.connection_name
        assert "closed by a fault test" in lost["reason"]
        [back] = named(logs, "broker_reconnected")
        assert back["log_level"] == "info" and back["connection"] == broker.connection_name
        assert logs.index(lost) < logs.index(back)
    finally:
        with structlog.testing.capture_logs() as at_close:
            await broker.close()
    assert named(at_close, "broker_connection_lost") == []
