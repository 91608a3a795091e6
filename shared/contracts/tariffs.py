"""Tariffs messages: input from the company's systems, re-sync imports, domain events.

Inputs carry an `event_id`, the idempotency key: a redelivered message changes nothing twice.
A removed tariff of ours keeps its version (a tombstone), so that a removal and a later re-creation
of the same id stay ordered for every consumer.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts.base import Message
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.types import NonNegativeInt64, String36

# ---- input from the company's systems (internal exchange), CPO side ---------------------------


class TariffUpsert(Message, frozen=True, kw_only=True, tag="tariffs.tariff.upsert"):
    """A tariff of ours was created or replaced as a whole."""

    event_id: str
    tariff: Tariff


class TariffRemove(Message, frozen=True, kw_only=True, tag="tariffs.tariff.remove"):
    """A tariff of ours is no longer valid: partners get a DELETE of it."""

    event_id: str
    tariff_id: String36
    # When it was removed: an upsert of the same tariff with an older last_updated changes nothing.
    at: datetime


TariffInput = TariffUpsert | TariffRemove


class PartnerTariffImport(Message, frozen=True, kw_only=True, tag="tariffs.partner_tariff.import"):
    """A tariff pulled from a CPO partner during a re-sync (eMSP side)."""

    country_code: str
    party_id: str
    tariff: Tariff


# ---- domain events (events exchange) ------------------------------------------------------------


class TariffChanged(Message, frozen=True, kw_only=True, tag="tariffs.tariff.changed"):
    """One of our tariffs was created or changed: its full state and version (CPO side)."""

    tariff: Tariff
    version: NonNegativeInt64


class TariffRemoved(Message, frozen=True, kw_only=True, tag="tariffs.tariff.removed"):
    """One of our tariffs was removed, at this version (CPO side)."""

    tariff_id: str
    version: NonNegativeInt64
    at: datetime


class PartnerTariffChanged(Message, frozen=True, kw_only=True, tag="tariffs.partner_tariff.changed"):
    """A partner's tariff changed in our copy (eMSP side), for internal consumers.

    `version` grows by one per stored change of the tariff; an event can come twice (after a crash).
    """

    country_code: str
    party_id: str
    tariff: Tariff
    version: NonNegativeInt64


class PartnerTariffRemoved(Message, frozen=True, kw_only=True, tag="tariffs.partner_tariff.removed"):
    """A partner deleted one of its tariffs from our copy (eMSP side), at this version."""

    country_code: str
    party_id: str
    tariff_id: str
    version: NonNegativeInt64
