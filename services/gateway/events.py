"""What the gateway consumes: token revocations (every replica) and partner sync states (one replica)."""

from __future__ import annotations

import msgspec
import structlog

from services.gateway.state import Gateway
from shared.contracts.partners import PartnerSyncStateChanged, TokensRevoked
from shared.messaging.consumer import Consumer, Delivery, PoisonMessage
from shared.messaging.queues import GATEWAY_PARTNER_STATES, declare
from shared.messaging.topology import declare_broadcast_queue

log = structlog.get_logger(__name__)
_revoked = msgspec.json.Decoder(TokensRevoked)
_sync_state = msgspec.json.Decoder(PartnerSyncStateChanged)
# The dispatcher keeps a partner's own words short already (L8); this bounds the stored copy anyway.
SYNC_DETAIL_MAX = 1000


async def start_consumers(gateway: Gateway) -> list[Consumer]:
    broker = gateway.broker
    topology = broker.topology
    channel = await broker.channel(prefetch=64)
    events = await channel.get_exchange(topology.events_exchange)
    revocations = await declare_broadcast_queue(channel, [(events, "credentials.token.revoked")])
    states = await declare(channel, topology, broker.exchanges, GATEWAY_PARTNER_STATES)

    async def on_revoked(delivery: Delivery) -> None:
        try:
            gateway.cache.drop(_revoked.decode(delivery.body).token_hashes)
        except msgspec.DecodeError as exc:
            raise PoisonMessage(str(exc)) from exc

    async def on_sync_state(delivery: Delivery) -> None:
        try:
            event = _sync_state.decode(delivery.body)
        except msgspec.DecodeError as exc:
            raise PoisonMessage(str(exc)) from exc
        detail = event.detail[:SYNC_DETAIL_MAX]
        # Events come concurrently and through any replica: an older state never replaces a newer one.
        fields = {"partner_id": event.partner_id, "state": event.state.value, "at": event.at.isoformat()}
        if await gateway.partners.set_sync_state(event.partner_id, event.state, detail, event.at):
            log.info("partner_sync_state", detail=detail, **fields)
        else:
            # A newer state is stored (or the partner is gone): this one is history.
            log.info("partner_sync_state_not_stored", **fields)

    consumers = [
        Consumer(broker, revocations, on_revoked, "gateway.revocations"),
        Consumer(broker, states, on_sync_state, "gateway.partner-states"),
    ]
    for consumer in consumers:
        await consumer.start()
    return consumers
