"""Real-time authorization of our tokens by CPO partners (mod_tokens.md 2.2.2):
`POST /ocpi/emsp/2.1.1/tokens/{token_uid}/authorize[?type=RFID|OTHER]`, body an optional
LocationReferences. Validated here (2001 naming the field, nothing sent on); the tokens service decides.

The route sits below the eMSP tokens list, which has no GET of one token, so it clashes with no
route of the module table.
"""

from __future__ import annotations

from aiohttp import web

from services.gateway.access import registered_partner
from services.gateway.module_calls import call_service, parse_body
from services.gateway.module_routes import sender_url
from services.gateway.responses import invalid
from services.gateway.state import gateway_of
from shared.contracts.tokens import RealtimeAuthorize
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import LocationReferences, TokenType
from shared.settings import Role

TOKEN_UID_MAX = TOKENS.level(1).max_id_length


def _token_type(request: web.Request) -> TokenType:
    """The `type` query parameter; RFID when omitted (2.2.2)."""
    raw = request.query.get("type")
    if raw is None or raw == "":
        return TokenType.RFID
    try:
        return TokenType(raw)
    except ValueError:
        choices = " or ".join(kind.value for kind in TokenType)
        raise invalid(f"type must be {choices}, got {raw[:40]!r}") from None


async def authorize(request: web.Request) -> web.Response:
    """Forward a CPO partner's authorization request to the tokens service."""
    principal = await registered_partner(request, Role.CPO)
    token_uid = request.match_info["token_uid"]
    if len(token_uid) > TOKEN_UID_MAX:
        raise invalid(f"token_uid is longer than OCPI allows ({TOKEN_UID_MAX})")
    token_type = _token_type(request)
    body = await request.read()
    # The body is optional: an empty one asks about the token anywhere.
    location = parse_body(body, LocationReferences, "LocationReferences") if body.strip() else None
    message = RealtimeAuthorize(
        token_uid=token_uid, token_type=token_type, location=location, partner_id=principal.partner.id
    )
    return await call_service(gateway_of(request), TOKENS.service, message)


def add_routes(app: web.Application) -> None:
    app.router.add_post(sender_url(TOKENS) + "/{token_uid}/authorize", authorize)
