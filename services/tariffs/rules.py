"""Pure rules of the tariffs module: how the company's inputs change our tariffs, and the events.

A removed tariff stays as a tombstone whose last_updated is the removal time: an upsert must be
newer than the removal to create the tariff again, and its version continues the tombstone's, so
every consumer orders a removal and a later re-creation. An upsert older than (or as old as) the
stored tariff changes nothing; removing a tariff we do not hold, or hold removed, changes nothing.
"""

from __future__ import annotations

import msgspec

from shared.contracts.base import Message, tag_of
from shared.contracts.tariffs import (
    PartnerTariffChanged,
    PartnerTariffRemoved,
    TariffChanged,
    TariffInput,
    TariffRemoved,
    TariffUpsert,
)
from shared.modules.receiver import PartnerRecord, PartnerVersion, is_stale
from shared.modules.sender import OwnRecord, Removed
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.types import to_utc


def apply_input(msg: TariffInput, stored: Tariff | Removed[Tariff] | None) -> Tariff | Removed[Tariff] | None:
    """The tariff (or tombstone) after an input; None when the input changes nothing."""
    if isinstance(msg, TariffUpsert):
        incoming = msg.tariff
        if isinstance(stored, Removed):
            # Re-creation must be later than the removal; as old as it is the state that was removed.
            return None if not is_stale(stored.last.last_updated, incoming.last_updated) else incoming
        if stored is not None and (
            is_stale(incoming.last_updated, stored.last_updated) or incoming == stored
        ):
            return None
        return incoming
    if stored is None or isinstance(stored, Removed) or is_stale(msg.at, stored.last_updated):
        return None
    return Removed(msgspec.structs.replace(stored, last_updated=to_utc(msg.at)))


class TariffInputs:
    """The input rules of the tariffs module, for the generic input loop (shared/modules/sender.py)."""

    def key_of(self, msg: TariffInput) -> str:
        """The id of the tariff an input changes."""
        return msg.tariff.id if isinstance(msg, TariffUpsert) else msg.tariff_id

    def apply(
        self, msg: TariffInput, stored: Tariff | Removed[Tariff] | None
    ) -> Tariff | Removed[Tariff] | None:
        """The tariff after an input (pure)."""
        return apply_input(msg, stored)

    def part_of(self, msg: TariffInput) -> str:
        """A tariff changes as a whole: the part is the kind of input."""
        return tag_of(type(msg))

    def changed(self, record: OwnRecord[Tariff], parts: list[str]) -> Message:
        """TariffChanged with the full tariff, or TariffRemoved for a tombstone."""
        if record.removed:
            return TariffRemoved(
                tariff_id=record.value.id, version=record.version, at=record.value.last_updated
            )
        return TariffChanged(tariff=record.value, version=record.version)


def partner_event(record: PartnerRecord[Tariff]) -> Message:
    """The announcement of a partner's tariff as we now hold it (changed, or deleted)."""
    party = record.party
    if record.removed:
        return PartnerTariffRemoved(
            country_code=party.country_code,
            party_id=party.party_id,
            tariff_id=record.key,
            version=record.version,
        )
    return PartnerTariffChanged(
        country_code=party.country_code, party_id=party.party_id, tariff=record.value, version=record.version
    )


def mark_of(event: Message) -> PartnerVersion | None:
    """Which stored version a published partner event announced (the outbox clears its mark)."""
    if isinstance(event, PartnerTariffChanged):
        return (event.country_code, event.party_id, event.tariff.id, event.version)
    if isinstance(event, PartnerTariffRemoved):
        return (event.country_code, event.party_id, event.tariff_id, event.version)
    return None
