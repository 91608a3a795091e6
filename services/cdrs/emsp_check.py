"""The price check of a received CDR: our copies of the CPO's tariff and location, asked over RPC
(no service reads another's database), and the shared calculator.

A CDR is never refused for its price: when a lookup does not answer within LOOKUP_TIMEOUT, or the
CDR cannot be priced, the verdict is UNCHECKED with the reason, and the CDR is stored all the same.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from services.cdrs.emsp_rules import choose_tariff, tariff_id_of, theirs_of, unchecked, verdict_of
from shared.contracts.base import RpcReply
from shared.contracts.cdrs import CdrVerdict, PriceComputation
from shared.contracts.objects import ReceiverGet
from shared.contracts.partners import Party
from shared.messaging.rpc import RpcClient, RpcTimeout
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.pricing import Priced, PricingError, price_session

# How long the check waits for the tariffs and locations services (asked at the same time): well
# within the gateway's RPC_TIMEOUT_SECONDS, so that the CPO gets its answer.
LOOKUP_TIMEOUT = 2.0
UTC_ZONE = "UTC"
T = TypeVar("T")


class LookupUnavailable(Exception):
    """A service we asked about our copy of a partner's object did not answer usably."""


class Ask(Protocol):
    """Sends a request to a service and waits for its reply (RpcTimeout when none comes in time)."""

    async def __call__(self, service: str, request: ReceiverGet) -> RpcReply: ...


def rpc_ask(rpc: RpcClient, timeout: float) -> Ask:
    """Ask over `rpc`, waiting at most `timeout` seconds."""

    async def ask(service: str, request: ReceiverGet) -> RpcReply:
        return await rpc.call(service, request, wait_for=timeout)

    return ask


class PartnerCopies:
    """Our copies of a CPO's tariffs (tariffs service) and locations (locations service)."""

    def __init__(self, ask: Ask) -> None:
        self._ask = ask

    async def _get(self, service: str, party: Party, object_id: str, type_: type[T]) -> T | None:
        request = ReceiverGet(module=service, party=party, path=[object_id])
        try:
            reply = await self._ask(service, request)
        except RpcTimeout as exc:
            raise LookupUnavailable(f"{service} service unavailable") from exc
        if reply.status_code == OcpiStatus.SUCCESS:
            try:
                return msgspec.json.decode(reply.data, type=type_)
            except msgspec.DecodeError as exc:
                raise LookupUnavailable(f"{service} service answered an unreadable object") from exc
        if reply.http_status == 404:
            return None
        raise LookupUnavailable(f"{service} service answered {reply.status_code}: {reply.status_message}")

    async def tariff(self, party: Party, tariff_id: str) -> Tariff | None:
        """Our copy of the party's tariff, None when we hold none."""
        return await self._get("tariffs", party, tariff_id, Tariff)

    async def time_zone(self, party: Party, location_id: str) -> str | None:
        """The time zone of our copy of the party's location, None when unknown."""
        location = await self._get("locations", party, location_id, Location)
        return None if location is None else location.time_zone


def ours_of(priced: Priced, tariff_id: str) -> PriceComputation:
    """Our computation, from the calculator's result."""
    return PriceComputation(
        total_cost=str(priced.total_cost),
        total_energy=str(priced.total_energy),
        total_time=str(priced.total_time),
        total_parking_time=str(priced.total_parking_time),
        tariff_id=tariff_id,
    )


async def _zone_of(cdr: CDR, party: Party, copies: PartnerCopies) -> str:
    """The CDR location's time zone, else our copy's, else UTC."""
    if cdr.location.time_zone:
        return cdr.location.time_zone
    return await copies.time_zone(party, cdr.location.id) or UTC_ZONE


async def check_cdr(cdr: CDR, party: Party, copies: PartnerCopies, tolerance: Decimal) -> CdrVerdict:
    """Price the CDR again and compare with its total (see the module docstring)."""
    tariff_id = tariff_id_of(cdr)
    theirs = theirs_of(cdr, tariff_id)
    if tariff_id is None:
        return unchecked(theirs, "the CDR names no tariff (neither in tariffs nor at its connector)")
    ours, zone = await asyncio.gather(
        copies.tariff(party, tariff_id), _zone_of(cdr, party, copies), return_exceptions=True
    )
    for answer in (ours, zone):
        if isinstance(answer, LookupUnavailable):
            return unchecked(theirs, str(answer))
        if isinstance(answer, BaseException):
            raise answer
    assert not isinstance(ours, BaseException) and isinstance(zone, str)
    choice = choose_tariff(cdr, tariff_id, ours)
    if choice.tariff is None or choice.source is None:
        return unchecked(theirs, choice.reason)
    try:
        local = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return unchecked(theirs, f"unknown time zone {zone!r}")
    try:
        priced = price_session(
            choice.tariff, cdr.start_date_time, cdr.stop_date_time, cdr.charging_periods, local
        )
    except PricingError as exc:
        return unchecked(theirs, f"cannot be priced: {exc}")
    return verdict_of(cdr, theirs, ours_of(priced, tariff_id), priced.currency, tolerance, choice.source)
