"""OCPI 2.1.1 Credentials object (credentials.md 2.1). 2.1.1 has no ``roles`` list."""

from __future__ import annotations

from shared.ocpi.v2_1_1.types import URL, BusinessDetails, CountryCode, OcpiStruct, PartyId, String64

__all__ = ["Credentials"]


class Credentials(OcpiStruct, kw_only=True):
    """2.1"""

    token: String64
    url: URL  # the party's versions endpoint
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode
