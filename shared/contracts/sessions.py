"""Sessions messages: the charger backend's session events (CPO side), and the domain events.

The charger backend publishes a session's start, its meter values and its stop on the internal
exchange; each carries an `event_id`, the idempotency key (a redelivered event changes nothing
twice). The sessions service builds the OCPI Session from them, prices it with the tariff that
applied at the start, and announces it; the dispatcher pushes it to the token's eMSP only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shared.contracts.base import Message
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.sessions import AuthMethod, Session
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.tokens import TokenType
from shared.ocpi.v2_1_1.types import NonNegativeInt64, String36, String39, String255

# kWh as a meter reports them: never negative, and no meter counts a gigawatt-hour in one session.
MeterKwh = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]

# ---- input from the charger backend (internal exchange), CPO side ---------------------------------


class SessionStart(Message, frozen=True, kw_only=True, tag="sessions.session.start"):
    """A driver started charging at one of our connectors with a token."""

    event_id: str
    session_id: String36
    token_uid: String36
    token_type: TokenType = TokenType.RFID
    location_id: String39
    evse_uid: String39
    connector_id: String36
    at: datetime
    meter_id: String255 | None = None
    # WHITELIST when the charger let the token charge from its list, AUTH_REQUEST when it asked.
    auth_method: AuthMethod = AuthMethod.AUTH_REQUEST


class SessionMeter(Message, frozen=True, kw_only=True, tag="sessions.session.meter"):
    """A meter value of a running session.

    `kwh` is the energy delivered since the session started (cumulative, never going down);
    `charging` says whether the car draws power from this reading on (false: it is parked, full
    or paused), which makes the period that starts here TIME or PARKING_TIME.
    """

    event_id: str
    session_id: String36
    at: datetime
    kwh: MeterKwh
    charging: bool = True


class SessionStop(Message, frozen=True, kw_only=True, tag="sessions.session.stop"):
    """The session ended (the car left, or the driver stopped it): `kwh` is the final reading."""

    event_id: str
    session_id: String36
    at: datetime
    kwh: MeterKwh


SessionInput = SessionStart | SessionMeter | SessionStop


class MeterReading(msgspec.Struct, frozen=True, kw_only=True):
    """One stored meter reading of a running session (the start is the first, at 0 kWh)."""

    at: datetime
    kwh: float
    charging: bool


class ChargingSession(msgspec.Struct, frozen=True, kw_only=True):
    """One of our sessions as the sessions service stores it (CPO side).

    `session` is what partners see. The rest is what pricing and delivery need: the token's owner
    and the connection that serves it (None: a token no partner gave us; nobody gets the session),
    the tariff in force at the start (it prices the whole session; a later change of the tariff
    applies to later sessions), the location's time zone and the meter readings.
    """

    session: Session
    owner: Party | None = None
    partner_id: str | None = None
    tariff: Tariff | None = None
    time_zone: str = "UTC"
    readings: list[MeterReading] = msgspec.field(default_factory=list)
    # When a meter value was last announced (SESSIONS_PUSH_INTERVAL_SECONDS apart at most once).
    announced_at: datetime | None = None
    # This version was stored without an announcement (a meter value within the interval).
    quiet: bool = False
    # The Session fields changed since the last announcement: the next one names them all.
    pending: list[str] = msgspec.field(default_factory=list)


# ---- domain events (events exchange) ----------------------------------------------------------------


class SessionChanged(Message, frozen=True, kw_only=True, tag="sessions.session.changed"):
    """One of our sessions started or changed (CPO side): its state and version.

    `changed` names the Session fields that differ from the previous version announced (every field
    for a new session); the dispatcher PATCHes those to the owner's eMSP and PUTs a new session.
    """

    session: Session
    version: NonNegativeInt64
    owner: Party | None = None
    partner_id: str | None = None
    changed: list[str] = msgspec.field(default_factory=list)


class SessionEnded(Message, frozen=True, kw_only=True, tag="sessions.session.ended"):
    """One of our sessions completed (CPO side): everything its CDR is made of.

    Published with the COMPLETED state and again whenever that state is announced again (after a
    crash): the cdrs service creates the CDR once.
    """

    charging: ChargingSession
    version: NonNegativeInt64
    changed: list[str] = msgspec.field(default_factory=list)


class PartnerSessionChanged(Message, frozen=True, kw_only=True, tag="sessions.partner_session.changed"):
    """A CPO partner's session of one of our drivers changed in our copy (eMSP side).

    For the driver app and billing: `version` grows by one per stored change; an event can come twice.
    """

    country_code: str
    party_id: str
    session: Session
    version: NonNegativeInt64
    partner_id: str = ""
