"""Pure rules of our sessions (CPO side): how the charger backend's events build a priced Session.

A session starts once (a second start of the same id changes nothing). Meter values are cumulative
kWh since the start; each reading starts a charging period that the next reading (or the stop)
ends: its ENERGY is the difference of the two readings, its TIME (or PARKING_TIME, when the car was
not drawing power) the hours between them; a period is cut where the tariff's price may change
(cpo_periods.py). Readings are kept in time order whatever order they come
in; a reading below an earlier one (a meter going backwards) or before the start is refused. The
stop's reading closes the last period; after the stop nothing changes. The session is priced after
every change with the tariff in force at its start (shared/pricing).

A running session's meter value is announced at most once per `push_interval` (by the meter's own
clock, so that the rule stays pure); the ones in between are stored quietly and the next
announcement names every field they changed. A start and a stop are always announced; a stop also
announces SessionEnded, from which the cdrs service makes the CDR.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from services.sessions.cpo_periods import VOLUME_DECIMALS, periods_of
from shared.contracts.base import Message
from shared.contracts.sessions import (
    ChargingSession,
    MeterReading,
    SessionChanged,
    SessionEnded,
    SessionMeter,
    SessionStart,
    SessionStop,
)
from shared.contracts.tokens import TokenHolder
from shared.modules.sender import OwnRecord, Rejected, Removed
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.sessions import (
    Session,
    SessionStatus,
    empty_period,
)
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.types import to_utc
from shared.pricing import PricingError, price_session


@dataclass(frozen=True)
class StartFacts:
    """What the platform's other services know of a session's start (read before the rules run)."""

    location: Location  # only the session's EVSE and connector
    time_zone: str
    tariff: Tariff | None
    holder: TokenHolder | None  # None: no partner gave us the token


@dataclass(frozen=True)
class Start:
    """A SessionStart with its facts: the input the rules apply."""

    msg: SessionStart
    facts: StartFacts

    @property
    def event_id(self) -> str:
        return self.msg.event_id


SessionRuleInput = Start | SessionMeter | SessionStop


def priced(charging: ChargingSession, end: datetime) -> Session:
    """The session with its periods, energy and cost up to `end` (its last reading)."""
    periods = periods_of(charging.readings, charging.tariff, charging.time_zone)
    session = charging.session
    total_cost = None
    if charging.tariff is not None:
        # Before the first meter value the session is priced as an empty period: its FLAT fee.
        priced_periods = periods or [empty_period(session.start_datetime)]
        try:
            result = price_session(
                charging.tariff, session.start_datetime, end, priced_periods, charging.time_zone
            )
            total_cost = float(result.total_cost)
        except PricingError as exc:
            raise Rejected(f"session {session.id} cannot be priced: {exc}") from exc
    return msgspec.structs.replace(
        session,
        kwh=round(max(r.kwh for r in charging.readings), VOLUME_DECIMALS),
        charging_periods=periods,
        total_cost=total_cost,
    )


def _changed_fields(before: Session, after: Session) -> list[str]:
    old, new = to_builtins(before), to_builtins(after)
    return [name for name in Session.__struct_fields__ if old.get(name) != new.get(name)]


def start(msg: SessionStart, facts: StartFacts, currency: str) -> ChargingSession:
    """A new session at 0 kWh, priced (a FLAT fee shows from the start)."""
    at = to_utc(msg.at)
    holder = facts.holder
    session = Session(
        id=msg.session_id,
        start_datetime=at,
        kwh=0.0,
        auth_id=holder.token.auth_id if holder is not None else msg.token_uid,
        auth_method=msg.auth_method,
        location=facts.location,
        meter_id=msg.meter_id,
        currency=facts.tariff.currency if facts.tariff is not None else currency,
        status=SessionStatus.ACTIVE,
        last_updated=at,
    )
    charging = ChargingSession(
        session=session,
        owner=None if holder is None else holder.owner,
        partner_id=None if holder is None else holder.partner_id,
        tariff=facts.tariff,
        time_zone=facts.time_zone,
        readings=[MeterReading(at=at, kwh=0.0, charging=True)],
        announced_at=at,
        pending=list(Session.__struct_fields__),
    )
    return msgspec.structs.replace(charging, session=priced(charging, at))


def _with_reading(charging: ChargingSession, reading: MeterReading) -> list[MeterReading]:
    """The readings with one more, in time order; a reading at the same instant replaces that one."""
    if reading.at < charging.session.start_datetime:
        raise Rejected(f"a meter value at {reading.at.isoformat()} is before the session's start")
    readings = [r for r in charging.readings if r.at != reading.at or r.at == charging.session.start_datetime]
    if reading.at == charging.session.start_datetime:
        return readings  # the start's reading is 0 kWh by definition
    readings.append(reading)
    readings.sort(key=lambda r: r.at)
    for before, after in itertools.pairwise(readings):
        if after.kwh < before.kwh:
            raise Rejected(
                f"the meter went backwards: {after.kwh} kWh at {after.at.isoformat()} "
                f"after {before.kwh} kWh at {before.at.isoformat()}"
            )
    return readings


def _meter(msg: SessionMeter, charging: ChargingSession, interval: timedelta) -> ChargingSession | None:
    at = to_utc(msg.at)
    reading = MeterReading(at=at, kwh=msg.kwh, charging=msg.charging)
    if reading in charging.readings:
        return None
    readings = _with_reading(charging, reading)
    last = readings[-1].at
    updated = msgspec.structs.replace(charging, readings=readings)
    session = msgspec.structs.replace(
        priced(updated, last), last_updated=max(charging.session.last_updated, at)
    )
    pending = _pending(charging, session, RUNNING_FIELDS)
    due = charging.announced_at is None or at - charging.announced_at >= interval
    return msgspec.structs.replace(
        updated,
        session=session,
        quiet=not due,
        pending=pending,
        announced_at=at if due else charging.announced_at,
    )


def _stop(msg: SessionStop, charging: ChargingSession) -> ChargingSession:
    at = to_utc(msg.at)
    if at < charging.session.start_datetime:
        raise Rejected(f"the stop at {at.isoformat()} is before the session's start")
    # Readings after the stop cannot belong to the session: the stop's reading is the last. The
    # stop's meter value is the one billed: a reading above it (a spurious meter value) goes, rather
    # than the stop being refused and the session never ending.
    start = charging.session.start_datetime
    kept = [r for r in charging.readings if r.at == start or (r.at < at and r.kwh <= msg.kwh)]
    readings = _with_reading(
        msgspec.structs.replace(charging, readings=kept), MeterReading(at=at, kwh=msg.kwh, charging=False)
    )
    updated = msgspec.structs.replace(charging, readings=readings)
    session = msgspec.structs.replace(
        priced(updated, at),
        end_datetime=at,
        status=SessionStatus.COMPLETED,
        last_updated=max(charging.session.last_updated, at),
    )
    pending = _pending(charging, session, (*RUNNING_FIELDS, "status", "end_datetime"))
    return msgspec.structs.replace(updated, session=session, quiet=False, pending=pending, announced_at=at)


# What a meter value changes, always named in the announcement whether it changed or not: a state
# that was due but never announced (stored quiet by a later input of the same batch, or by another
# replica after a crash) must not take its changes with it.
RUNNING_FIELDS = ("kwh", "total_cost", "charging_periods", "last_updated")


def _pending(charging: ChargingSession, session: Session, always: tuple[str, ...]) -> list[str]:
    """The fields the next announcement names: those the quiet versions before changed, those this
    change changed, and `always`."""
    names = [*(charging.pending if charging.quiet else []), *_changed_fields(charging.session, session)]
    # Only fields that hold a value: a field named but absent (no total_cost without a tariff) would
    # make the dispatcher PUT the whole session, as for a field that was emptied.
    names += [name for name in always if getattr(session, name) is not None]
    return [name for name in Session.__struct_fields__ if name in names]


class SessionInputs:
    """The input rules of our sessions, for the generic input loop (shared/modules/sender.py)."""

    def __init__(self, push_interval: float, currency: str) -> None:
        self._interval = timedelta(seconds=push_interval)
        self._currency = currency

    def key_of(self, msg: SessionRuleInput) -> str:
        return msg.msg.session_id if isinstance(msg, Start) else msg.session_id

    def apply(
        self, msg: SessionRuleInput, stored: ChargingSession | Removed[ChargingSession] | None
    ) -> ChargingSession | None:
        if isinstance(stored, Removed):  # sessions are never removed
            return None
        if isinstance(msg, Start):
            return None if stored is not None else start(msg.msg, msg.facts, self._currency)
        if stored is None:
            raise Rejected(f"session {msg.session_id} has not started (no SessionStart stored)")
        if stored.session.status is SessionStatus.COMPLETED:
            return None
        if isinstance(msg, SessionMeter):
            return _meter(msg, stored, self._interval)
        return _stop(msg, stored)

    def part_of(self, msg: SessionRuleInput) -> Hashable:
        return type(msg).__name__

    def changed(self, record: OwnRecord[ChargingSession], parts: list[Any]) -> Message | None:
        """SessionEnded once completed (the handler adds its SessionChanged), else SessionChanged;
        nothing for a quiet version."""
        charging = record.value
        if charging.quiet:
            return None
        if charging.session.status is SessionStatus.COMPLETED:
            return SessionEnded(charging=charging, version=record.version, changed=charging.pending)
        return session_changed(charging, record.version, charging.pending)


def session_changed(charging: ChargingSession, version: int, changed: list[str]) -> SessionChanged:
    """The announcement the dispatcher pushes to the owner's eMSP."""
    return SessionChanged(
        session=charging.session,
        version=version,
        owner=charging.owner,
        partner_id=charging.partner_id,
        changed=changed,
    )


def updated_of(charging: ChargingSession) -> datetime:
    """The last_updated a session is filtered and paged by."""
    return charging.session.last_updated


def view(charging: ChargingSession) -> Session:
    """What a partner sees of a stored session."""
    return charging.session
