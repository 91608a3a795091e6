"""Pure rules of received CDRs (eMSP side): which tariff prices a CDR, and the verdict on its total.

A CDR is priced again with the tariff that applied to its session: our copy of the CPO's tariff when
it has not changed since the session started (it was in force then), else the copy the CDR carries.
Our total is compared with theirs in the CDR's currency; beyond the tolerance it is DISPUTED.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.contracts.cdrs import CdrVerdict, PriceCheck, PriceComputation, TariffSource
from shared.errors import InvalidInput
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.types import to_utc
from shared.pricing import decimal_of

CONFLICT = "CDR already received with different content"


def connector_tariff_id(cdr: CDR) -> str | None:
    """The tariff_id of the CDR location's connector (a CDR holds only the EVSE and connector used)."""
    for evse in cdr.location.evses or []:
        for connector in evse.connectors:
            if connector.tariff_id:
                return connector.tariff_id
    return None


def tariff_id_of(cdr: CDR) -> str | None:
    """The id of the tariff that priced the session: the connector's when the CDR lists it, else the
    first the CDR lists, else the connector's; None when the CDR names no tariff."""
    listed = [tariff.id for tariff in cdr.tariffs or []]
    at_connector = connector_tariff_id(cdr)
    if at_connector is not None and (not listed or at_connector in listed):
        return at_connector
    return listed[0] if listed else None


@dataclass(frozen=True)
class TariffChoice:
    """The tariff to price a CDR with, where it came from, or why there is none."""

    tariff: Tariff | None
    source: TariffSource | None = None
    reason: str = ""


def choose_tariff(cdr: CDR, tariff_id: str, ours: Tariff | None) -> TariffChoice:
    """Ours when it was in force at the session's start, else the CDR's copy, else none (why)."""
    if ours is not None and to_utc(ours.last_updated) <= to_utc(cdr.start_date_time):
        return TariffChoice(ours, TariffSource.OURS)
    carried = next((tariff for tariff in cdr.tariffs or [] if tariff.id == tariff_id), None)
    if carried is not None:
        return TariffChoice(carried, TariffSource.CDR)
    if ours is not None:
        return TariffChoice(
            None, reason=f"tariff {tariff_id} changed after the session started and the CDR carries no copy"
        )
    return TariffChoice(None, reason=f"no tariff {tariff_id}: we hold none and the CDR carries none")


def theirs_of(cdr: CDR, tariff_id: str | None) -> PriceComputation:
    """The CPO's computation, as its CDR states it."""
    return PriceComputation(
        total_cost=str(decimal_of(cdr.total_cost, "total_cost")),
        total_energy=str(decimal_of(cdr.total_energy, "total_energy")),
        total_time=str(decimal_of(cdr.total_time, "total_time")),
        total_parking_time=str(decimal_of(cdr.total_parking_time or 0.0, "total_parking_time")),
        tariff_id=tariff_id,
    )


def unchecked(theirs: PriceComputation, reason: str) -> CdrVerdict:
    """No computation of ours to compare with, and why."""
    return CdrVerdict(check=PriceCheck.UNCHECKED, theirs=theirs, reason=reason)


def verdict_of(
    cdr: CDR,
    theirs: PriceComputation,
    ours: PriceComputation,
    currency: str,
    tolerance: Decimal,
    source: TariffSource,
) -> CdrVerdict:
    """AGREED when the totals differ by at most `tolerance`, else DISPUTED; a tariff in another
    currency than the CDR's is DISPUTED without a difference (the amounts do not compare)."""
    if currency != cdr.currency:
        reason = f"the tariff's currency {currency} differs from the CDR's {cdr.currency}"
        return CdrVerdict(
            check=PriceCheck.DISPUTED, theirs=theirs, ours=ours, reason=reason, tariff_source=source
        )
    difference = Decimal(ours.total_cost) - Decimal(theirs.total_cost)
    disputed = abs(difference) > tolerance
    return CdrVerdict(
        check=PriceCheck.DISPUTED if disputed else PriceCheck.AGREED,
        theirs=theirs,
        ours=ours,
        difference=str(difference),
        reason=f"total_cost differs by more than {tolerance}" if disputed else "",
        tariff_source=source,
    )


def check_resent(stored: CDR, incoming: CDR) -> None:
    """A CDR posted again must be the same CDR (CDRs never change, mod_cdrs.md 1): InvalidInput if not."""
    if stored != incoming:
        raise InvalidInput(f"{CONFLICT}: {incoming.id}")
