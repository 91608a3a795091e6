"""The gateway's answer to the dispatcher's PartnerTokenGet, for tests that run a dispatcher alone.

The dispatcher asks the gateway for a registered partner's token (it is not in PartnerRegistered);
this server answers it as the gateway does, sealed under the test's keys, for every partner id the
test gave a token (`tokens`), and 404 for any other.
"""

from __future__ import annotations

import msgspec

from shared.contracts.base import Outcome, error, ok
from shared.contracts.partners import GATEWAY_SERVICE, PartnerToken, PartnerTokenGet
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcServer
from shared.sealing import Sealer, new_key

# One key for every dispatcher a test process starts alone.
TEST_KEYS = new_key()
_decoder = msgspec.json.Decoder(PartnerTokenGet)


def gateway_tokens(
    broker: Broker, tokens: dict[str, str] | None = None, default: str | None = None
) -> RpcServer:
    """An RpcServer on the gateway's routing key answering from `tokens`, else with `default`."""
    sealer = Sealer.from_setting(TEST_KEYS)
    known = tokens if tokens is not None else {}

    async def handle(body: bytes) -> Outcome:
        request = _decoder.decode(body)
        token = known.get(request.partner_id, default)
        if token is None:
            return Outcome(reply=error(2000, "partner not connected", http_status=404))
        sealed = sealer.seal(token, request.partner_id)
        return Outcome(reply=ok(PartnerToken(partner_id=request.partner_id, sealed=sealed)))

    return RpcServer(broker, GATEWAY_SERVICE, handle)
