"""The CPO side's authorization policy at our chargers: pure decisions, every whitelist value and outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.tokens.cpo_policy import (
    Ambiguous,
    Answered,
    Holder,
    NoAnswer,
    NotKnown,
    RealtimeAnswer,
    choose_holder,
    decide,
    read_reply,
    realtime_target,
)
from shared.contracts.base import RpcReply, error, ok
from shared.contracts.partners import Party
from shared.contracts.tokens import Decider
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tokens import (
    Allowed,
    AuthorizationInfo,
    LocationReferences,
    Token,
    TokenType,
    WhitelistType,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
EMSP = Party("NL", "EMS")
HERE = LocationReferences(location_id="LOC1", evse_uids=["E1", "E2"])
NARROWED = LocationReferences(location_id="LOC1", evse_uids=["E2"])


def token(whitelist: WhitelistType, valid: bool = True, uid: str = "CARD1", at: datetime = T0) -> Token:
    return Token(
        uid=uid, type=TokenType.RFID, auth_id="NL-EMS-C00001", issuer="EMS", valid=valid,
        whitelist=whitelist, last_updated=at,
    )  # fmt: skip


def holder(whitelist: WhitelistType, valid: bool = True) -> Holder:
    return Holder(party=EMSP, token=token(whitelist, valid), via="emsp-conn", version=1)


ANSWERED = Answered(AuthorizationInfo(allowed=Allowed.ALLOWED, location=NARROWED))
REFUSED = Answered(AuthorizationInfo(allowed=Allowed.NO_CREDIT))
SLOW = NoAnswer("dispatcher did not answer within 2.0s")
DOWN = NoAnswer("the eMSP could not be reached (3001)")
UNKNOWN_AT_EMSP = NotKnown("the eMSP does not know the token")


@pytest.mark.parametrize(
    ("whitelist", "for_allowed", "asks"),
    [
        (WhitelistType.ALWAYS, False, False),
        (WhitelistType.ALWAYS, True, False),
        (WhitelistType.ALLOWED, False, False),
        (WhitelistType.ALLOWED, True, True),
        (WhitelistType.ALLOWED_OFFLINE, False, True),
        (WhitelistType.NEVER, False, True),
    ],
)
def test_who_is_asked_in_real_time(whitelist: WhitelistType, for_allowed: bool, asks: bool) -> None:
    """ALWAYS never asks, ALLOWED only when configured, ALLOWED_OFFLINE and NEVER always: the
    token's own connection."""
    target = realtime_target(holder(whitelist), realtime_for_allowed=for_allowed, unknown_via="hub")
    assert target == ("emsp-conn" if asks else None)


@pytest.mark.parametrize("whitelist", list(WhitelistType))
def test_an_invalid_token_is_blocked_without_asking(whitelist: WhitelistType) -> None:
    """A blocked card (valid false) is refused here at once, whatever its whitelist: nobody is asked."""
    blocked = holder(whitelist, valid=False)
    assert realtime_target(blocked, realtime_for_allowed=True, unknown_via="hub") is None
    decision = decide(blocked, HERE, None)
    assert (decision.allowed, decision.decider, decision.location) == (Allowed.BLOCKED, Decider.LOCAL, None)
    assert decision.reason == "token not valid"


def test_unknown_tokens_are_asked_of_the_configured_connection_only() -> None:
    """A token we do not hold is asked of TOKENS_UNKNOWN_VIA when it names one, else nobody."""
    assert realtime_target(None, realtime_for_allowed=False, unknown_via="hub") == "hub"
    assert realtime_target(None, realtime_for_allowed=False, unknown_via="") is None


# (whitelist, realtime answer or None when not asked) -> (allowed, decider, location)
LOCAL_ALLOWED = (Allowed.ALLOWED, Decider.LOCAL, HERE)
FALLBACK_ALLOWED = (Allowed.ALLOWED, Decider.FALLBACK, HERE)
EMSP_ALLOWED = (Allowed.ALLOWED, Decider.REALTIME, NARROWED)
EMSP_NO_CREDIT = (Allowed.NO_CREDIT, Decider.REALTIME, None)
EMSP_NOT_KNOWN = (Allowed.NOT_ALLOWED, Decider.REALTIME, None)
REFUSED_NO_ANSWER = (Allowed.NOT_ALLOWED, Decider.FALLBACK, None)


@pytest.mark.parametrize(
    ("whitelist", "answer", "expected"),
    [
        (WhitelistType.ALWAYS, None, LOCAL_ALLOWED),
        (WhitelistType.ALLOWED, None, LOCAL_ALLOWED),  # real-time for ALLOWED off
        (WhitelistType.ALLOWED, ANSWERED, EMSP_ALLOWED),
        (WhitelistType.ALLOWED, REFUSED, EMSP_NO_CREDIT),
        (WhitelistType.ALLOWED, SLOW, FALLBACK_ALLOWED),
        (WhitelistType.ALLOWED, DOWN, FALLBACK_ALLOWED),
        (WhitelistType.ALLOWED, UNKNOWN_AT_EMSP, EMSP_NOT_KNOWN),
        (WhitelistType.ALLOWED_OFFLINE, ANSWERED, EMSP_ALLOWED),
        (WhitelistType.ALLOWED_OFFLINE, REFUSED, EMSP_NO_CREDIT),
        (WhitelistType.ALLOWED_OFFLINE, SLOW, FALLBACK_ALLOWED),
        (WhitelistType.ALLOWED_OFFLINE, DOWN, FALLBACK_ALLOWED),
        (WhitelistType.ALLOWED_OFFLINE, UNKNOWN_AT_EMSP, EMSP_NOT_KNOWN),
        (WhitelistType.NEVER, ANSWERED, EMSP_ALLOWED),
        (WhitelistType.NEVER, REFUSED, EMSP_NO_CREDIT),
        (WhitelistType.NEVER, SLOW, REFUSED_NO_ANSWER),
        (WhitelistType.NEVER, DOWN, REFUSED_NO_ANSWER),
        (WhitelistType.NEVER, UNKNOWN_AT_EMSP, EMSP_NOT_KNOWN),
    ],
)
def test_decisions_of_a_valid_token(
    whitelist: WhitelistType, answer: RealtimeAnswer | None, expected: tuple[Allowed, Decider, object]
) -> None:
    """The eMSP's answer is final; without one ALLOWED and ALLOWED_OFFLINE fall back to the local
    answer (location echoed), NEVER is refused."""
    decision = decide(holder(whitelist), HERE, answer)
    assert (decision.allowed, decision.decider, decision.location) == expected
    assert decision.reason


