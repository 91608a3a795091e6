"""Operators load our own objects from a JSON file: each becomes an internal upsert message.

`POST /admin/locations`, `POST /admin/tariffs` and `POST /admin/tokens` take a JSON list of 2.1.1
objects. The whole file is validated first, so a bad file changes nothing; then one upsert per object
is published to the module's service, exactly as the company's systems would publish it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
import structlog
from aiohttp import web

from services.gateway.module_calls import parse_body
from services.gateway.responses import success
from services.gateway.state import Gateway, gateway_of
from shared.contracts.base import Message
from shared.contracts.locations import LocationUpsert
from shared.contracts.objects import SenderList
from shared.contracts.tariffs import TariffUpsert
from shared.contracts.tokens import TokenUpsert
from shared.messaging.rpc import RpcTimeout, RpcUnavailable
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.tokens import Token

log = structlog.get_logger(__name__)
PAGE = 1000
MAX_PAGES = 10_000


class _WithId(msgspec.Struct):
    id: str


@dataclass(frozen=True)
class Load:
    """How a file of one module's objects becomes upsert messages."""

    what: str
    file_type: Any  # list[<the module's object type>]
    upsert: Callable[[str, Any], Message]


def _location_upsert(event_id: str, location: Location) -> Message:
    return LocationUpsert(event_id=event_id, location=location)


def _tariff_upsert(event_id: str, tariff: Tariff) -> Message:
    return TariffUpsert(event_id=event_id, tariff=tariff)


def _token_upsert(event_id: str, token: Token) -> Message:
    return TokenUpsert(event_id=event_id, token=token)


LOADS: dict[str, Load] = {
    "locations": Load("list of Locations", list[Location], _location_upsert),
    "tariffs": Load("list of Tariffs", list[Tariff], _tariff_upsert),
    "tokens": Load("list of Tokens", list[Token], _token_upsert),
}


def unknown_tariff_ids(locations: list[Location], tariff_ids: set[str]) -> list[str]:
    """The tariff ids the connectors of `locations` name that are not among `tariff_ids`."""
    named = {
        connector.tariff_id
        for location in locations
        for evse in location.evses or ()
        for connector in evse.connectors
        if connector.tariff_id is not None
    }
    return sorted(named - tariff_ids)


_ids = msgspec.json.Decoder(list[_WithId])


async def our_tariff_ids(gateway: Gateway) -> set[str]:
    """The ids of our tariffs, paged from the tariffs service (a service, never its database)."""
    ids: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        request = SenderList(module="tariffs", limit=PAGE, cursor=cursor)
        reply = await gateway.rpc.call("tariffs", request)
        ids.update(item.id for item in _ids.decode(reply.data))
        cursor = (reply.next_query or {}).get("cursor")
        if cursor is None:
            break
    return ids


async def load(module: str, request: web.Request) -> web.Response:
    """Validate the whole file first, so a bad file changes nothing, then publish one upsert each."""
    spec = LOADS[module]
    objects: list[Any] = parse_body(await request.read(), spec.file_type, spec.what)
    gateway = gateway_of(request)
    for obj in objects:
        event_id = uuid.uuid4().hex
        await gateway.broker.publish_internal(spec.upsert(event_id, obj), message_id=event_id)
    result: dict[str, Any] = {"published": len(objects)}
    if module == "locations":
        result.update(await _tariff_check(gateway, objects))
    return success(result)


async def _tariff_check(gateway: Gateway, locations: list[Location]) -> dict[str, Any]:
    """Connectors may name a tariff we do not have (yet): accepted, with a warning."""
    try:
        unknown = unknown_tariff_ids(locations, await our_tariff_ids(gateway))
    except (RpcUnavailable, RpcTimeout, msgspec.DecodeError) as exc:
        log.warning("tariff_check_skipped", reason=str(exc))
        return {"warnings": [f"tariff ids not checked: the tariffs service did not answer ({exc})"]}
    if not unknown:
        return {}
    log.warning("unknown_tariff_ids", tariff_ids=unknown)
    return {"warnings": [f"connectors name tariffs we do not have: {', '.join(unknown)}"]}


def add_routes(app: web.Application) -> None:
    for module in LOADS:
        app.router.add_post(f"/admin/{module}", partial(load, module))
