"""Received CDRs (eMSP side): the pure rules of tariff choice, verdict and tolerance."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest

from services.cdrs.emsp_rules import (
    CONFLICT,
    check_resent,
    choose_tariff,
    tariff_id_of,
    theirs_of,
    verdict_of,
)
from shared.contracts.cdrs import PriceCheck, PriceComputation, TariffSource
from shared.errors import InvalidInput
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.codec import decode, encode, to_builtins
from shared.pricing import decimal_of
from tests.support.cdrs import START, cdr, energy_tariff

TOLERANCE = Decimal("0.01")


def ours(total: str) -> PriceComputation:
    return PriceComputation(
        total_cost=total, total_energy="10", total_time="1", total_parking_time="0", tariff_id="T1"
    )


def test_the_tariff_id_is_the_connectors_when_listed_else_the_first_listed() -> None:
    """Connector's id when the CDR lists it or lists none; else the first listed; None without any."""
    assert tariff_id_of(cdr(connector_tariff="T1")) == "T1"
    listed = [energy_tariff("T9"), energy_tariff("T1")]
    assert tariff_id_of(cdr(tariffs=listed, connector_tariff="T1")) == "T1"
    assert tariff_id_of(cdr(tariffs=listed, connector_tariff="T5")) == "T9"
    assert tariff_id_of(cdr(tariffs=listed, connector_tariff=None)) == "T9"
    assert tariff_id_of(cdr(connector_tariff=None)) is None


def test_our_tariff_is_used_when_it_was_in_force_at_the_start() -> None:
    """Ours unchanged since (or exactly at) the session's start wins over the CDR's copy."""
    mine, theirs = energy_tariff(price=0.30, at=START), energy_tariff(price=0.25)
    choice = choose_tariff(cdr(tariffs=[theirs]), "T1", mine)
    assert (choice.tariff, choice.source) == (mine, TariffSource.OURS)


def test_the_cdrs_copy_is_used_when_ours_is_newer_than_the_session_or_missing() -> None:
    """Ours changed after the start (or none): the copy the CDR carries prices it."""
    newer = energy_tariff(price=0.30, at=START + timedelta(minutes=1))
    carried = energy_tariff(price=0.25)
    for mine in (newer, None):
        choice = choose_tariff(cdr(tariffs=[carried]), "T1", mine)
        assert (choice.tariff, choice.source) == (carried, TariffSource.CDR)


def test_without_a_usable_tariff_the_reason_says_why() -> None:
    """Ours newer and no copy in the CDR, or neither: no tariff, and a reason naming it."""
    newer = energy_tariff(at=START + timedelta(seconds=1))
    assert "changed after the session started" in choose_tariff(cdr(), "T1", newer).reason
    missing = choose_tariff(cdr(), "T1", None)
    assert missing.tariff is None and "no tariff T1" in missing.reason


def test_their_numbers_are_the_decimals_they_wrote() -> None:
    """Floats become the decimal of their shortest text (0.1 is 0.1, not 0.1000000000000000055...)."""
    assert decimal_of(0.1, "total_cost") == Decimal("0.1")
    theirs = theirs_of(cdr(total_cost=2.51), "T1")
    assert (theirs.total_cost, theirs.total_energy, theirs.total_parking_time) == ("2.51", "10.0", "0.0")


@pytest.mark.parametrize(
    ("their_total", "our_total", "check", "difference"),
    [
        (2.5, "2.50", PriceCheck.AGREED, "0.00"),
        (2.51, "2.50", PriceCheck.AGREED, "-0.01"),  # at the tolerance: agreed
        (2.49, "2.50", PriceCheck.AGREED, "0.01"),
        (2.52, "2.50", PriceCheck.DISPUTED, "-0.02"),  # beyond it, either way
        (2.48, "2.50", PriceCheck.DISPUTED, "0.02"),
    ],
)
def test_the_verdict_follows_the_tolerance(
    their_total: float, our_total: str, check: PriceCheck, difference: str
) -> None:
    """|ours - theirs| <= tolerance is AGREED, beyond it DISPUTED; the difference is ours - theirs."""
    received = cdr(total_cost=their_total)
    verdict = verdict_of(
        received, theirs_of(received, "T1"), ours(our_total), "EUR", TOLERANCE, TariffSource.OURS
    )
    assert (verdict.check, verdict.difference) == (check, difference)
    assert verdict.ours == ours(our_total) and verdict.tariff_source is TariffSource.OURS


def test_a_tariff_in_another_currency_is_disputed_without_a_difference() -> None:
    """Amounts in different currencies do not compare: DISPUTED, naming both currencies."""
    received = cdr()
    theirs = theirs_of(received, "T1")
    verdict = verdict_of(received, theirs, ours("2.50"), "USD", TOLERANCE, TariffSource.OURS)
    assert verdict.check is PriceCheck.DISPUTED and verdict.difference is None
    assert "USD" in verdict.reason and "EUR" in verdict.reason


def test_a_resent_cdr_must_be_the_same() -> None:
    """The same CDR again passes; another content under the same id is refused naming it."""
    check_resent(cdr(), cdr())
    with pytest.raises(InvalidInput, match=CONFLICT):
        check_resent(cdr(), cdr(total_cost=3.0))


@pytest.mark.parametrize("field", ["total_cost", "total_energy", "total_time", "total_parking_time"])
@pytest.mark.parametrize("value", [-0.01, float("inf"), float("nan")])
def test_negative_infinite_or_nan_totals_are_refused_naming_the_field(field: str, value: float) -> None:
    """A CDR built in code cannot hold a negative, infinite or NaN total."""
    document = to_builtins(cdr())
    document[field] = value
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert(document, CDR)


@pytest.mark.parametrize("literal", [b"-0.01", b"NaN", b"Infinity", b"1e400"])
def test_a_posted_total_that_is_negative_or_not_a_finite_number_does_not_decode(literal: bytes) -> None:
    """From JSON: negatives fail the bound, NaN/Infinity are no JSON, 1e400 is out of float range."""
    text = encode(cdr())
    assert b'"total_cost":2.5,' in text
    with pytest.raises(msgspec.DecodeError):
        decode(text.replace(b'"total_cost":2.5,', b'"total_cost":' + literal + b","), CDR)
