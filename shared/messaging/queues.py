"""The durable work queues that take messages from other processes, and their bindings, in one place.

Every process declares all of them when it connects (declaring is idempotent), not only their own
consumers: a message published to the topic exchanges before its consumer first ran is then kept
in its queue instead of being dropped for want of a binding. Bindings come from the message
catalogue, so a new input type is bound where it is declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractQueue

from shared.contracts.base import tag_of
from shared.contracts.catalogue import IMPORTS, INPUTS, PUSHED
from shared.contracts.partners import PartnerRegistered, PartnerSyncStateChanged, PullRequested
from shared.messaging.topology import Exchanges, Topology, declare_work_queue
from shared.ocpi.v2_1_1.modules import MODULES
from shared.ocpi.v2_1_1.versions import ModuleID


@dataclass(frozen=True)
class WorkQueue:
    """A service's durable queue on one of the topic exchanges."""

    service: str
    purpose: str
    exchange: str  # "internal" (the company's systems) or "events" (the platform's services)
    routing_keys: tuple[str, ...]

    def name(self, topology: Topology) -> str:
        return topology.queue(self.service, self.purpose)


# Each module's service takes the company's inputs and the re-sync imports of its module.
MODULE_INPUTS: dict[str, WorkQueue] = {
    module.service: WorkQueue(
        module.service,
        "input",
        "internal",
        tuple(tag_of(kind) for kind in (*INPUTS[module_id], IMPORTS[module_id])),
    )
    for module_id, module in MODULES.items()
}
LOCATIONS_INPUT = MODULE_INPUTS["locations"]
# Modules whose changes can be urgent (a blocked card) have a dispatcher queue of their own: in the
# shared queue a token event would be read only after every location change queued before it.
URGENT_PUSHED = (ModuleID.TOKENS,)
DISPATCHER_EVENTS = WorkQueue(
    "dispatcher",
    "events",
    "events",
    (
        tag_of(PartnerRegistered).rsplit(".", 1)[0] + ".*",  # credentials.partner.*
        *(tag_of(kind) for module, kinds in PUSHED.items() if module not in URGENT_PUSHED for kind in kinds),
        tag_of(PullRequested),
    ),
)
DISPATCHER_TOKEN_EVENTS = WorkQueue(
    "dispatcher", "token-events", "events", tuple(tag_of(kind) for kind in PUSHED[ModuleID.TOKENS])
)
GATEWAY_PARTNER_STATES = WorkQueue("gateway", "partner-states", "events", (tag_of(PartnerSyncStateChanged),))

WORK_QUEUES = (*MODULE_INPUTS.values(), DISPATCHER_EVENTS, DISPATCHER_TOKEN_EVENTS, GATEWAY_PARTNER_STATES)


async def declare(
    channel: AbstractChannel, topology: Topology, exchanges: Exchanges, queue: WorkQueue
) -> AbstractQueue:
    """Declare one work queue with its bindings (idempotent)."""
    exchange = exchanges.internal if queue.exchange == "internal" else exchanges.events
    bindings = [(exchange, key) for key in queue.routing_keys]
    return await declare_work_queue(channel, topology, queue.name(topology), bindings)


async def declare_all(channel: AbstractChannel, topology: Topology, exchanges: Exchanges) -> None:
    """Declare every work queue of the deployment."""
    for queue in WORK_QUEUES:
        await declare(channel, topology, exchanges, queue)
