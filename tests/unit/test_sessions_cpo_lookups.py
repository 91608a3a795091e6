"""What a start learns from the other services, and how their refusals are told apart from outages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from services.sessions.cpo_lookups import StartLookups, Unanswered
from shared.contracts.base import RpcReply, error, ok
from shared.contracts.sessions import SessionStart
from shared.messaging.transient import is_transient
from shared.modules.sender import Rejected
from tests.support.objects import location

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
START = SessionStart(
    event_id="e", session_id="S1", token_uid="CARD1", location_id="L1", evse_uid="E1", connector_id="1", at=T0
)


class Services:
    """Answers by service name, as the RPC client would."""

    def __init__(self, **replies: RpcReply) -> None:
        self.replies = replies

    async def call(self, service: str, request: Any, wait_for: float | None = None) -> RpcReply:
        return self.replies[service]


def _site(time_zone: str | None) -> Any:
    return msgspec.structs.replace(location("L1", ["E1"], T0), time_zone=time_zone)


UNKNOWN_TOKEN = error(2000, "no partner gave us this token", http_status=404)


async def test_an_unknown_zone_prices_in_utc_and_the_session_says_so() -> None:
    lookups = StartLookups(Services(locations=ok(_site("Europe/Atlantis")), tokens=UNKNOWN_TOKEN))  # type: ignore[arg-type]
    facts = await lookups.facts(START)
    assert facts.time_zone == "UTC" and facts.location.time_zone == "UTC"
    named = await StartLookups(Services(locations=ok(_site(None)), tokens=UNKNOWN_TOKEN)).facts(START)  # type: ignore[arg-type]
    assert named.location.time_zone == "UTC"


async def test_a_server_failure_is_an_outage_and_a_refusal_is_the_starts_fault() -> None:
    away = Services(locations=error(3000, "The locations service cannot be reached", http_status=503))
    with pytest.raises(Unanswered) as raised:
        await StartLookups(away).facts(START)  # type: ignore[arg-type]
    assert is_transient(raised.value)
    refused = Services(locations=error(2001, "location_id is longer than OCPI allows", http_status=400))
    with pytest.raises(Rejected, match="2001"):
        await StartLookups(refused).facts(START)  # type: ignore[arg-type]
