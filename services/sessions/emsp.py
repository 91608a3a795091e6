"""The eMSP side of sessions: CPO partners' sessions of our drivers (the Receiver interface).

Everything is the generic receiver of shared/modules (GET, PUT, PATCH; ownership checked by the
gateway; the outbox announces each stored change as PartnerSessionChanged for the driver app).
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.base import Message
from shared.contracts.sessions import PartnerSessionChanged
from shared.modules.mongo import MongoReceiverStore
from shared.modules.receiver import PartnerRecord, PartnerVersion
from shared.ocpi.v2_1_1.sessions import Session
from shared.storage import Document

PARTNER_SESSIONS = "partner_sessions"


def updated_of(session: Session) -> datetime:
    """The last_updated a partner's session is kept by."""
    return session.last_updated


async def partner_sessions(db: AsyncDatabase[Document]) -> MongoReceiverStore[Session]:
    """`partner_sessions`, with its indexes in place."""
    store = MongoReceiverStore(db, PARTNER_SESSIONS, Session, "session", updated_of)
    await store.ensure_indexes()
    return store


def partner_event(record: PartnerRecord[Session]) -> Message:
    """The announcement of a partner's session as we now hold it (sessions are never deleted)."""
    party = record.party
    return PartnerSessionChanged(
        country_code=party.country_code,
        party_id=party.party_id,
        session=record.value,
        version=record.version,
        partner_id=record.via,
    )


def mark_of(event: Message) -> PartnerVersion | None:
    """Which stored version a published partner event announced (the outbox clears its mark)."""
    if isinstance(event, PartnerSessionChanged):
        return (event.country_code, event.party_id, event.session.id, event.version)
    return None
