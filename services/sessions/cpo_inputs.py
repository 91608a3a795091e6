"""The sessions service's input queue (CPO side): the charger backend's events, a batch at a time.

Starts are completed with their facts first (cpo_lookups.py), then every input goes through the
generic input loop (shared/modules/sender.apply_inputs: one read, one bulk write, idempotent by
event id) with the rules of cpo_rules.py. An ended session is announced twice: SessionChanged for
the dispatcher (the final PATCH) and SessionEnded for the cdrs service.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import structlog

from services.sessions.cpo_lookups import StartLookups
from services.sessions.cpo_rules import SessionInputs, SessionRuleInput, Start, session_changed
from shared.contracts.base import Message, tag_of
from shared.contracts.sessions import ChargingSession, SessionEnded, SessionInput, SessionStart
from shared.messaging.batch import request_id_of
from shared.messaging.consumer import Delivery
from shared.messaging.headers import current_request_id
from shared.modules.sender import Rejected, SenderStore
from shared.modules.service import apply_indexed, refused_for_its_clock

log = structlog.get_logger(__name__)
_decoder = msgspec.json.Decoder(SessionInput)


class SessionInputHandler:
    """Handles a batch of the sessions input queue; the verdict of each delivery."""

    def __init__(
        self,
        store: SenderStore[ChargingSession],
        rules: SessionInputs,
        lookups: StartLookups,
        publish: Callable[[Message], Awaitable[None]],
    ) -> None:
        self._store = store
        self._rules = rules
        self._lookups = lookups
        self._publish = publish

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[str | None]:
        began = time.perf_counter()
        verdicts: list[str | None] = [None] * len(deliveries)
        inputs: list[tuple[int, SessionRuleInput]] = []
        for index, delivery in enumerate(deliveries):
            try:
                message = _decoder.decode(delivery.body)
            except (msgspec.DecodeError, RecursionError) as exc:
                verdicts[index] = f"invalid {delivery.routing_key or 'message'}: {exc}"
                continue
            verdicts[index] = refused_for_its_clock(message)
            if verdicts[index] is not None:
                continue
            if isinstance(message, SessionStart):
                try:
                    inputs.append((index, Start(message, await self._lookups.facts(message))))
                except Rejected as exc:
                    verdicts[index] = f"{tag_of(SessionStart)} rejected: {exc}"
                continue
            inputs.append((index, message))
        outcome = await apply_indexed(self._store, self._rules, inputs, verdicts)
        changed_by = {
            self._rules.key_of(applied): request_id_of(deliveries[index])
            for position, (index, applied) in enumerate(inputs)
            if position not in outcome.rejected
        }
        for event, key in zip(outcome.events, outcome.keys, strict=True):
            request_id = changed_by.get(key)
            if request_id:
                current_request_id.set(request_id)
            for announced in _announcements(event):
                await self._publish(announced)
        log.info(
            "session_inputs_handled",
            inputs=len(inputs),
            versions=outcome.versions,
            ms=round(1000 * (time.perf_counter() - began), 1),
        )
        return verdicts


def _announcements(event: Any) -> list[Message]:
    """What one announced state becomes: an ended session is also a change for the dispatcher."""
    if isinstance(event, SessionEnded):
        return [session_changed(event.charging, event.version, event.changed), event]
    return [event]
