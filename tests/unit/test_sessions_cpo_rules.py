"""The pure rules of our sessions (CPO side) and of the CDR made from an ended session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from services.cdrs.cpo_rules import NO_TARIFF, CdrInputs, Ended, OwnCdr, Taken, cdr_of
from services.sessions.cpo_periods import periods_of
from services.sessions.cpo_rules import SessionInputs, Start, StartFacts
from shared.contracts.cdrs import CdrCreated, CdrDelivered
from shared.contracts.partners import Party
from shared.contracts.sessions import (
    ChargingSession,
    SessionChanged,
    SessionEnded,
    SessionMeter,
    SessionStart,
    SessionStop,
)
from shared.contracts.tokens import TokenHolder
from shared.modules.sender import OwnRecord, Rejected
from shared.ocpi.v2_1_1.sessions import CdrDimensionType, SessionStatus
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.tokens import Token
from shared.pricing import price_session
from tests.support.objects import location

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
OWNER = Party("DE", "EMB")
RULES = SessionInputs(push_interval=30, currency="EUR")


def _tariff(flat: float = 0.5) -> Tariff:
    return msgspec.convert(
        {
            "id": "T1",
            "currency": "EUR",
            "elements": [
                {"price_components": [{"type": "FLAT", "price": flat, "step_size": 1}]},
                {
                    "price_components": [
                        {"type": "ENERGY", "price": 0.3, "step_size": 1},
                        {"type": "PARKING_TIME", "price": 2.0, "step_size": 60},
                    ]
                },
            ],
            "last_updated": T0 - timedelta(days=1),
        },
        Tariff,
    )


def _holder() -> TokenHolder:
    token = msgspec.convert(
        {
            "uid": "CARD1",
            "type": "RFID",
            "auth_id": "DE-EMB-C00001",
            "issuer": "EMB",
            "valid": True,
            "whitelist": "ALWAYS",
            "last_updated": T0,
        },
        Token,
    )
    return TokenHolder(owner=OWNER, partner_id="p-emb", token=token)


def _start(tariff: Tariff | None = None, holder: TokenHolder | None = None) -> Start:
    msg = SessionStart(
        event_id="e-start",
        session_id="S1",
        token_uid="CARD1",
        location_id="L1",
        evse_uid="E1",
        connector_id="1",
        at=T0,
    )
    facts = StartFacts(location=location("L1", ["E1"], T0), time_zone="UTC", tariff=tariff, holder=holder)
    return Start(msg, facts)


def _meter(minutes: float, kwh: float, charging: bool = True, event: str | None = None) -> SessionMeter:
    return SessionMeter(
        event_id=event or f"e-meter-{minutes}",
        session_id="S1",
        at=T0 + timedelta(minutes=minutes),
        kwh=kwh,
        charging=charging,
    )


def _stop(minutes: float, kwh: float) -> SessionStop:
    return SessionStop(event_id="e-stop", session_id="S1", at=T0 + timedelta(minutes=minutes), kwh=kwh)


def _run(*inputs: Start | SessionMeter | SessionStop) -> ChargingSession:
    state: ChargingSession | None = None
    for msg in inputs:
        after = RULES.apply(msg, state)
        state = after if after is not None else state
    assert state is not None
    return state


def test_a_start_is_an_active_priced_session_of_the_tokens_owner() -> None:
    charging = _run(_start(_tariff(), _holder()))
    session = charging.session
    assert session.status is SessionStatus.ACTIVE
    assert session.auth_id == "DE-EMB-C00001"  # the token's auth_id, not its uid
    assert (charging.owner, charging.partner_id) == (OWNER, "p-emb")
    assert session.total_cost == 0.5  # the FLAT fee shows from the start
    assert session.currency == "EUR" and session.kwh == 0.0
    assert [e.uid for e in session.location.evses or []] == ["E1"]
    assert RULES.apply(_start(_tariff(), _holder()), charging) is None  # a session starts once


def test_a_token_no_partner_gave_us_makes_a_session_nobody_receives() -> None:
    charging = _run(_start())
    assert charging.owner is None and charging.partner_id is None
    assert charging.session.auth_id == "CARD1" and charging.session.total_cost is None


def test_meter_values_make_periods_and_the_cost_the_calculator_gives() -> None:
    tariff = _tariff()
    charging = _run(
        _start(tariff, _holder()), _meter(30, 10.0), _meter(60, 12.0, charging=False), _meter(90, 12.0)
    )
    periods = periods_of(charging.readings, charging.tariff, charging.time_zone)
    kinds = [[d.type for d in p.dimensions] for p in periods]
    assert kinds == [
        [CdrDimensionType.ENERGY, CdrDimensionType.TIME],
        [CdrDimensionType.ENERGY, CdrDimensionType.TIME],
        [CdrDimensionType.ENERGY, CdrDimensionType.PARKING_TIME],
    ]
    expected = price_session(tariff, T0, T0 + timedelta(minutes=90), periods, "UTC").total_cost
    # 0.50 FLAT + 12 kWh x 0.30 + 0.5 h parked x 2.00
    assert Decimal(repr(charging.session.total_cost)) == expected == Decimal("5.10")
    assert charging.session.kwh == 12.0


def test_readings_keep_time_order_and_a_meter_going_backwards_is_refused() -> None:
    started = _run(_start(_tariff(), _holder()))
    late_first = _run(_start(_tariff(), _holder()), _meter(60, 12.0), _meter(30, 10.0))
    in_order = _run(_start(_tariff(), _holder()), _meter(30, 10.0), _meter(60, 12.0))
    assert late_first.readings == in_order.readings
    assert late_first.session.total_cost == in_order.session.total_cost
    with pytest.raises(Rejected, match="backwards"):
        RULES.apply(_meter(90, 5.0), in_order)
    with pytest.raises(Rejected, match="before the session's start"):
        RULES.apply(_meter(-5, 1.0), started)
    with pytest.raises(Rejected, match="has not started"):
        RULES.apply(_meter(5, 1.0), None)
    assert RULES.apply(_meter(30, 10.0, event="again"), in_order) is None  # the same reading again


def test_meter_values_within_the_push_interval_are_stored_quietly_and_named_by_the_next() -> None:
    started = _run(_start(_tariff(), _holder()))
    record = OwnRecord(value=started, version=1, created_seq=1)
    first = RULES.changed(record, [])
    assert isinstance(first, SessionChanged) and first.partner_id == "p-emb"
    quiet = _run(_start(_tariff(), _holder()), _meter(0.25, 1.0))  # 15 s after the start
    assert quiet.quiet and RULES.changed(OwnRecord(quiet, 2, 1), []) is None
    due = RULES.apply(_meter(0.75, 2.0), quiet)  # 45 s after the last announcement
    assert due is not None and not due.quiet
    announced = RULES.changed(OwnRecord(due, 3, 1), [])
    assert isinstance(announced, SessionChanged)
    assert {"kwh", "total_cost", "charging_periods"} <= set(announced.changed)


def test_a_stop_completes_the_session_drops_later_readings_and_ends_it_for_the_cdr() -> None:
    stopped = _run(_start(_tariff(), _holder()), _meter(30, 10.0), _meter(70, 13.0), _stop(60, 12.0))
    session = stopped.session
    assert session.status is SessionStatus.COMPLETED and session.end_datetime == T0 + timedelta(minutes=60)
    assert [r.kwh for r in stopped.readings] == [0.0, 10.0, 12.0] and session.kwh == 12.0
    ended = RULES.changed(OwnRecord(stopped, 4, 1), [])
    assert isinstance(ended, SessionEnded) and "status" in ended.changed
    assert RULES.apply(_meter(61, 12.5), stopped) is None  # nothing changes after the stop


def test_the_cdr_of_an_ended_session_carries_its_tariff_and_the_calculators_totals() -> None:
    tariff = _tariff()
    stopped = _run(
        _start(tariff, _holder()), _meter(30, 10.0), _meter(45, 11.0, charging=False), _stop(60, 11.0)
    )
    cdr = cdr_of(stopped)
    priced = price_session(tariff, cdr.start_date_time, cdr.stop_date_time, cdr.charging_periods, "UTC")
    assert Decimal(repr(cdr.total_cost)) == priced.total_cost
    assert cdr.total_energy == 11.0 and cdr.total_time == 1.0 and cdr.total_parking_time == 0.25
    assert cdr.tariffs == [tariff] and cdr.id == "S1" and cdr.auth_id == "DE-EMB-C00001"
    assert cdr.last_updated == cdr.stop_date_time


def test_a_session_without_tariff_or_periods_still_makes_a_valid_cdr() -> None:
    cdr = cdr_of(_run(_start(None, _holder()), _stop(0, 0.0)))
    assert cdr.total_cost == 0.0 and cdr.remark == NO_TARIFF
    assert len(cdr.charging_periods) == 1 and cdr.tariffs is None


def test_a_cdr_is_made_once_and_announced_at_version_one_after_deliveries() -> None:
    rules = CdrInputs()
    stopped = _run(_start(_tariff(), _holder()), _meter(30, 10.0), _stop(60, 12.0))
    ended = Ended(SessionEnded(charging=stopped, version=4))
    made = rules.apply(ended, None)
    assert isinstance(made, OwnCdr) and made.partner_id == "p-emb"
    assert rules.apply(ended, made) is None
    taken = Taken(CdrDelivered(cdr_id="S1", partner_id="p-emb", location="https://b/cdrs/1", at=T0))
    delivered = rules.apply(taken, made)
    assert delivered is not None and [d.location for d in delivered.deliveries] == ["https://b/cdrs/1"]
    assert rules.apply(taken, delivered) is None
    # A redelivered SessionEnded announces the CDR again, at version 1: the dispatcher has it already.
    again = rules.changed(OwnRecord(delivered, 2, 1), ["created"])
    assert isinstance(again, CdrCreated) and again.version == 1
    assert rules.changed(OwnRecord(delivered, 2, 1), ["delivered"]) is None
    with pytest.raises(Rejected):
        rules.apply(taken, None)


def test_a_due_state_stored_quiet_by_the_next_input_keeps_its_changes_for_the_next_announcement() -> None:
    """Meter values at 31 min (due) and 31.2 min (quiet) in one batch: only the quiet one is stored,
    and the fields the due one changed (kwh, total_cost) are named when it is announced."""
    started = _run(_start(_tariff(), _holder()))
    quiet = _run(_start(_tariff(), _holder()), _meter(31, 10.0), _meter(31.2, 10.0, charging=False))
    assert quiet.quiet
    assert {"kwh", "total_cost", "charging_periods", "last_updated"} <= set(quiet.pending)
    later = RULES.apply(_meter(62, 10.0), quiet)
    assert later is not None and not later.quiet
    announced = RULES.changed(OwnRecord(later, 4, 1), [])
    assert isinstance(announced, SessionChanged) and "kwh" in announced.changed
    assert started.session.kwh == 0.0 and announced.session.kwh == 10.0


def test_the_stop_is_billed_even_below_a_spurious_earlier_reading() -> None:
    stopped = _run(_start(_tariff(), _holder()), _meter(30, 10.0), _meter(40, 99.0), _stop(60, 12.0))
    assert stopped.session.status is SessionStatus.COMPLETED
    assert [r.kwh for r in stopped.readings] == [0.0, 10.0, 12.0] and stopped.session.kwh == 12.0
