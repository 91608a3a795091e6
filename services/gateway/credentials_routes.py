"""The credentials module (server side): GET, POST (register), PUT (update), DELETE (unregister)."""

from __future__ import annotations

import structlog
from aiohttp import web

from services.gateway.access import principal_for_handshake, principal_of
from services.gateway.auth import Principal, TokenKind
from services.gateway.endpoints import VERSION
from services.gateway.handshake import discover, our_credentials, parse_credentials
from services.gateway.partners import Announcement, ConnectionStatus, Partner, holding, pending
from services.gateway.publishing import announce
from services.gateway.responses import invalid, not_allowed, success, unauthorized
from services.gateway.state import Gateway, gateway_of
from services.gateway.tokens import new_token, token_hash
from shared.messaging.headers import current_request_id
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.credentials import Credentials

log = structlog.get_logger(__name__)


async def get_credentials(request: web.Request) -> web.Response:
    """Our credentials for the caller; the token shown is the one it called with (we keep only hashes)."""
    await principal_for_handshake(request)
    token = (request.headers.get("Authorization") or "").split(" ", 1)[1].strip()
    return success(our_credentials(gateway_of(request).settings, token))


async def post_credentials(request: web.Request) -> web.Response:
    """Register: only with the TOKEN_A we handed over, once."""
    principal = await principal_of(request)
    if principal.kind is TokenKind.RETIRED:
        raise unauthorized("This token was unregistered; ask for a new TOKEN_A")
    if principal.kind is not TokenKind.TOKEN_A:
        raise not_allowed("Already registered: use PUT to update or DELETE to unregister")
    # Expecting the TOKEN_A still unused: someone else may complete the handshake meanwhile.
    expect: dict[str, object] = {
        "token_a_hash": principal.token_hash,
        "status": ConnectionStatus.PENDING.value,
    }
    return await _connect(request, principal, expect, {"token_a_hash": None}, "partner_registered")


async def put_credentials(request: web.Request) -> web.Response:
    """Update: fetch their endpoints again and rotate the token they use to call us."""
    principal = await principal_of(request)
    if not principal.registered:
        raise not_allowed("Not registered: use POST with the TOKEN_A to register")
    # Its current token, or one we offered in a rotation of ours whose answer we did not store.
    return await _connect(request, principal, holding(principal.token_hash), {}, "partner_updated")


async def _connect(
    request: web.Request,
    principal: Principal,
    expect: dict[str, object],
    extra: dict[str, object],
    event: str,
) -> web.Response:
    """The server side of POST and PUT: fetch their endpoints, issue a new token, retire the old."""
    gateway = gateway_of(request)
    theirs = parse_credentials(await request.read())
    partner = principal.partner
    _check_party(partner, theirs)
    found = await discover(
        gateway.client, theirs.url, theirs.token, partner.role, current_request_id.get() or ""
    )
    token_c = new_token()
    changes = _connection_fields(theirs, found.version, found.endpoints, token_c) | extra
    # The token they called with stops working; replicas also drop what they cached under the new
    # one. The dispatcher hears the new connection.
    old = [principal.token_hash, partner.token_hash, *partner.next_token_hashes]
    owed = pending(Announcement.REGISTERED, [*old, token_hash(token_c)])
    updated = await gateway.partners.update_if(partner.id, expect, changes, owed=owed)
    if updated is None:
        raise not_allowed("The registration changed meanwhile")
    # Committed: the partner gets its token even when the announcement is left to the sweep,
    # otherwise it would be locked out of a registration that stands.
    await announce(gateway, updated, owed)
    log.info(event, partner=updated.name, partner_id=updated.id)
    return success(our_credentials(gateway.settings, token_c))


async def delete_credentials(request: web.Request) -> web.Response:
    """Unregister: the token stops working everywhere; a second DELETE gets 405."""
    gateway = gateway_of(request)
    principal = await principal_of(request)
    if not principal.registered:
        raise not_allowed("Not registered")
    await unregister(gateway, principal)
    return success(None)


async def unregister(gateway: Gateway, principal: Principal) -> None:
    partner = principal.partner
    found = (principal.token_hash, partner.token_hash, *partner.next_token_hashes)
    hashes: list[str] = list(dict.fromkeys(h for h in found if h))
    owed = pending(Announcement.UNREGISTERED, hashes)
    updated = await gateway.partners.update_if(
        partner.id,
        holding(principal.token_hash),
        {
            "status": ConnectionStatus.UNREGISTERED.value,
            "token_hash": None,
            "next_token_hashes": [],
            "their_token": None,
        },
        owed=owed,
        retire=hashes,  # later calls with any of them get 405, not 401
    )
    if updated is None:
        raise not_allowed("Not registered")
    await announce(gateway, updated, owed)
    log.info("partner_unregistered", partner=partner.name, partner_id=partner.id, direction="inbound")


def _check_party(partner: Partner, theirs: Credentials) -> None:
    if not partner.owns(theirs.country_code, theirs.party_id):
        raise invalid(
            f"country_code/party_id {theirs.country_code}/{theirs.party_id} is not the party this token "
            f"was issued for ({partner.country_code}/{partner.party_id})"
        )


def _connection_fields(
    theirs: Credentials, version: str, endpoints: dict[str, str], token: str
) -> dict[str, object]:
    return {
        "status": ConnectionStatus.CONNECTED.value,
        "token_hash": token_hash(token),
        "next_token_hashes": [],
        "their_token": theirs.token,
        "versions_url": theirs.url,
        "version": version,
        "endpoints": endpoints,
        "business_details": to_builtins(theirs.business_details),
    }


def add_routes(app: web.Application) -> None:
    path = f"/ocpi/{VERSION}/credentials"
    app.router.add_get(path, get_credentials)
    app.router.add_post(path, post_credentials)
    app.router.add_put(path, put_credentials)
    app.router.add_delete(path, delete_credentials)
