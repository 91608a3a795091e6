"""Locations: our Sender interface (for eMSP partners) and our Receiver interface (for CPO partners)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from services.gateway.access import registered_partner
from services.gateway.auth import Principal
from services.gateway.endpoints import VERSION
from services.gateway.module_calls import call_service, page_query, parse_body, refuse_future_last_updated
from services.gateway.responses import OcpiError, invalid
from services.gateway.state import gateway_of
from shared.contracts.locations import ReceiverGet, ReceiverPatch, ReceiverPut, SenderGet, SenderList
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.locations import EVSE, Connector, ConnectorPatch, EVSEPatch, Location, LocationPatch
from shared.settings import Role

SERVICE = "locations"
SENDER = f"/ocpi/cpo/{VERSION}/locations"
RECEIVER = f"/ocpi/emsp/{VERSION}/locations"


async def sender_list(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    await registered_partner(request, Role.EMSP)
    query = page_query(request, gateway.settings.page_limit_max)
    message = SenderList(
        offset=query.offset,
        limit=query.limit,
        date_from=query.date_from,
        date_to=query.date_to,
        cursor=query.cursor,
    )
    return await call_service(
        gateway, SERVICE, message, base_url=f"{gateway.settings.public_url}{request.path}"
    )


async def sender_get(request: web.Request) -> web.Response:
    await registered_partner(request, Role.EMSP)
    ids = request.match_info
    message = SenderGet(
        location_id=ids["location_id"], evse_uid=ids.get("evse_uid"), connector_id=ids.get("connector_id")
    )
    return await call_service(gateway_of(request), SERVICE, message)


class PartyPath(msgspec.Struct, frozen=True, kw_only=True):
    """The ids in a receiver URL: `{country_code}/{party_id}/{location_id}[/{evse_uid}[/{connector_id}]]`."""

    country_code: str
    party_id: str
    location_id: str
    evse_uid: str | None = None
    connector_id: str | None = None


def _owned_path(request: web.Request, principal: Principal) -> PartyPath:
    ids = dict(request.match_info)
    if not principal.partner.owns(ids["country_code"], ids["party_id"]):
        raise OcpiError(
            2000, f"{ids['country_code']}/{ids['party_id']} is not a party of this partner", http_status=403
        )
    for key, value in ids.items():
        if len(value) > 39:
            raise invalid(f"{key} is longer than OCPI allows")
    return PartyPath(**ids)


async def receiver_get(request: web.Request) -> web.Response:
    ids = _owned_path(request, await registered_partner(request, Role.CPO))
    return await call_service(gateway_of(request), SERVICE, ReceiverGet(**msgspec.structs.asdict(ids)))


async def receiver_put(request: web.Request) -> web.Response:
    ids = _owned_path(request, await registered_partner(request, Role.CPO))
    body = await request.read()
    where = msgspec.structs.asdict(ids)
    if ids.connector_id is not None:
        connector = parse_body(body, Connector, "Connector")
        _same_id("id", connector.id, ids.connector_id)
        message = ReceiverPut(**where, connector=connector)
    elif ids.evse_uid is not None:
        evse = parse_body(body, EVSE, "EVSE")
        _same_id("uid", evse.uid, ids.evse_uid)
        message = ReceiverPut(**where, evse=evse)
    else:
        location = parse_body(body, Location, "Location")
        _same_id("id", location.id, ids.location_id)
        message = ReceiverPut(**where, location=location)
    # Checked on the body's object, so that the path names the field in the partner's JSON.
    refuse_future_last_updated(message.location or message.evse or message.connector)
    return await call_service(gateway_of(request), SERVICE, message)


async def receiver_patch(request: web.Request) -> web.Response:
    ids = _owned_path(request, await registered_partner(request, Role.CPO))
    body = await request.read()
    patch: LocationPatch | EVSEPatch | ConnectorPatch
    if ids.connector_id is not None:
        patch = parse_body(body, ConnectorPatch, "Connector patch")
        _same_id("id", patch.id, ids.connector_id)
    elif ids.evse_uid is not None:
        patch = parse_body(body, EVSEPatch, "EVSE patch")
        _same_id("uid", patch.uid, ids.evse_uid)
    else:
        patch = parse_body(body, LocationPatch, "Location patch")
        _same_id("id", patch.id, ids.location_id)
    refuse_future_last_updated(patch)
    fields = to_builtins(patch, keep_datetimes=False)
    if not fields:
        raise invalid("PATCH body names no field")
    return await call_service(
        gateway_of(request), SERVICE, ReceiverPatch(**msgspec.structs.asdict(ids), patch=fields)
    )


def _same_id(field: str, in_body: object, in_url: str) -> None:
    if isinstance(in_body, str) and in_body != in_url:
        raise invalid(f"{field} in the body ({in_body!r}) differs from the one in the URL ({in_url!r})")


def add_routes(app: web.Application) -> None:
    app.router.add_get(SENDER, sender_list)
    for suffix in ("/{location_id}", "/{location_id}/{evse_uid}", "/{location_id}/{evse_uid}/{connector_id}"):
        app.router.add_get(SENDER + suffix, sender_get)
        path = RECEIVER + "/{country_code}/{party_id}" + suffix
        app.router.add_get(path, receiver_get)
        app.router.add_put(path, receiver_put)
        app.router.add_patch(path, receiver_patch)
