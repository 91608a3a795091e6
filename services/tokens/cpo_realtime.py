"""Real-time authorization at the token's eMSP (CPO side), through the dispatcher, within a deadline."""

from __future__ import annotations

import msgspec

from services.tokens.cpo_cache import TokenKey
from services.tokens.cpo_policy import NoAnswer, RealtimeAnswer, read_reply
from shared.contracts.tokens import PartnerAuthorize
from shared.messaging.rpc import RpcClient, RpcTimeout
from shared.ocpi.v2_1_1.tokens import LocationReferences

# The service that holds the partners' connections and POSTs to their /tokens/{uid}/authorize.
DISPATCHER = "dispatcher"


class RealtimeAuthorizer:
    """Asks a connection (the token's eMSP, or a hub) whether a token may charge; never raises."""

    def __init__(self, rpc: RpcClient, deadline: float) -> None:
        self._rpc = rpc
        self._deadline = deadline

    async def ask(
        self, partner_id: str, key: TokenKey, location: LocationReferences | None
    ) -> RealtimeAnswer:
        """The connection's answer, or NoAnswer when none comes within the deadline."""
        uid, token_type = key
        request = PartnerAuthorize(
            partner_id=partner_id, token_uid=uid, token_type=token_type, location=location
        )
        try:
            reply = await self._rpc.call(DISPATCHER, request, wait_for=self._deadline)
        except RpcTimeout as exc:  # RpcUnavailable too: the broker or the dispatcher is away
            return NoAnswer(str(exc))
        except msgspec.ValidationError as exc:
            return NoAnswer(f"unreadable reply from the dispatcher: {exc}")
        return read_reply(reply)
