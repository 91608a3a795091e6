"""The components of a module's service: the gateway's RPC server and the consumer of its input queue.

Plain functions and one class; the module's `app.py` passes in its stores, rules and handlers and
gets back the components to run, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, get_args

import msgspec
import structlog

from shared.contracts.base import Message, Outcome, tag_of
from shared.contracts.catalogue import IMPORTS, INPUTS, decoder
from shared.contracts.objects import ObjectRequest
from shared.errors import InvalidInput, MethodNotAllowed, failure_reply
from shared.messaging.batch import BatchConsumer, request_id_of
from shared.messaging.consumer import Delivery
from shared.messaging.headers import current_request_id
from shared.messaging.queues import MODULE_INPUTS, WorkQueue, declare
from shared.modules.clock import INPUT_STAMPS, ahead_of_clock
from shared.modules.outbox import Announcer
from shared.modules.sender import UNSTORABLE, InputRules, InputsOutcome, SenderStore, apply_inputs
from shared.ocpi.v2_1_1.modules import OcpiModule
from shared.rpc_service import RpcHandler, rpc_server
from shared.service import Component, ServiceContext

log = structlog.get_logger(__name__)
T = TypeVar("T")

# The largest batch of inputs applied together: at most RECENT_EVENTS, so that within a replica
# the inputs stored after a redelivered one (the rest of its batch) cannot push its id out. Across
# replicas more may have been stored; the last_updated guard keeps it from undoing them. The
# channel holds two batches.
INPUT_BATCH = 200

Publish = Callable[[Message], Awaitable[None]]
Import = Callable[[Any], Awaitable[Outcome]]


class InputHandler(Generic[T]):
    """Handles a batch of a module's input queue: decode, apply our inputs together, store imports, publish.

    A message whose values the database can never store (UNSTORABLE), or stamped far ahead of our
    clock (it would freeze its object), is dead-lettered with the reason rather than retried.
    Msgspec bounds on the contracts refuse most unstorable values at decode time already. Imports
    are stored one by one, so their storage errors are theirs. Our inputs are stored in one bulk
    write: a storage error there is attributed only when the batch holds one input; with more, it is
    raised, so that the batch consumer tries the messages one by one.
    """

    def __init__(
        self,
        module: OcpiModule,
        store: SenderStore[T],
        rules: InputRules[T, Any],
        import_one: Import,
        publish: Publish,
        announcer: Announcer[Any],
    ) -> None:
        self._store = store
        self._rules = rules
        self._import_one = import_one
        self._publish = publish
        self._announcer = announcer
        self._import_type = IMPORTS[module.id]
        self._decoder: msgspec.json.Decoder[Any] = decoder(*INPUTS[module.id], self._import_type)

    async def _publish_for(self, event: Message, request_id: str | None) -> None:
        # Run as its own task by gather: the request id set here is this publish's only.
        if request_id:
            current_request_id.set(request_id)
        await self._publish(event)

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[str | None]:
        """The verdict of every delivery: None when handled, else why it is dead-lettered."""
        began = time.perf_counter()
        verdicts: list[str | None] = [None] * len(deliveries)
        inputs: list[tuple[int, Any]] = []
        imports: list[tuple[int, Message]] = []
        for index, delivery in enumerate(deliveries):
            try:
                message = self._decoder.decode(delivery.body)
            except (msgspec.DecodeError, RecursionError) as exc:
                verdicts[index] = f"invalid {delivery.routing_key or 'message'}: {exc}"
                continue
            verdicts[index] = refused_for_its_clock(message)
            if verdicts[index] is None:
                (imports if isinstance(message, self._import_type) else inputs).append((index, message))
        outcome = await apply_indexed(self._store, self._rules, inputs, verdicts)
        stored = time.perf_counter()
        events = list(outcome.events)
        # Imports come from re-sync pulls, a page at a time: one by one is fast enough.
        for index, imported in imports:
            try:
                events.extend((await self._import_one(imported)).events)
            except UNSTORABLE as exc:
                verdicts[index] = _unstorable(imported, exc)
        # Each event carries the request id of the newest input that changed its object (a batch
        # serves several requests); the events of imports carry the batch's.
        changed_by = {
            self._rules.key_of(message): request_id_of(deliveries[index])
            for position, (index, message) in enumerate(inputs)
            if position not in outcome.rejected
        }
        keys: list[str | None] = [*outcome.keys, *([None] * (len(events) - len(outcome.keys)))]
        await asyncio.gather(
            *(
                self._publish_for(event, changed_by.get(key or ""))
                for event, key in zip(events, keys, strict=True)
            )
        )
        self._announcer.published(events)
        log.info(
            "inputs_handled",
            inputs=len(inputs),
            imports=len(imports),
            versions=outcome.versions,
            store_ms=round(1000 * (stored - began), 1),
            publish_ms=round(1000 * (time.perf_counter() - stored), 1),
        )
        return verdicts


async def apply_indexed(
    store: SenderStore[T],
    rules: InputRules[T, Any],
    inputs: Sequence[tuple[int, Any]],
    verdicts: list[str | None],
) -> InputsOutcome:
    """apply_inputs for the inputs of a batch, each with its index in the batch: the verdicts of
    those that can never apply (rejected, or a value the database cannot store) are set in
    `verdicts`. A storage failure of a batch of several is raised: it is not attributable to one
    message, so the batch consumer tries them one by one."""
    try:
        outcome = await apply_inputs(store, rules, [message for _, message in inputs])
    except UNSTORABLE as exc:
        if len(inputs) != 1:
            raise
        index, message = inputs[0]
        verdicts[index] = _unstorable(message, exc)
        return InputsOutcome()
    for position, reason in outcome.rejected.items():
        index, message = inputs[position]
        verdicts[index] = f"{_name_of(message)} rejected: {reason}"
    return outcome


def refused_for_its_clock(message: Message) -> str | None:
    """The dead-letter reason of an input or import stamped far ahead of our clock (a `last_updated`
    or `at` at any depth): stored, it would freeze its object (shared/modules/clock.py)."""
    reason = ahead_of_clock(message, INPUT_STAMPS)
    if reason is None:
        return None
    log.warning("input_from_the_future", type=_name_of(message), reason=reason)
    return f"{_name_of(message)} refused: {reason}"


def _name_of(message: Any) -> str:
    """A message's tag; a module's own wrapper of one (a start with its facts) by its class name."""
    return tag_of(type(message)) if isinstance(message, Message) else type(message).__name__


def _unstorable(message: Any, exc: Exception) -> str:
    """The dead-letter reason of a message the database can never store."""
    log.warning("input_unstorable", type=_name_of(message), error=f"{type(exc).__name__}: {exc}")
    return f"{_name_of(message)} cannot be stored: {type(exc).__name__}: {exc}"


def object_requests(module: OcpiModule, handlers: Mapping[type[Message], RpcHandler]) -> RpcHandler:
    """One handler of the generic requests: checks the module and the method, then calls the module's."""

    async def handle(request: Any) -> Outcome:
        if request.module != module.name:
            return Outcome(
                reply=failure_reply(InvalidInput(f"this service does not serve {request.module!r}"))
            )
        handler = handlers.get(type(request))
        if handler is None:
            refused = MethodNotAllowed(f"{module.name} does not take {type(request).__name__}")
            return Outcome(reply=failure_reply(refused))
        return await handler(request)

    return handle


