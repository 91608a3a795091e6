"""Every replica's own copy of PartnerTokenChanged: keeps its token cache honest.

An auto-deleted exclusive queue per replica (like the gateway's revocations), declared when the
service is built so that no change stored between the first authorization and the consumer's start
is missed. Events missed while the broker was away cannot be replayed: the cache is emptied when
the connection comes back.
"""

from __future__ import annotations

import msgspec
import structlog
from aio_pika.abc import AbstractQueue

from services.tokens.cpo_cache import TokenCache
from shared.contracts.base import tag_of
from shared.contracts.partners import Party
from shared.contracts.tokens import PartnerTokenChanged
from shared.messaging.broker import Broker
from shared.messaging.consumer import Consumer, Delivery, PoisonMessage
from shared.messaging.topology import declare_broadcast_queue

log = structlog.get_logger(__name__)
_changed = msgspec.json.Decoder(PartnerTokenChanged)


class TokenChangesListener:
    """Applies PartnerTokenChanged events (any replica's) to this replica's cache."""

    def __init__(self, broker: Broker, queue: AbstractQueue, cache: TokenCache) -> None:
        self._broker = broker
        self._cache = cache
        self._consumer = Consumer(broker, queue, self._on_changed, "tokens.partner-token-changes")

    @classmethod
    async def declare(cls, broker: Broker, cache: TokenCache) -> TokenChangesListener:
        """Bind this replica's queue now; consuming starts with the component."""
        channel = await broker.channel(prefetch=256)
        events = await channel.get_exchange(broker.topology.events_exchange)
        queue = await declare_broadcast_queue(channel, [(events, tag_of(PartnerTokenChanged))])
        return cls(broker, queue, cache)

    async def _on_changed(self, delivery: Delivery) -> None:
        try:
            event = _changed.decode(delivery.body)
        except msgspec.DecodeError as exc:
            raise PoisonMessage(str(exc)) from exc
        party = Party(event.country_code, event.party_id)
        self._cache.changed(party, event.token, event.partner_id, event.version)

    def _on_reconnected(self, _: object) -> None:
        self._cache.clear()
        log.info("token_cache_cleared", reason="broker reconnected: changes may have been missed")

    async def start(self) -> None:
        self._broker.connection.reconnect_callbacks.add(self._on_reconnected)
        await self._consumer.start()

    async def stop(self) -> None:
        self._broker.connection.reconnect_callbacks.discard(self._on_reconnected)
        await self._consumer.stop()

    async def ready(self) -> bool:
        return await self._consumer.ready()
