"""Composition root of the locations service: repository, the gateway's RPC server, the input queue."""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import structlog

from services.locations.handlers import dispatch
from services.locations.inputs import Rejected, location_id_of
from services.locations.mongo import mongo_repository
from services.locations.ordering import KeyedLocks
from services.locations.repository import Repository
from shared.contracts.base import Message, Outcome, tag_of
from shared.contracts.locations import LocationChanged, LocationInput, LocationsRequest, PartnerLocationImport
from shared.messaging.broker import Broker
from shared.messaging.consumer import Consumer, Delivery, PoisonMessage
from shared.messaging.topology import declare_work_queue
from shared.rpc_service import rpc_server
from shared.service import Component, ServiceContext

log = structlog.get_logger(__name__)

SERVICE = "locations"
INPUT_PREFETCH = 32
INPUT_TYPES: tuple[type[Message], ...] = (*get_args(LocationInput), PartnerLocationImport)
REQUEST_TYPES: tuple[type[Message], ...] = get_args(LocationsRequest)


def _ordering_key(message: LocationInput | PartnerLocationImport) -> str:
    if isinstance(message, PartnerLocationImport):
        return f"partner:{message.country_code}/{message.party_id}/{message.location.id}"
    return f"own:{location_id_of(message)}"


class InputHandler:
    """Handles one message of the input queue: decode, apply in order per location, publish the events."""

    def __init__(self, broker: Broker, repo: Repository) -> None:
        self._broker = broker
        self._repo = repo
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(LocationInput | PartnerLocationImport)
        self._locks = KeyedLocks()

    async def __call__(self, delivery: Delivery) -> None:
        """Apply one input; undecodable or inapplicable ones are dead-lettered with the reason."""
        try:
            message: LocationInput | PartnerLocationImport = self._decoder.decode(delivery.body)
        except msgspec.DecodeError as exc:
            raise PoisonMessage(f"invalid {delivery.routing_key or 'message'}: {exc}") from exc
        async with self._locks.hold(_ordering_key(message)):
            try:
                outcome: Outcome = await dispatch(message, self._repo)
            except Rejected as exc:
                raise PoisonMessage(f"{tag_of(type(message))} rejected: {exc}") from exc
            for event in outcome.events:
                await self._broker.publish_event(event)
        versions = [event.version for event in outcome.events if isinstance(event, LocationChanged)]
        log.info("input_handled", type=tag_of(type(message)), key=_ordering_key(message), versions=versions)


async def build(ctx: ServiceContext) -> list[Component]:
    """Wire the repository into the RPC server and the consumer of the company's inputs."""
    repo = await mongo_repository(ctx.db)

    async def handle_request(request: Any) -> Outcome:
        return await dispatch(request, repo)

    rpc = rpc_server(ctx, LocationsRequest, {request_type: handle_request for request_type in REQUEST_TYPES})
    topology = ctx.broker.topology
    channel = await ctx.broker.channel(INPUT_PREFETCH)
    internal = await channel.get_exchange(topology.internal_exchange)
    queue = await declare_work_queue(
        channel,
        topology,
        topology.queue(SERVICE, "input"),
        [(internal, tag_of(message_type)) for message_type in INPUT_TYPES],
    )
    inputs = Consumer(ctx.broker, queue, InputHandler(ctx.broker, repo), f"{SERVICE}.input")
    return [rpc, inputs]
