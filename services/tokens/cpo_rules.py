"""Partners' tokens as we hold them (CPO side): their announcement, and which stored version it was."""

from __future__ import annotations

from datetime import datetime

from shared.contracts.base import Message
from shared.contracts.tokens import PartnerTokenChanged
from shared.modules.receiver import PartnerRecord, PartnerVersion
from shared.ocpi.v2_1_1.tokens import Token


def updated_of(token: Token) -> datetime:
    """The last_updated a partner token is kept by."""
    return token.last_updated


def partner_event(record: PartnerRecord[Token]) -> Message:
    """The announcement of a partner's token as we now hold it, naming the connection it came through
    (sessions and CDRs of the token go back there). Tokens are never deleted: no tombstone event."""
    party = record.party
    return PartnerTokenChanged(
        country_code=party.country_code,
        party_id=party.party_id,
        token=record.value,
        version=record.version,
        partner_id=record.via,
    )


def mark_of(event: Message) -> PartnerVersion | None:
    """Which stored version a published partner event announced (the outbox clears its mark)."""
    if isinstance(event, PartnerTokenChanged):
        return (event.country_code, event.party_id, event.token.uid, event.version)
    return None
