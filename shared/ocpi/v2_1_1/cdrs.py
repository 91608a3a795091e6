"""OCPI 2.1.1 CDRs module objects (mod_cdrs.md). CDRs are never patched, so there is no CDRPatch."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.sessions import AuthMethod, CdrDimension, CdrDimensionType, ChargingPeriod, Quantity
from shared.ocpi.v2_1_1.tariffs import Tariff
from shared.ocpi.v2_1_1.types import CiString36, CurrencyCode, DateTime, OcpiStruct, String36, String255

# A CDR's totals (cost, kWh, hours: Quantity) are never negative. JSON cannot carry NaN or Infinity and
# msgspec refuses numbers beyond the float range; the upper bound also keeps infinity out of CDRs
# built in code (msgspec.convert admits it), and no charging session comes near it.

__all__ = [
    "CDR",
    "AuthMethod",
    "CdrDimension",
    "CdrDimensionType",
    "ChargingPeriod",
]


class CDR(OcpiStruct, kw_only=True):
    """3.1"""

    id: CiString36
    start_date_time: DateTime
    stop_date_time: DateTime
    auth_id: String36
    auth_method: AuthMethod
    location: Location  # only the relevant EVSE and Connector
    meter_id: String255 | None = None
    currency: CurrencyCode
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], msgspec.Meta(min_length=1)]
    total_cost: Quantity  # excluding VAT
    total_energy: Quantity  # kWh
    total_time: Quantity  # hours, charging and not charging
    total_parking_time: Quantity | None = None  # hours
    remark: String255 | None = None
    last_updated: DateTime
