"""Which kind of token may do what: the rules of the handshake and of module access."""

from __future__ import annotations

from aiohttp import web

from services.gateway.auth import Principal, TokenKind, authenticate
from services.gateway.partners import ConnectionStatus
from services.gateway.responses import OcpiError, unauthorized
from services.gateway.state import gateway_of
from shared.settings import Role


async def principal_of(request: web.Request) -> Principal:
    gateway = gateway_of(request)
    return await authenticate(
        request.headers.get("Authorization"),
        gateway.partners,
        gateway.cache,
        gateway.budgets,
        token_a_ttl=gateway.settings.token_a_ttl,
    )


async def principal_for_handshake(request: web.Request) -> Principal:
    """Versions, version details and credentials GET: TOKEN_A until the handshake, then our token."""
    principal = await principal_of(request)
    if principal.kind is TokenKind.RETIRED:
        raise unauthorized("This token was unregistered")
    return principal


async def registered_partner(request: web.Request, partner_role: Role) -> Principal:
    """Module endpoints: only a connected partner of the role this interface serves."""
    principal = await principal_of(request)
    if (
        principal.kind is not TokenKind.CREDENTIALS
        or principal.partner.status is not ConnectionStatus.CONNECTED
    ):
        raise unauthorized("This token is not valid for this module")
    if principal.partner.role is not partner_role:
        raise OcpiError(2000, f"This interface serves {partner_role.value} partners", http_status=403)
    return principal
