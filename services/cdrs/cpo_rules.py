"""Pure rules of our CDRs (CPO side): a CDR is made once from an ended session, never changed, and
remembers where each eMSP keeps it.

The CDR carries the tariff that priced the session (mod_cdrs.md 3.1 `tariffs`), its charging periods
as the session wrote them, and the totals of shared/pricing over those periods, so that the eMSP
computes the same total from the CDR alone. A session without a tariff gives a CDR of cost 0 with a
remark saying so. Its `last_updated` is the session's end: the CDR of a session is the same whatever
replica makes it, whenever.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from shared.contracts.base import Message
from shared.contracts.cdrs import CDR_VERSION, CdrCreated, CdrDelivered
from shared.contracts.partners import Party
from shared.contracts.sessions import ChargingSession, SessionEnded
from shared.modules.sender import OwnRecord, Rejected, Removed
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.sessions import CdrDimensionType, ChargingPeriod, empty_period
from shared.ocpi.v2_1_1.types import to_utc
from shared.pricing import PricingError, price_session

# The announcement a stored change gets (the parts of the generic input loop).
CREATED = "created"
DELIVERED = "delivered"
NO_TARIFF = "No tariff applied to this session: not priced"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """An eMSP took the CDR: where it keeps it (its POST answer's Location, "" when it sent none)."""

    partner_id: str
    location: str
    at: datetime


class OwnCdr(msgspec.Struct, frozen=True, kw_only=True):
    """One of our CDRs as stored: the CDR, whose it is, and the deliveries."""

    cdr: CDR
    owner: Party | None = None
    partner_id: str | None = None
    deliveries: list[Delivery] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class Ended:
    """A SessionEnded as an input: its idempotency key is the session (a CDR is made once)."""

    event: SessionEnded

    @property
    def event_id(self) -> str:
        return f"ended:{self.event.charging.session.id}"


@dataclass(frozen=True)
class Taken:
    """A CdrDelivered as an input."""

    event: CdrDelivered

    @property
    def event_id(self) -> str:
        return f"delivered:{self.event.cdr_id}:{self.event.partner_id}"


CdrInput = Ended | Taken


def _sum(periods: list[ChargingPeriod], kind: CdrDimensionType) -> float:
    total = sum(
        (Decimal(repr(d.volume)) for p in periods for d in p.dimensions if d.type is kind), Decimal(0)
    )
    return float(total)


def cdr_of(charging: ChargingSession) -> CDR:
    """The CDR of an ended session (see the module's docstring)."""
    session = charging.session
    if session.end_datetime is None:
        raise Rejected(f"session {session.id} has not ended")
    stop = to_utc(session.end_datetime)
    periods = list(session.charging_periods or [])
    if not periods:
        # Stopped at the instant it started: one empty period (a CDR has at least one).
        periods = [empty_period(session.start_datetime)]
    remark = None
    if charging.tariff is None:
        hours = (stop - to_utc(session.start_datetime)).total_seconds() / 3600
        totals = (0.0, _sum(periods, CdrDimensionType.ENERGY), round(hours, 6))
        parking = _sum(periods, CdrDimensionType.PARKING_TIME)
        remark = NO_TARIFF
    else:
        try:
            priced = price_session(charging.tariff, session.start_datetime, stop, periods, charging.time_zone)
        except PricingError as exc:
            raise Rejected(f"the CDR of session {session.id} cannot be priced: {exc}") from exc
        totals = (float(priced.total_cost), float(priced.total_energy), float(priced.total_time))
        parking = float(priced.total_parking_time)
    return CDR(
        id=session.id,
        start_date_time=session.start_datetime,
        stop_date_time=stop,
        auth_id=session.auth_id,
        auth_method=session.auth_method,
        location=session.location,
        meter_id=session.meter_id,
        currency=session.currency,
        tariffs=None if charging.tariff is None else [charging.tariff],
        charging_periods=periods,
        total_cost=totals[0],
        total_energy=totals[1],
        total_time=totals[2],
        total_parking_time=parking,
        remark=remark,
        last_updated=stop,
    )


class CdrInputs:
    """The input rules of our CDRs, for the generic input loop (shared/modules/sender.py)."""

    def key_of(self, msg: CdrInput) -> str:
        return msg.event.charging.session.id if isinstance(msg, Ended) else msg.event.cdr_id

    def apply(self, msg: CdrInput, stored: OwnCdr | Removed[OwnCdr] | None) -> OwnCdr | None:
        if isinstance(stored, Removed):  # CDRs are never removed
            return None
        if isinstance(msg, Ended):
            if stored is not None:
                return None  # made once: a CDR never changes
            charging = msg.event.charging
            return OwnCdr(cdr=cdr_of(charging), owner=charging.owner, partner_id=charging.partner_id)
        if stored is None:
            raise Rejected(f"CDR {msg.event.cdr_id} is not one of ours")
        event = msg.event
        if any(d.partner_id == event.partner_id for d in stored.deliveries):
            return None
        delivery = Delivery(partner_id=event.partner_id, location=event.location, at=to_utc(event.at))
        return msgspec.structs.replace(stored, deliveries=[*stored.deliveries, delivery])

    def part_of(self, msg: CdrInput) -> Hashable:
        return CREATED if isinstance(msg, Ended) else DELIVERED

    def changed(self, record: OwnRecord[OwnCdr], parts: list[Any]) -> Message | None:
        """CdrCreated when made (again for a redelivered SessionEnded: the dispatcher sends nothing
        twice); a delivery is recorded without an announcement."""
        if CREATED not in parts:
            return None
        own = record.value
        # Always CDR_VERSION, whatever deliveries the record has seen since: a higher version would
        # make the dispatcher POST it again.
        return CdrCreated(cdr=own.cdr, version=CDR_VERSION, owner=own.owner, partner_id=own.partner_id)


def updated_of(own: OwnCdr) -> datetime:
    """The last_updated a CDR is filtered and paged by."""
    return own.cdr.last_updated


def view(own: OwnCdr) -> CDR:
    """What a partner sees of a stored CDR."""
    return own.cdr
