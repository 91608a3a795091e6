"""PLACEHOLDER of the CPO side (branch tok-emsp only): replaced by the real services/tokens/cpo.py
at merge. It stores partners' tokens with the generic receiver machinery so that the tokens service
runs in the eMSP side's tests; no charger authorization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.contracts.base import Message, Outcome
from shared.contracts.partners import Party
from shared.contracts.tokens import PartnerTokenChanged, PartnerTokenImport
from shared.modules.flat import import_whole, receiver_handlers
from shared.modules.mongo import MongoReceiverStore
from shared.modules.receiver import PartnerRecord, PartnerVersion, ReceiverStore
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Token
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext


def partner_event(record: PartnerRecord[Token]) -> Message:
    party = record.party
    return PartnerTokenChanged(
        country_code=party.country_code,
        party_id=party.party_id,
        token=record.value,
        version=record.version,
        partner_id=record.via,
    )


def mark_of(event: Message) -> PartnerVersion | None:
    if isinstance(event, PartnerTokenChanged):
        return (event.country_code, event.party_id, event.token.uid, event.version)
    return None


@dataclass(frozen=True)
class CpoSide:
    store: ReceiverStore[Any]
    partner_event: Any
    mark_of: Any
    import_one: Any
    object_requests: dict[type[Message], RpcHandler]
    other_requests: dict[type[Message], RpcHandler] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)


async def build_cpo(ctx: ServiceContext) -> CpoSide:
    store = MongoReceiverStore(ctx.db, "partner_tokens", Token, "token", lambda t: t.last_updated)
    await store.ensure_indexes()

    async def import_one(msg: PartnerTokenImport) -> Outcome:
        party = Party(msg.country_code, msg.party_id)
        return await import_whole(TOKENS, store, party, msg.token, msg.token.uid, partner_event)

    return CpoSide(store, partner_event, mark_of, import_one, receiver_handlers(TOKENS, store, partner_event))
