"""The request id travels from the charger backend's input to the partner's HTTP call: locations
service and dispatcher in this process, real RabbitMQ and MongoDB, a fake eMSP over HTTP."""

from __future__ import annotations

import msgspec
import pytest
import structlog

from shared.contracts.base import routing_key
from shared.contracts.locations import EvseStatusSet, LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.headers import REQUEST_ID
from shared.ocpi.v2_1_1.locations import Status
from shared.service import ServiceContext
from tests.integration.test_dispatcher import dispatcher, register, started
from tests.integration.test_dispatcher_partner_fake import FakePartner
from tests.integration.test_locations_service import T0, location, locations_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
__all__ = ["dispatcher"]  # the fixture, used by name


async def publish_input(broker: Broker, message: LocationUpsert | EvseStatusSet, request_id: str) -> None:
    """What the charger backend does, with its own request id on the message."""
    body = msgspec.json.encode(message)
    await broker.publish(
        broker.exchanges.internal, routing_key(message), body, headers={REQUEST_ID: request_id}
    )


async def test_the_partner_call_carries_the_request_id_of_the_input(
    broker: Broker, dispatcher: ServiceContext, amqp_url: str, mongo_url: str, namespace: str
) -> None:
    """An EvseStatusSet published with x-request-id R reaches the partner as a PATCH with X-Request-ID R,
    and every log line of its way names R: the locations service's batch, the dispatcher's push."""
    partner = FakePartner("emsp")
    # As in production (shared/logging.py), bound context joins each line.
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with started(partner), locations_service(amqp_url, mongo_url, namespace):
            await register(broker, dispatcher, partner, "emsp-1")
            await publish_input(
                broker, LocationUpsert(event_id="create", location=location("LOC1")), "req-create"
            )
            await eventually(lambda: "LOC1" in partner.store, 10, "the first PUT")
            status = EvseStatusSet(
                event_id="s1",
                location_id="LOC1",
                evse_uid="E1",
                status=Status.CHARGING,
                at=T0.replace(minute=5),
            )
            await publish_input(broker, status, "req-status-42")
            await eventually(lambda: len(partner.pushes()) == 2, 10, "the PATCH")
    put, patch = partner.pushes()
    assert (put.method, put.headers["X-Request-ID"]) == ("PUT", "req-create")
    assert (patch.method, patch.segments[2:]) == ("PATCH", ["LOC1", "E1"])
    assert patch.headers["X-Request-ID"] == "req-status-42"
    delivered = [entry for entry in logs if entry["event"] == "push_delivered"]
    assert [entry["request_id"] for entry in delivered] == ["req-create", "req-status-42"]
    # The locations service's line for the batch that applied the status names the request too.
    applied = [e for e in logs if e["event"] == "inputs_handled" and "LOC1" in e.get("versions", {})]
    assert applied and applied[-1]["versions"]["LOC1"] == 2
    assert "req-status-42" in (applied[-1].get("request_id"), *applied[-1].get("request_ids", ()))
    # No line about the status change lost the id on the way.
    after = logs[logs.index(applied[-1]) :]
    about_it = [e for e in after if e["event"] in ("inputs_handled", "push_delivered")]
    assert all("request_id" in e or "request_ids" in e for e in about_it), about_it
