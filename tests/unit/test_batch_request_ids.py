"""The batch consumer's request-id binding: log lines and publishes of a batch name its requests."""

from __future__ import annotations

import structlog

from shared.messaging.batch import bound_request_ids, request_id_of
from shared.messaging.consumer import Delivery
from shared.messaging.headers import REQUEST_ID, current_request_id


def delivery(request_id: str | None, message_id: str = "m1") -> Delivery:
    headers = {} if request_id is None else {REQUEST_ID: request_id}
    return Delivery(body=b"{}", routing_key="k", headers=headers, message_id=message_id, redelivered=False)


def test_the_request_id_is_the_header_else_the_message_id() -> None:
    assert request_id_of(delivery("r1")) == "r1"
    assert request_id_of(delivery(None, message_id="m9")) == "m9"


def test_a_batch_of_one_is_its_request() -> None:
    """One message: `request_id` in every line, and the current request id for what is published."""
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        with bound_request_ids([delivery("r1")]):
            assert current_request_id.get() == "r1"
            structlog.get_logger().info("inside")
        structlog.get_logger().info("after")
    assert current_request_id.get() is None
    assert logs[0]["request_id"] == "r1"
    assert "request_id" not in logs[1] and "request_ids" not in logs[1]


def test_a_batch_of_many_names_every_request_once() -> None:
    """Several messages: their distinct ids as `request_ids`; no single current request id."""
    batch = [delivery("r1"), delivery("r2"), delivery("r1"), delivery(None, message_id="m3")]
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        with bound_request_ids(batch):
            assert current_request_id.get() is None
            structlog.get_logger().info("inside")
    assert logs[0]["request_ids"] == ["r1", "r2", "m3"]
