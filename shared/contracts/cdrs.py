"""CDRs messages: created from ended sessions and delivered once (CPO side), received and checked
against the tariff (eMSP side).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

from shared.contracts.base import Message
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.types import NonNegativeInt64

# A CDR never changes (mod_cdrs.md 1): every announcement of one carries this version, whatever
# deliveries its record has seen since, so once a partner has it (delivered 1) nothing sends it again.
CDR_VERSION = 1

# ---- domain events (events exchange), CPO side --------------------------------------------------------


class CdrCreated(Message, frozen=True, kw_only=True, tag="cdrs.cdr.created"):
    """A CDR of ours was created (once, when its session ended): the dispatcher POSTs it to the
    token's eMSP through `partner_id` exactly once. An event can come twice; the CDR never changes."""

    cdr: CDR
    version: NonNegativeInt64
    owner: Party | None = None
    partner_id: str | None = None


class CdrDelivered(Message, frozen=True, kw_only=True, tag="cdrs.cdr.delivered"):
    """The dispatcher POSTed a CDR of ours and the eMSP took it: where the eMSP keeps it (its
    `Location` header, empty when it sent none). The cdrs service stores it with the CDR."""

    cdr_id: str
    partner_id: str
    location: str
    at: datetime


# ---- domain events (events exchange), eMSP side ------------------------------------------------------


class PriceCheck(enum.StrEnum):
    """How a received CDR's total compares with our own computation."""

    AGREED = "AGREED"  # within the tolerance
    DISPUTED = "DISPUTED"  # beyond the tolerance: flagged for the billing team
    UNCHECKED = "UNCHECKED"  # no tariff to price it with (neither ours nor in the CDR)


class TariffSource(enum.StrEnum):
    """Which copy of the tariff our computation used."""

    OURS = "OURS"  # ours (from the tariffs service), unchanged since the session started
    CDR = "CDR"  # the one the CDR carries: ours changed after the session started, or we have none


class PriceComputation(msgspec.Struct, frozen=True, kw_only=True):
    """One computation of a CDR's costs (theirs as posted, or ours), in the CDR's currency."""

    total_cost: str  # decimal string, exact
    total_energy: str
    total_time: str
    total_parking_time: str
    tariff_id: str | None = None


class CdrVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """The check of one received CDR."""

    check: PriceCheck
    theirs: PriceComputation
    ours: PriceComputation | None = None
    difference: str | None = None  # ours - theirs, decimal string
    reason: str = ""
    tariff_source: TariffSource | None = None


class PartnerCdrReceived(Message, frozen=True, kw_only=True, tag="cdrs.partner_cdr.received"):
    """A CPO partner posted a CDR of one of our drivers (eMSP side), stored once, with its check."""

    country_code: str
    party_id: str
    cdr: CDR
    verdict: CdrVerdict
    version: NonNegativeInt64 = 1
    partner_id: str = ""


class PartnerCdrDisputed(Message, frozen=True, kw_only=True, tag="cdrs.partner_cdr.disputed"):
    """A received CDR's total differs from ours beyond CDRS_PRICE_TOLERANCE (eMSP side)."""

    country_code: str
    party_id: str
    cdr_id: str
    currency: str
    verdict: CdrVerdict
    partner_id: str = ""


# ---- requests (RPC), eMSP side --------------------------------------------------------------------------


class CdrDisputesList(Message, frozen=True, kw_only=True, tag="cdrs.disputes.list"):
    """Operators (admin API): the received CDRs whose price we dispute, newest first. The reply's
    `data` is a list of CdrDispute."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class CdrDispute(msgspec.Struct, frozen=True, kw_only=True):
    """One disputed CDR as the disputes list shows it; amounts are decimal strings in `currency`."""

    country_code: str
    party_id: str
    cdr_id: str
    currency: str
    theirs: str
    ours: str | None
    difference: str | None
    reason: str
    received_at: datetime
    partner_id: str = ""
