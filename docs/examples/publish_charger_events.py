"""Publish EVSE status changes the way a charger backend does (see docs/messages.md).

Run from the repository root (or anywhere the `ocpi-platform` package is installed):

    python -m docs.examples.publish_charger_events --location-id LOC-0001 --evse-uid EVSE-0001-1 \\
        --create --count 10 --rate 2

Each event is an `EvseStatusSet` on the internal exchange, routed by its `type`, with its `event_id`
as the AMQP message_id, published persistent and confirmed by the broker before the next one goes.
`--create` first publishes a `LocationUpsert` with one EVSE of that uid, so that the status changes
have something to apply to (a status for an unknown location or EVSE is dead-lettered).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import uuid
from datetime import UTC, datetime

from shared.contracts.locations import EvseStatusSet, LocationUpsert
from shared.messaging.broker import Broker
from shared.messaging.headers import current_request_id
from shared.messaging.topology import Topology
from shared.ocpi.v2_1_1.locations import (
    EVSE,
    Connector,
    ConnectorFormat,
    ConnectorType,
    GeoLocation,
    Location,
    LocationType,
    PowerType,
    Status,
)

# A charging cycle as a charger reports it.
CYCLE = (Status.AVAILABLE, Status.CHARGING, Status.AVAILABLE, Status.RESERVED, Status.CHARGING)


def now() -> datetime:
    """The current time in UTC; the platform keeps whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def new_event_id() -> str:
    """A unique idempotency key; a redelivery of the same event must reuse it."""
    return str(uuid.uuid4())


def sample_location(location_id: str, evse_uid: str) -> Location:
    """A location with one EVSE of one connector, for --create."""
    stamp = now()
    connector = Connector(
        id="1",
        standard=ConnectorType.IEC_62196_T2,
        format=ConnectorFormat.SOCKET,
        power_type=PowerType.AC_3_PHASE,
        voltage=400,
        amperage=32,
        last_updated=stamp,
    )
    evse = EVSE(uid=evse_uid, status=Status.AVAILABLE, connectors=[connector], last_updated=stamp)
    return Location(
        id=location_id,
        type=LocationType.ON_STREET,
        name=f"Example location {location_id}",
        address="Keizersgracht 585",
        city="Amsterdam",
        postal_code="1017DR",
        country="NLD",
        coordinates=GeoLocation(latitude="52.364416", longitude="4.889357"),
        evses=[evse],
        last_updated=stamp,
    )


async def publish(args: argparse.Namespace) -> None:
    """Connect, optionally create the location, then publish the status changes at the given rate."""
    broker = Broker(args.amqp_url, Topology(args.namespace))
    # Declares the platform's exchanges (idempotent, same arguments) and opens a confirming channel.
    await broker.connect()
    # Sent as the x-request-id header of every message: grep the platform's logs for it.
    request_id = f"example-{uuid.uuid4().hex[:12]}"
    current_request_id.set(request_id)
    print(f"publishing to {args.namespace}.internal, x-request-id {request_id}")
    try:
        if args.create:
            upsert = LocationUpsert(
                event_id=new_event_id(), location=sample_location(args.location_id, args.evse_uid)
            )
            await broker.publish_internal(upsert, message_id=upsert.event_id)
            print(f"locations.location.upsert {args.location_id} (event {upsert.event_id})")
        interval = 1.0 / args.rate
        statuses = itertools.cycle(CYCLE[1:] if args.create else CYCLE)
        for _ in range(args.count):
            await asyncio.sleep(interval)
            event = EvseStatusSet(
                event_id=new_event_id(),
                location_id=args.location_id,
                evse_uid=args.evse_uid,
                status=next(statuses),
                at=now(),
            )
            # Returns once the broker confirmed the message: it is stored and will be delivered.
            await broker.publish_internal(event, message_id=event.event_id)
            print(f"locations.evse.set_status {args.evse_uid} {event.status.value} (event {event.event_id})")
    finally:
        await broker.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Publish EVSE status events to the OCPI platform.")
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        help="RabbitMQ URL (default: $AMQP_URL or the local broker)",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("OCPI_NAMESPACE", "ocpi"),
        help="the deployment's OCPI_NAMESPACE (default: $OCPI_NAMESPACE or ocpi)",
    )
    parser.add_argument("--location-id", default="LOC-0001", help="id of one of our locations")
    parser.add_argument("--evse-uid", default="EVSE-0001-1", help="uid of an EVSE of that location")
    parser.add_argument("--count", type=int, default=10, help="status changes to publish (default 10)")
    parser.add_argument("--rate", type=float, default=1.0, help="status changes per second (default 1)")
    parser.add_argument(
        "--create",
        action="store_true",
        help="first create (or replace!) the location with one EVSE of that uid",
    )
    args = parser.parse_args(argv)
    if args.count < 0 or args.rate <= 0:
        parser.error("--count must not be negative and --rate must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    asyncio.run(publish(parse_args(argv)))


if __name__ == "__main__":
    main()
