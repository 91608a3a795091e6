"""Sessions and CDRs as the sessions and cdrs services announce them, for the dispatcher's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from shared.contracts.cdrs import CdrCreated
from shared.contracts.partners import Party
from shared.contracts.sessions import SessionChanged
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.sessions import Session
from tests.support.objects import location

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OWNER = Party("DE", "EMP")
# Every field of a new session (what SessionChanged.changed lists for one).
EVERY_SESSION_FIELD = [
    "id", "start_datetime", "end_datetime", "kwh", "auth_id", "auth_method", "location", "meter_id",
    "currency", "charging_periods", "total_cost", "status", "last_updated",
]  # fmt: skip


def session(session_id: str = "S1", kwh: float = 0.0, minutes: int = 0, completed: bool = False) -> Session:
    """A session at L1/E1 `minutes` after T0, with `kwh` charged (ACTIVE, or COMPLETED then)."""
    at = T0 + timedelta(minutes=minutes)
    fields = {
        "id": session_id,
        "start_datetime": T0,
        "kwh": kwh,
        "auth_id": "DE-EMP-C0001",
        "auth_method": "WHITELIST",
        "location": to_builtins(location("L1", ["E1"], at=T0)),
        "currency": "EUR",
        "total_cost": round(kwh * 0.25, 2),
        "status": "COMPLETED" if completed else "ACTIVE",
        "last_updated": at,
    }
    if completed:
        fields["end_datetime"] = at
    return msgspec.convert(fields, Session)


def session_changed(
    state: Session, version: int, changed: list[str], partner_id: str | None = "emsp-1"
) -> SessionChanged:
    """What the sessions service announces."""
    return SessionChanged(
        session=state, version=version, owner=OWNER, partner_id=partner_id, changed=list(changed)
    )


def cdr(cdr_id: str = "C1") -> CDR:
    """A final CDR of 10 kWh in one hour."""
    return msgspec.convert(
        {
            "id": cdr_id,
            "start_date_time": T0,
            "stop_date_time": T0 + timedelta(hours=1),
            "auth_id": "DE-EMP-C0001",
            "auth_method": "WHITELIST",
            "location": to_builtins(location("L1", ["E1"], at=T0)),
            "currency": "EUR",
            "charging_periods": [{"start_date_time": T0, "dimensions": [{"type": "ENERGY", "volume": 10.0}]}],
            "total_cost": 2.5,
            "total_energy": 10.0,
            "total_time": 1.0,
            "last_updated": T0 + timedelta(hours=1),
        },
        CDR,
    )


def cdr_created(cdr_id: str = "C1", partner_id: str | None = "emsp-1") -> CdrCreated:
    """What the cdrs service announces once a session's CDR exists."""
    return CdrCreated(cdr=cdr(cdr_id), version=1, owner=OWNER, partner_id=partner_id)
