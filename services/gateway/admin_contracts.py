"""Bodies of the operator's admin API, validated at the edge like everything else."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shared.contracts.partners import Party
from shared.settings import Role

CountryCode = Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern="^[A-Z]{2}$")]
PartyId = Annotated[str, msgspec.Meta(min_length=3, max_length=3, pattern="^[A-Z0-9]{3}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
HttpUrl = Annotated[str, msgspec.Meta(max_length=255, pattern=r"^https?://[^\s/$.?#][^\s]*$")]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[!-~]+$")]


class NamedParty(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A party the operator names for a partner (M3: parties are ours to assign, never the partner's)."""

    country_code: CountryCode
    party_id: PartyId

    def party(self) -> Party:
        return Party(self.country_code, self.party_id)


Parties = Annotated[list[NamedParty], msgspec.Meta(max_length=100)]


class AddPartner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a partner and a TOKEN_A to hand over offline."""

    name: Name
    country_code: CountryCode
    party_id: PartyId
    role: Role
    # A hub writes objects for several parties: list the extra ones here.
    extra_parties: Parties = msgspec.field(default_factory=list)
    # The operator allows a party another partner owns already (two connections of one party).
    shared_party: bool = False


class RegisterPartner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Register with a partner from its versions URL and the TOKEN_A it gave us."""

    versions_url: HttpUrl
    token: Token
    # The parties it may write for; its credentials answer must be one of them (M3).
    parties: Annotated[list[NamedParty], msgspec.Meta(min_length=1, max_length=100)]
    name: Name | None = None
    role: Role | None = None
    shared_party: bool = False


class PartnerView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: Role
    country_code: str
    party_id: str
    parties: list[Party]
    status: str
    sync_state: str
    sync_detail: str
    versions_url: str | None
    version: str | None
    endpoints: dict[str, str]
    # Set while it has a TOKEN_A (added, not registered yet): when that stops working (L18).
    token_a_expires_at: datetime | None = None
    token_a_expired: bool = False


class AddedPartner(msgspec.Struct, kw_only=True):
    partner: PartnerView
    token_a: str
    versions_url: str