async def module_service(
    ctx: ServiceContext,
    module: OcpiModule,
    announcer: Announcer[Any],
    requests: Mapping[type[Message], RpcHandler],
    inputs: Callable[[Sequence[Delivery]], Awaitable[list[str | None]]],
    other_requests: Mapping[type[Message], RpcHandler] | None = None,
    prefetch: int = 16,
    input_queue: WorkQueue | None = None,
) -> list[Component]:
    """The components of a module's service, in start order: the announcer (it starts first and
    stops last: it clears the marks of what the others published), the RPC server of the generic
    requests (and of the module's `other_requests`, such as the tokens' authorizations; `prefetch` of
    them at a time), and the consumer of the module's input queue (or of `input_queue`: the cdrs
    service consumes events of the platform, not inputs of the company)."""
    handle = object_requests(module, requests)
    handlers: dict[type[Message], RpcHandler] = {kind: handle for kind in get_args(ObjectRequest)}
    handlers.update(other_requests or {})
    request_type: Any = ObjectRequest
    for kind in other_requests or {}:
        request_type = request_type | kind
    rpc = rpc_server(ctx, request_type, handlers, prefetch=prefetch, on_published=announcer.published)
    channel = await ctx.broker.channel(2 * INPUT_BATCH)
    work_queue = input_queue or MODULE_INPUTS[module.service]
    queue = await declare(channel, ctx.broker.topology, ctx.broker.exchanges, work_queue)
    name = f"{module.service}.{work_queue.purpose}"
    consumer = BatchConsumer(ctx.broker, queue, inputs, name, INPUT_BATCH)
    return [announcer, rpc, consumer]
