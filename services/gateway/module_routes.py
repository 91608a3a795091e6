"""The routes of every object module, built from the module table.

For each module: its Sender interface (`GET` list, and `GET` of one object where the module has it)
under `/ocpi/{sender role}/2.1.1/{module}`, for partners of the receiving role; its Receiver interface
under `/ocpi/{receiver role}/2.1.1/{module}/{country_code}/{party_id}/...`, one route per level and
method, for partners of the sending role, who may only address their own parties. Bodies are
validated here against the level's type, so a 2001 names the partner's field, and forwarded to the
module's service as the validated object re-encoded.
"""

from __future__ import annotations

from functools import partial

import msgspec
from aiohttp import web

from services.gateway.access import registered_partner
from services.gateway.auth import Principal
from services.gateway.endpoints import VERSION
from services.gateway.module_calls import call_service, page_query, parse_body, refuse_future_last_updated
from services.gateway.responses import invalid
from services.gateway.state import gateway_of
from shared.contracts.objects import (
    ReceiverDelete,
    ReceiverGet,
    ReceiverPatch,
    ReceiverPost,
    ReceiverPut,
    SenderGet,
    SenderList,
)
from shared.contracts.partners import Party
from shared.errors import NotOwned
from shared.ocpi.v2_1_1.codec import encode, to_builtins
from shared.ocpi.v2_1_1.modules import MODULES, OcpiModule

# OCPI's CiString(2) and CiString(3) of a party in a receiver URL.
PARTY_ID_LENGTHS = {"country_code": 2, "party_id": 3}


def sender_url(module: OcpiModule) -> str:
    return f"/ocpi/{module.sender_role.value.lower()}/{VERSION}/{module.name}"


def receiver_url(module: OcpiModule) -> str:
    return f"/ocpi/{module.receiver_role.value.lower()}/{VERSION}/{module.name}"


def _path(request: web.Request, module: OcpiModule) -> list[str]:
    """The object ids of the URL, one per level, each within its level's length."""
    path: list[str] = []
    for level in module.levels:
        value = request.match_info.get(level.name)
        if value is None:
            break
        if len(value) > level.max_id_length:
            raise invalid(f"{level.name} is longer than OCPI allows ({level.max_id_length})")
        path.append(value)
    return path


def _owned_party(request: web.Request, principal: Principal) -> Party:
    """The party of a Receiver URL: each id within its length (2001), then one of the partner's."""
    country_code, party_id = request.match_info["country_code"], request.match_info["party_id"]
    # Lengths first: no party is that long, so ownership would answer 403 for what is a bad request.
    for name, value in (("country_code", country_code), ("party_id", party_id)):
        if len(value) > PARTY_ID_LENGTHS[name]:
            raise invalid(f"{name} is longer than OCPI allows ({PARTY_ID_LENGTHS[name]})")
    if not principal.partner.owns(country_code, party_id):
        raise NotOwned(f"{country_code}/{party_id} is not a party of this partner")
    return Party(country_code, party_id)


def _same_id(field: str, in_body: object, in_url: str) -> None:
    if isinstance(in_body, str) and in_body != in_url:
        raise invalid(f"{field} in the body ({in_body!r}) differs from the one in the URL ({in_url!r})")


# ---- Sender interface: our objects, for partners of the receiving role ------------------------------


