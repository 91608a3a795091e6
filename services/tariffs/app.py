"""Composition root of the tariffs service: our tariffs (CPO sender) and partners' (eMSP receiver).

Everything but the rules is the generic module machinery of shared/modules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.tariffs.rules import TariffInputs, mark_of, partner_event
from shared.contracts.base import Message, Outcome
from shared.contracts.partners import Party
from shared.contracts.tariffs import PartnerTariffImport
from shared.modules.flat import import_whole, receiver_handlers, sender_handlers
from shared.modules.mongo import MongoReceiverStore, MongoSenderStore
from shared.modules.outbox import Announcer, Publish
from shared.modules.receiver import ReceiverStore
from shared.modules.sender import SenderStore
from shared.modules.service import InputHandler, module_service
from shared.ocpi.v2_1_1.modules import TARIFFS
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext
from shared.storage import Document

RULES = TariffInputs()


def updated_of(tariff: Tariff) -> datetime:
    """The last_updated a tariff is filtered and paged by."""
    return tariff.last_updated


async def mongo_stores(db: AsyncDatabase[Document]) -> tuple[SenderStore[Tariff], ReceiverStore[Tariff]]:
    """`own_tariffs` (with tombstones) and `partner_tariffs`, with their indexes in place."""
    own = MongoSenderStore(db, "own_tariffs", Tariff, "tariff", updated_of, removable=True)
    partners = MongoReceiverStore(db, "partner_tariffs", Tariff, "tariff", updated_of)
    await own.ensure_indexes()
    await partners.ensure_indexes()
    return own, partners


def requests(own: SenderStore[Tariff], partners: ReceiverStore[Tariff]) -> dict[type[Message], RpcHandler]:
    """The generic requests the tariffs service answers: partners get the list of ours; GET of one
    of ours is for the sessions service (the tariff that prices a session)."""
    return {
        **sender_handlers(TARIFFS, own, internal_get=True),
        **receiver_handlers(TARIFFS, partners, partner_event),
    }


def input_handler(
    own: SenderStore[Tariff], partners: ReceiverStore[Tariff], publish: Publish, announcer: Announcer[Any]
) -> InputHandler[Tariff]:
    """Our inputs in batches; re-sync imports stored like a PUT, one by one."""

    async def import_one(msg: PartnerTariffImport) -> Outcome:
        party = Party(msg.country_code, msg.party_id)
        return await import_whole(TARIFFS, partners, party, msg.tariff, msg.tariff.id, partner_event)

    return InputHandler(TARIFFS, own, RULES, import_one, publish, announcer)


async def build(ctx: ServiceContext) -> list[Component]:
    """Wire the stores into the generic module service."""
    own, partners = await mongo_stores(ctx.db)
    announcer: Announcer[Tariff] = Announcer(partners, ctx.broker.publish_event, partner_event, mark_of)
    inputs = input_handler(own, partners, ctx.broker.publish_event, announcer)
    return await module_service(ctx, TARIFFS, announcer, requests(own, partners), inputs)
