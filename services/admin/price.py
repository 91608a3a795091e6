"""ocpi-admin price: what a CDR costs under a tariff, worked out offline (no admin URL, token or network).

TARIFF.json is a 2.1.1 Tariff, or a list of them of which the first is used (a CDR's `tariffs` list
can be passed as it is; with more than one a note on stderr says which one priced it). CDR.json is a
2.1.1 CDR or any object with start_date_time, stop_date_time and charging_periods; restrictions are
read in --time-zone, else the CDR's location.time_zone, else UTC.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

import msgspec

from shared.ocpi.v2_1_1 import codec
from shared.ocpi.v2_1_1.sessions import ChargingPeriod
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.types import OcpiStruct
from shared.pricing import Priced, PricingError, price_session

__all__ = ["PriceInputError", "add_price_command", "price_files", "run"]


class PriceInputError(Exception):
    """A file that cannot be read, decoded or priced; the message is one line for the operator."""


class _Place(OcpiStruct, kw_only=True):
    time_zone: str | None = None


class SessionToPrice(OcpiStruct, kw_only=True):
    """The part of a CDR (or a Session-like object) that pricing reads."""

    start_date_time: datetime
    stop_date_time: datetime
    charging_periods: list[ChargingPeriod]
    location: _Place | None = None


def _read(path: str, type_: type[codec.T]) -> codec.T:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise PriceInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return codec.decode(data, type_)
    except msgspec.DecodeError as exc:  # ValidationError too: its message names the field and path
        raise PriceInputError(f"{path}: {exc}") from exc


def price_files(tariff_path: str, cdr_path: str, time_zone: str | None = None) -> Priced:
    """Price the session in cdr_path under the tariff in tariff_path; PriceInputError says what is wrong."""
    found = _read(tariff_path, Tariff | list[Tariff])  # type: ignore[arg-type]
    if isinstance(found, list):
        if not found:
            raise PriceInputError(f"{tariff_path}: an empty list, no tariff to price with")
        if len(found) > 1:
            print(
                f"ocpi-admin price: {tariff_path} holds {len(found)} tariffs; pricing with the first, "
                f"id {found[0].id}",
                file=sys.stderr,
            )
        found = found[0]
    session = _read(cdr_path, SessionToPrice)
    zone = time_zone or (session.location.time_zone if session.location else None) or "UTC"
    try:
        return price_session(
            found, session.start_date_time, session.stop_date_time, session.charging_periods, zone
        )
    except PricingError as exc:
        raise PriceInputError(f"cannot price {cdr_path}: {exc}") from exc


def add_price_command(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `price` subcommand, offline."""
    price = groups.add_parser("price", help="price a CDR with a tariff, offline (prints JSON)")
    price.add_argument(
        "--tariff", required=True, help="a 2.1.1 Tariff as JSON (or a list: the first is used)"
    )
    price.add_argument(
        "--cdr", required=True, help="a 2.1.1 CDR, or start_date_time, stop_date_time, charging_periods"
    )
    price.add_argument(
        "--time-zone", help="IANA zone of the location (default: the CDR's location.time_zone, UTC)"
    )


def run(args: argparse.Namespace) -> int:
    """Print the priced session as one JSON object; 0, or 1 with a one-line message on stderr."""
    try:
        priced = price_files(args.tariff, args.cdr, args.time_zone)
    except PriceInputError as exc:
        print(f"ocpi-admin price: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(priced.to_json(), indent=2))
    return 0
