"""The CPO side of CDRs: our CDRs, made from ended sessions and delivered once to the token's eMSP.

The cdrs service's own queue (`cdrs.events`, on the events exchange) takes SessionEnded (the CDR is
made, stored and announced as CdrCreated) and CdrDelivered (the dispatcher's word that the eMSP
took it, with its Location). A partner's GET of the list sees only the CDRs of its own tokens.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import structlog

from services.cdrs.cpo_rules import CdrInput, CdrInputs, Ended, OwnCdr, Taken, updated_of
from shared.contracts.base import Message
from shared.contracts.cdrs import CdrDelivered
from shared.contracts.sessions import SessionEnded
from shared.messaging.consumer import Delivery
from shared.modules.mongo import MongoSenderStore
from shared.modules.sender import SenderStore
from shared.modules.service import apply_indexed
from shared.service import ServiceContext

log = structlog.get_logger(__name__)
OWN_CDRS = "own_cdrs"
_decoder = msgspec.json.Decoder(SessionEnded | CdrDelivered)


async def own_cdrs(ctx: ServiceContext) -> MongoSenderStore[OwnCdr]:
    """`own_cdrs`, with its indexes in place."""
    store = MongoSenderStore(ctx.db, OWN_CDRS, OwnCdr, "own", updated_of, owner_path="own.owner")
    await store.ensure_indexes()
    return store


class CdrEventHandler:
    """Handles a batch of the cdrs events queue; the verdict of each delivery."""

    def __init__(self, store: SenderStore[OwnCdr], publish: Callable[[Message], Awaitable[None]]) -> None:
        self._store = store
        self._rules = CdrInputs()
        self._publish = publish

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[str | None]:
        began = time.perf_counter()
        verdicts: list[str | None] = [None] * len(deliveries)
        inputs: list[tuple[int, CdrInput]] = []
        for index, delivery in enumerate(deliveries):
            try:
                event = _decoder.decode(delivery.body)
            except (msgspec.DecodeError, RecursionError) as exc:
                verdicts[index] = f"invalid {delivery.routing_key or 'message'}: {exc}"
                continue
            inputs.append((index, Ended(event) if isinstance(event, SessionEnded) else Taken(event)))
        outcome = await apply_indexed(self._store, self._rules, inputs, verdicts)
        for announced in outcome.events:
            await self._publish(announced)
        log.info(
            "cdr_events_handled",
            events=len(inputs),
            versions=outcome.versions,
            ms=round(1000 * (time.perf_counter() - began), 1),
        )
        return verdicts
