"""The gateway answers the dispatcher's PartnerTokenGet: the token a partner gave us, sealed.

The gateway owns the partner registry, so it is the one process that knows the token each partner
gave us in the handshake. Events about a registration carry the partner id only (review M5); the
dispatcher, which calls partners too, asks here and gets the token sealed under PARTNER_TOKEN_KEYS,
so it never crosses the broker in clear either. Any gateway replica answers (they share the
registry).
"""

from __future__ import annotations

import msgspec

from services.gateway.partners import ConnectionStatus
from services.gateway.state import Gateway
from shared.contracts.base import Outcome, error, ok
from shared.contracts.partners import GATEWAY_SERVICE, PartnerToken, PartnerTokenGet
from shared.messaging.rpc import RpcServer
from shared.ocpi.v2_1_1.status import OcpiStatus

_decoder = msgspec.json.Decoder(PartnerTokenGet)


async def answer(gateway: Gateway, request: PartnerTokenGet) -> Outcome:
    """The partner's token sealed for it, or 404/2000 when it is not connected now (unregistered,
    removed, or never registered: the dispatcher then forgets the registration it asked about)."""
    partner = await gateway.partners.get(request.partner_id)
    if (
        partner is None
        or partner.removed_at is not None
        or partner.status is not ConnectionStatus.CONNECTED
        or not partner.their_token
    ):
        return Outcome(reply=error(OcpiStatus.CLIENT_ERROR, "partner not connected", http_status=404))
    sealed = gateway.sealer.seal(partner.their_token, partner.id)
    return Outcome(reply=ok(PartnerToken(partner_id=partner.id, sealed=sealed)))


def token_server(gateway: Gateway) -> RpcServer:
    """The gateway's request queue (`<ns>.rpc.credentials`): PartnerTokenGet only."""

    async def handle(body: bytes) -> Outcome:
        try:
            request = _decoder.decode(body)
        except msgspec.ValidationError as exc:
            return Outcome(reply=error(OcpiStatus.INVALID_OR_MISSING_PARAMETERS, f"invalid request: {exc}"))
        return await answer(gateway, request)

    return RpcServer(gateway.broker, GATEWAY_SERVICE, handle)
