"""Operators load our own locations from a JSON file: each becomes an internal upsert message."""

from __future__ import annotations

import uuid

from aiohttp import web

from services.gateway.module_calls import parse_body
from services.gateway.responses import success
from services.gateway.state import gateway_of
from shared.contracts.locations import LocationUpsert
from shared.ocpi.v2_1_1.locations import Location


async def load_locations(request: web.Request) -> web.Response:
    """Validate the whole file first, so a bad file changes nothing, then publish one upsert each."""
    locations = parse_body(await request.read(), list[Location], "list of Locations")
    broker = gateway_of(request).broker
    for location in locations:
        event_id = uuid.uuid4().hex
        await broker.publish_internal(
            LocationUpsert(event_id=event_id, location=location), message_id=event_id
        )
    return success({"published": len(locations)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/locations", load_locations)
