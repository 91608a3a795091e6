"""Asking the gateway for the token a newly registered partner gave us (review M5).

PartnerRegistered carries no token: tokens never travel on the events exchange, where the company's
systems may listen. The dispatcher asks the gateway (PartnerTokenGet on the rpc exchange, routing
key `credentials`) and gets the token sealed under PARTNER_TOKEN_KEYS for that partner; it stores it
sealed as it came. A gateway that does not answer holds the registration like any dependency away
(the events batch is tried again); keys that do not open the answer hold it too, loudly: the same
PARTNER_TOKEN_KEYS must be given to the gateway and the dispatcher.
"""

from __future__ import annotations

import msgspec
import structlog

from shared.contracts.partners import GATEWAY_SERVICE, PartnerToken, PartnerTokenGet
from shared.messaging.rpc import RpcClient
from shared.messaging.transient import DependencyAway
from shared.sealing import Sealer, SealError

log = structlog.get_logger(__name__)
_decoder = msgspec.json.Decoder(PartnerToken)


class TokenUnavailable(DependencyAway):
    """The gateway could not hand the token over now: the registration is tried again later."""


class PartnerTokens:
    """The sealed token of a registered partner, from the gateway."""

    def __init__(self, rpc: RpcClient, sealer: Sealer) -> None:
        self._rpc = rpc
        self._sealer = sealer

    async def sealed(self, partner_id: str) -> str | None:
        """The partner's token sealed for it; None when the gateway says it is not connected now
        (unregistered or removed since: its PartnerUnregistered follows)."""
        reply = await self._rpc.call(GATEWAY_SERVICE, PartnerTokenGet(partner_id=partner_id))
        if reply.http_status == 404:
            return None
        if reply.status_code != 1000:
            raise TokenUnavailable(f"the gateway answered {reply.status_code} {reply.status_message}")
        try:
            found = _decoder.decode(reply.data)
            if found.partner_id != partner_id:
                raise SealError(f"the answer is about partner {found.partner_id}")
            self._sealer.open(found.sealed, partner_id)
        except (msgspec.DecodeError, SealError) as exc:
            log.error("partner_token_unusable", partner_id=partner_id, reason=str(exc))
            raise TokenUnavailable(f"the gateway's answer about {partner_id} is unusable: {exc}") from exc
        return found.sealed