def test_reasons_name_the_whitelist_and_why_nobody_answered() -> None:
    """The reason says what decided: the whitelist, the eMSP, or its silence (with why)."""
    assert decide(holder(WhitelistType.ALWAYS), HERE, None).reason == "whitelist ALWAYS"
    fallback = decide(holder(WhitelistType.ALLOWED_OFFLINE), HERE, SLOW)
    assert fallback.reason == (
        "whitelist ALLOWED_OFFLINE, no real-time answer: dispatcher did not answer within 2.0s"
    )
    never = decide(holder(WhitelistType.NEVER), HERE, DOWN)
    assert never.reason == "whitelist NEVER, no real-time answer: the eMSP could not be reached (3001)"
    assert decide(holder(WhitelistType.NEVER), HERE, ANSWERED).reason == "eMSP answered ALLOWED"


def test_the_emsps_display_text_is_passed_on() -> None:
    """The eMSP's info (text for the driver) reaches the charger."""
    from shared.ocpi.v2_1_1.types import DisplayText

    info = AuthorizationInfo(allowed=Allowed.NO_CREDIT, info=DisplayText(language="en", text="Top up"))
    assert decide(holder(WhitelistType.NEVER), HERE, Answered(info)).info == info.info


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, (Allowed.NOT_ALLOWED, Decider.LOCAL, None, "unknown token")),
        (ANSWERED, (Allowed.ALLOWED, Decider.REALTIME, NARROWED, "hub answered ALLOWED")),
        (UNKNOWN_AT_EMSP, (Allowed.NOT_ALLOWED, Decider.REALTIME, None, "unknown token at the hub")),
        (SLOW, (Allowed.NOT_ALLOWED, Decider.FALLBACK, None, "unknown token, no real-time answer: "
                                                                 "dispatcher did not answer within 2.0s")),
    ],
)  # fmt: skip
def test_decisions_of_an_unknown_token(answer: RealtimeAnswer | None, expected: tuple[object, ...]) -> None:
    """Unknown: refused, unless the hub connection asked answers (its answer is final)."""
    decision = decide(None, HERE, answer)
    assert (decision.allowed, decision.decider, decision.location, decision.reason) == expected


def test_replies_of_the_dispatcher() -> None:
    """1000 carries the eMSP's answer, HTTP 404 means not known there, 3001 and other failures no answer."""
    info = AuthorizationInfo(allowed=Allowed.BLOCKED)
    assert read_reply(ok(info)) == Answered(info)
    not_known = read_reply(error(OcpiStatus.CLIENT_ERROR, "Unknown Token", http_status=404))
    assert isinstance(not_known, NotKnown)
    silent = read_reply(error(OcpiStatus.UNABLE_TO_USE_CLIENT_API, "timed out"))
    assert silent == NoAnswer("no answer from the eMSP (3001: timed out)")
    refused = read_reply(error(OcpiStatus.NOT_ENOUGH_INFORMATION, "location needed"))
    assert refused == Answered(AuthorizationInfo(allowed=Allowed.NOT_ALLOWED))
    assert isinstance(read_reply(RpcReply(data=ok({"allowed": "MAYBE"}).data)), NoAnswer)


def test_a_uid_held_by_two_parties() -> None:
    """None: unknown. One holder: it. Several: the only valid one, else the newest when all are
    blocked; several valid ones are ambiguous, and refused."""
    other = Party("DE", "OTH")
    valid = Holder(party=EMSP, token=token(WhitelistType.ALWAYS), via="a", version=3)
    blocked = Holder(party=other, token=token(WhitelistType.ALWAYS, valid=False), via="b", version=1)
    also_valid = Holder(party=other, token=token(WhitelistType.ALWAYS), via="b", version=1)
    assert choose_holder([valid]) == valid
    assert choose_holder([blocked, valid]) == valid
    assert choose_holder([]) is None
    ambiguous = choose_holder([valid, also_valid])
    assert ambiguous == Ambiguous((EMSP, other))
    assert realtime_target(ambiguous, realtime_for_allowed=True, unknown_via="hub") is None
    refused = decide(ambiguous, HERE, None)
    assert (refused.allowed, refused.decider) == (Allowed.NOT_ALLOWED, Decider.LOCAL)
    assert refused.reason == "uid held by several parties: NL/EMS, DE/OTH"
    later = token(WhitelistType.ALWAYS, False, at=T0.replace(hour=13))
    newer_block = Holder(party=other, token=later, via="b", version=2)
    old_block = Holder(party=EMSP, token=token(WhitelistType.ALWAYS, False), via="a", version=2)
    assert choose_holder([old_block, newer_block]) == newer_block
