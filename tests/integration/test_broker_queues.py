"""Broker.connect declares every work queue, and tolerates one declared elsewhere with other arguments."""

from __future__ import annotations

import pytest

from shared.messaging.broker import Broker
from shared.messaging.queues import LOCATIONS_INPUT
from shared.messaging.topology import Topology

pytestmark = pytest.mark.integration


async def test_a_queue_with_other_arguments_costs_a_warning_not_the_publisher(
    amqp_url: str, namespace: str
) -> None:
    """The input queue exists with arguments of its own (say, another OCPI_QUEUE_TYPE): connecting
    still works, the publisher channel still confirms, and the queue is left as it was."""
    first = Broker(amqp_url, Topology(namespace))
    await first.connect()
    try:
        channel = await first.connection.channel()
        name = LOCATIONS_INPUT.name(first.topology)
        await channel.queue_delete(name)
        await channel.declare_queue(name, durable=True, arguments={"x-max-length": 7})
        await channel.close()
        second = Broker(amqp_url, Topology(namespace))
        await second.connect()
        try:
            await second.publish(second.exchanges.internal, "locations.location.upsert", b"{}")
        finally:
            await second.close()
        channel = await first.connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        assert queue.declaration_result.message_count == 0  # unbound: the new one did not re-bind it
        await channel.close()
    finally:
        await first.close()
