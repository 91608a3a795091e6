"""Composition root of the locations service: repository, the gateway's RPC server, the input queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, get_args

import msgspec
import structlog

from services.locations.announcer import Announcer
from services.locations.handlers import InputsOutcome, dispatch, handle_location_inputs
from services.locations.inputs import location_id_of
from services.locations.mongo import mongo_repository
from services.locations.repository import UNSTORABLE, Repository
from shared.contracts.base import Message, Outcome, tag_of
from shared.contracts.locations import LocationChanged, LocationInput, LocationsRequest, PartnerLocationImport
from shared.messaging.batch import BatchConsumer, request_id_of
from shared.messaging.broker import Broker
from shared.messaging.consumer import Delivery
from shared.messaging.headers import current_request_id
from shared.messaging.queues import LOCATIONS_INPUT, declare
from shared.rpc_service import rpc_server
from shared.service import Component, ServiceContext

log = structlog.get_logger(__name__)

SERVICE = "locations"
# The largest batch of inputs applied together: at most RECENT_EVENTS, so that within a replica
# the inputs stored after a redelivered one (the rest of its batch) cannot push its id out. Across
# replicas more may have been stored; the last_updated guard keeps it from undoing them. The
# channel holds two batches.
INPUT_BATCH = 200
REQUEST_TYPES: tuple[type[Message], ...] = get_args(LocationsRequest)


class InputHandler:
    """Handles a batch of the input queue: decode, apply our inputs together, store imports, publish.

    A message whose values the database can never store (UNSTORABLE) is dead-lettered with the
    reason rather than retried. Msgspec bounds on the contracts refuse most such values at decode
    time already. Imports are stored one by one, so their storage errors are theirs. Our inputs are
    stored in one bulk write: a storage error there is attributed only when the batch holds one
    input; with more, it is raised, so that the batch consumer tries the messages one by one.
    """

    def __init__(self, broker: Broker, repo: Repository, announcer: Announcer) -> None:
        self._broker = broker
        self._repo = repo
        self._announcer = announcer
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(LocationInput | PartnerLocationImport)

    async def _publish(self, event: Message, changed_by: dict[str, str]) -> None:
        # Run as its own task by gather: the request id set here is this publish's only.
        if isinstance(event, LocationChanged) and event.location.id in changed_by:
            current_request_id.set(changed_by[event.location.id])
        await self._broker.publish_event(event)

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[str | None]:
        """The verdict of every delivery: None when handled, else why it is dead-lettered."""
        began = time.perf_counter()
        verdicts: list[str | None] = [None] * len(deliveries)
        inputs: list[tuple[int, LocationInput]] = []
        imports: list[tuple[int, PartnerLocationImport]] = []
        for index, delivery in enumerate(deliveries):
            try:
                message = self._decoder.decode(delivery.body)
            except (msgspec.DecodeError, RecursionError) as exc:
                verdicts[index] = f"invalid {delivery.routing_key or 'message'}: {exc}"
                continue
            if isinstance(message, PartnerLocationImport):
                imports.append((index, message))
            else:
                inputs.append((index, message))
        try:
            outcome = await handle_location_inputs([message for _, message in inputs], self._repo)
        except UNSTORABLE as exc:
            if len(inputs) != 1:
                raise  # not attributable to one message: the batch consumer tries them one by one
            index, message = inputs[0]
            verdicts[index] = _unstorable(message, exc)
            outcome = InputsOutcome()
        for position, reason in outcome.rejected.items():
            index, message = inputs[position]
            verdicts[index] = f"{tag_of(type(message))} rejected: {reason}"
        stored = time.perf_counter()
        events = list(outcome.events)
        # Imports come from re-sync pulls, a page at a time: one by one is fast enough.
        for index, imported in imports:
            try:
                events.extend((await dispatch(imported, self._repo)).events)
            except UNSTORABLE as exc:
                verdicts[index] = _unstorable(imported, exc)
        # Each LocationChanged carries the request id of the newest input that changed the location.
        changed_by = {
            location_id_of(message): request_id_of(deliveries[index])
            for position, (index, message) in enumerate(inputs)
            if position not in outcome.rejected
        }
        await asyncio.gather(*(self._publish(event, changed_by) for event in events))
        self._announcer.published(events)
        versions = {
            event.location.id: event.version for event in events if isinstance(event, LocationChanged)
        }
        log.info(
            "inputs_handled",
            inputs=len(inputs),
            imports=len(imports),
            versions=versions,
            store_ms=round(1000 * (stored - began), 1),
            publish_ms=round(1000 * (time.perf_counter() - stored), 1),
        )
        return verdicts


def _unstorable(message: Message, exc: Exception) -> str:
    """The dead-letter reason of a message the database can never store."""
    log.warning("input_unstorable", type=tag_of(type(message)), error=f"{type(exc).__name__}: {exc}")
    return f"{tag_of(type(message))} cannot be stored: {type(exc).__name__}: {exc}"


async def build(ctx: ServiceContext) -> list[Component]:
    """Wire the repository into the RPC server and the consumer of the company's inputs."""
    repo = await mongo_repository(ctx.db)

    async def handle_request(request: Any) -> Outcome:
        return await dispatch(request, repo)

    announcer = Announcer(repo.partners, ctx.broker.publish_event)
    handlers = {request_type: handle_request for request_type in REQUEST_TYPES}
    rpc = rpc_server(ctx, LocationsRequest, handlers, on_published=announcer.published)
    channel = await ctx.broker.channel(2 * INPUT_BATCH)
    queue = await declare(channel, ctx.broker.topology, ctx.broker.exchanges, LOCATIONS_INPUT)
    handler = InputHandler(ctx.broker, repo, announcer)
    inputs = BatchConsumer(ctx.broker, queue, handler, f"{SERVICE}.input", INPUT_BATCH)
    # The announcer starts first and stops last: it clears the marks of what the others published.
    return [announcer, rpc, inputs]
