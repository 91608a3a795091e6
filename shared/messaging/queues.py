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
from shared.contracts.cdrs import CdrDelivered
from shared.contracts.partners import PartnerRegistered, PartnerSyncStateChanged, PullRequested
from shared.contracts.sessions import SessionEnded
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


# Each module's service takes the company's inputs and the re-sync imports of its module (CDRs
# have neither: they are made from ended sessions, see CDRS_EVENTS).
MODULE_INPUTS: dict[str, WorkQueue] = {
    module.service: WorkQueue(
        module.service,
        "input",
        "internal",
        tuple(
            tag_of(kind)
            for kind in (*INPUTS.get(module_id, ()), *([IMPORTS[module_id]] if module_id in IMPORTS else []))
        ),
    )
    for module_id, module in MODULES.items()
    if module_id in INPUTS or module_id in IMPORTS
}
LOCATIONS_INPUT = MODULE_INPUTS["locations"]
# The cdrs service makes a CDR of each ended session and records where the eMSP keeps it.
CDRS_EVENTS = WorkQueue("cdrs", "events", "events", (tag_of(SessionEnded), tag_of(CdrDelivered)))
# Modules whose changes must not wait (a blocked card, a driver's running session, a CDR) have a
# dispatcher queue of their own: in the shared queue their events would be read only after every
# location change queued before them. The queue keeps its first name ("token-events").
URGENT_PUSHED = (ModuleID.TOKENS, ModuleID.SESSIONS, ModuleID.CDRS)
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
    "dispatcher",
    "token-events",
    "events",
    tuple(tag_of(kind) for module in URGENT_PUSHED for kind in PUSHED[module]),
)
GATEWAY_PARTNER_STATES = WorkQueue("gateway", "partner-states", "events", (tag_of(PartnerSyncStateChanged),))

WORK_QUEUES = (
    *MODULE_INPUTS.values(),
    CDRS_EVENTS,
    DISPATCHER_EVENTS,
    DISPATCHER_TOKEN_EVENTS,
    GATEWAY_PARTNER_STATES,
)


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
