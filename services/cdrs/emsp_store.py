"""Where received CDRs live: partners' CDRs with our verdict, keyed by (country_code, party_id, id).

The generic receiver store (shared/modules/mongo.py) keeps the natural key unique and the outbox
marks; the disputes list reads the same collection by the verdict.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.cdrs import CdrDispute, CdrVerdict, PartnerCdrReceived, PriceCheck
from shared.modules.mongo import MongoReceiverStore
from shared.modules.receiver import PartnerRecord, PartnerVersion
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.codec import convert
from shared.storage import Document

COLLECTION = "partner_cdrs"
FIELD = "received"


class ReceivedCdr(msgspec.Struct, frozen=True, kw_only=True):
    """A partner's CDR as we keep it: the CDR as posted, our check of its price, when it came."""

    cdr: CDR
    verdict: CdrVerdict
    received_at: datetime


def updated_of(received: ReceivedCdr) -> datetime:
    """The last_updated a received CDR is indexed by: the CDR's own."""
    return received.cdr.last_updated


def partner_event(record: PartnerRecord[ReceivedCdr]) -> PartnerCdrReceived:
    """The announcement of a stored CDR, with its verdict (also when the outbox sends it again)."""
    return PartnerCdrReceived(
        country_code=record.party.country_code,
        party_id=record.party.party_id,
        cdr=record.value.cdr,
        verdict=record.value.verdict,
        version=record.version,
        partner_id=record.via,
    )


def mark_of(event: object) -> PartnerVersion | None:
    """Which stored version a published PartnerCdrReceived announced (None for other events)."""
    if isinstance(event, PartnerCdrReceived):
        return (event.country_code, event.party_id, event.cdr.id, event.version)
    return None


def dispute_of(document: Document) -> CdrDispute:
    """One line of the disputes list from a stored document."""
    received = convert(document[FIELD], ReceivedCdr)
    verdict = received.verdict
    return CdrDispute(
        country_code=document["country_code"],
        party_id=document["party_id"],
        cdr_id=document["id"],
        currency=received.cdr.currency,
        theirs=verdict.theirs.total_cost,
        ours=None if verdict.ours is None else verdict.ours.total_cost,
        difference=verdict.difference,
        reason=verdict.reason,
        received_at=received.received_at,
        partner_id=str(document.get("via", "")),
    )


class ReceivedCdrs(MongoReceiverStore[ReceivedCdr]):
    """`partner_cdrs`: the generic receiver store, and the disputed CDRs, newest first."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db, COLLECTION, ReceivedCdr, FIELD, updated_of)

    async def ensure_indexes(self) -> None:
        """The receiver's indexes, and the verdict with the arrival time for the disputes list."""
        await super().ensure_indexes()
        await self.collection.create_index(
            [(f"{FIELD}.verdict.check", ASCENDING), (f"{FIELD}.received_at", DESCENDING), ("_id", DESCENDING)]
        )

    async def disputes(self, limit: int) -> list[CdrDispute]:
        """The `limit` most recently received DISPUTED CDRs."""
        cursor = self.collection.find({f"{FIELD}.verdict.check": PriceCheck.DISPUTED.value})
        # received_at has whole seconds; the ObjectId (insertion order) breaks ties.
        order = [(f"{FIELD}.received_at", DESCENDING), ("_id", DESCENDING)]
        documents = await cursor.sort(order).limit(limit).to_list()
        return [dispute_of(document) for document in documents]


async def mongo_received(db: AsyncDatabase[Document]) -> ReceivedCdrs:
    """`partner_cdrs` with its indexes in place."""
    store = ReceivedCdrs(db)
    await store.ensure_indexes()
    return store
