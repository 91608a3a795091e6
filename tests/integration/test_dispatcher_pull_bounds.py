"""Pulled pages: an object the models refuse (an int the database cannot store, nesting too deep) is
logged and skipped, and the rest of the page is imported (real RabbitMQ, a fake CPO partner)."""

from __future__ import annotations

import pytest
import structlog

from shared.contracts.locations import PartnerLocationImport
from shared.messaging.broker import Broker
from shared.settings import Role
from tests.integration.test_dispatcher import (
    Collector,
    location_json,
    make_settings,
    make_tuning,
    register,
    running_dispatcher,
    started,
)
from tests.integration.test_dispatcher_partner_fake import FakePartner
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def test_pull_skips_objects_with_unstorable_ints_or_deep_nesting(
    broker: Broker, namespace: str, amqp_url: str, mongo_url: str
) -> None:
    """A page with a 2^63 voltage and a 200-deep unknown field among good locations: the good ones are
    imported, the two bad ones are logged as rejected and never published."""
    imports = await Collector.bind(
        broker, broker.exchanges.internal, PartnerLocationImport, "locations.partner_location.import"
    )
    big = location_json("BIG", 2)
    big["evses"][0]["connectors"][0]["voltage"] = 9223372036854775808
    deep = location_json("DEEP", 3)
    deep["x"] = _nested(200)  # deeper than MAX_DEPTH, shallow enough for the fake's json.dumps
    partner = FakePartner("cpo")
    partner.cpo_locations = [location_json("P1", 1), big, deep, location_json("P2", 4)]
    settings = make_settings(namespace, amqp_url, mongo_url)
    with structlog.testing.capture_logs() as logs:
        async with started(partner), running_dispatcher(settings, make_tuning(settings)) as ctx:
            await register(broker, ctx, partner, "cpo-1", role=Role.CPO, party=("BE", "CPO"))
            await eventually(
                lambda: any(entry["event"] == "pull_completed" for entry in logs), 10, "the pull to complete"
            )
            await eventually(lambda: len(imports.items) >= 2, 5, "the good imports")
    assert sorted(item.location.id for item in imports.items) == ["P1", "P2"]
    refusals = [entry for entry in logs if entry["event"] == "pulled_location_rejected"]
    rejected = {entry["location_id"]: entry["reason"] for entry in refusals}
    assert set(rejected) == {"BIG", "DEEP"}
    assert "voltage" in rejected["BIG"] and "nested deeper" in rejected["DEEP"]
    completed = next(entry for entry in logs if entry["event"] == "pull_completed")
    assert (completed["imported"], completed["rejected"]) == (2, 2)