async def sender_list(module: OcpiModule, request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    principal = await registered_partner(request, module.receiver_role)
    query = page_query(request, gateway.settings.page_limit_max)
    if module.list_needs_date_from and query.date_from is None:
        raise invalid(f"date_from is required for {module.name}")
    message = SenderList(
        module=module.name,
        offset=query.offset,
        limit=query.limit,
        date_from=query.date_from,
        date_to=query.date_to,
        cursor=query.cursor,
        partner_id=principal.partner.id,
        parties=principal.partner.parties,
    )
    base_url = f"{gateway.settings.public_url}{request.path}"
    return await call_service(gateway, module.service, message, base_url=base_url)


async def sender_get(module: OcpiModule, request: web.Request) -> web.Response:
    await registered_partner(request, module.receiver_role)
    message = SenderGet(module=module.name, path=_path(request, module))
    return await call_service(gateway_of(request), module.service, message)


# ---- Receiver interface: partners' objects, pushed by partners of the sending role ------------------


async def receiver_get(module: OcpiModule, request: web.Request) -> web.Response:
    principal = await registered_partner(request, module.sender_role)
    party = _owned_party(request, principal)
    message = ReceiverGet(
        module=module.name, party=party, path=_path(request, module), partner_id=principal.partner.id
    )
    return await call_service(gateway_of(request), module.service, message)


async def receiver_put(module: OcpiModule, request: web.Request) -> web.Response:
    principal = await registered_partner(request, module.sender_role)
    party = _owned_party(request, principal)
    path = _path(request, module)
    level = module.level(len(path))
    obj = parse_body(await request.read(), level.object_type, level.object_type.__name__)
    _same_id(level.id_field, getattr(obj, level.id_field), path[-1])
    # Checked on the body's object, so that the path names the field in the partner's JSON.
    refuse_future_last_updated(obj)
    message = ReceiverPut(
        module=module.name,
        party=party,
        path=path,
        body=msgspec.Raw(encode(obj)),
        partner_id=principal.partner.id,
    )
    return await call_service(gateway_of(request), module.service, message)


async def receiver_patch(module: OcpiModule, request: web.Request) -> web.Response:
    principal = await registered_partner(request, module.sender_role)
    party = _owned_party(request, principal)
    path = _path(request, module)
    level = module.level(len(path))
    what = f"{level.object_type.__name__} patch"
    patch = parse_body(await request.read(), level.patch_type, what)
    _same_id(level.id_field, getattr(patch, level.id_field), path[-1])
    refuse_future_last_updated(patch)
    if not to_builtins(patch):
        raise invalid("PATCH body names no field")
    message = ReceiverPatch(
        module=module.name,
        party=party,
        path=path,
        body=msgspec.Raw(encode(patch)),
        partner_id=principal.partner.id,
    )
    return await call_service(gateway_of(request), module.service, message)


async def receiver_post(module: OcpiModule, request: web.Request) -> web.Response:
    """POST of a new object (a CDR): it belongs to the posting partner's own party (2.1.1 CDRs name
    no party), and the answer's `Location` is where the partner can GET it again."""
    principal = await registered_partner(request, module.sender_role)
    partner = principal.partner
    party = Party(partner.country_code, partner.party_id)
    level = module.level(1)
    obj = parse_body(await request.read(), level.object_type, level.object_type.__name__)
    refuse_future_last_updated(obj)
    message = ReceiverPost(
        module=module.name, party=party, body=msgspec.Raw(encode(obj)), partner_id=partner.id
    )
    gateway = gateway_of(request)
    location = f"{gateway.settings.public_url}{receiver_url(module)}"
    return await call_service(gateway, module.service, message, location_base=location)


async def receiver_delete(module: OcpiModule, request: web.Request) -> web.Response:
    principal = await registered_partner(request, module.sender_role)
    party = _owned_party(request, principal)
    message = ReceiverDelete(
        module=module.name, party=party, path=_path(request, module), partner_id=principal.partner.id
    )
    return await call_service(gateway_of(request), module.service, message)


RECEIVER_HANDLERS = {
    "GET": receiver_get,
    "PUT": receiver_put,
    "PATCH": receiver_patch,
    "DELETE": receiver_delete,
}
# Methods addressed to the module's collection URL, not to an object below a party.
COLLECTION_METHODS = {"POST": receiver_post}


def add_module_routes(app: web.Application, module: OcpiModule) -> None:
    """The Sender and Receiver routes of one module, as the table describes it."""
    app.router.add_get(sender_url(module), partial(sender_list, module))
    for method in sorted(module.receiver_methods & COLLECTION_METHODS.keys()):
        app.router.add_route(method, receiver_url(module), partial(COLLECTION_METHODS[method], module))
    suffix = ""
    for level in module.levels:
        suffix += "/{" + level.name + "}"
        if module.sender_get:
            app.router.add_get(sender_url(module) + suffix, partial(sender_get, module))
        for method in sorted(module.receiver_methods - COLLECTION_METHODS.keys()):
            route = receiver_url(module) + "/{country_code}/{party_id}" + suffix
            app.router.add_route(method, route, partial(RECEIVER_HANDLERS[method], module))


def add_routes(app: web.Application) -> None:
    """Every module of the table; access rules pick the partners that may use each interface."""
    for module in MODULES.values():
        add_module_routes(app, module)
