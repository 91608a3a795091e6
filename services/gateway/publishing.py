"""Events the gateway publishes about partners: registry changes and revoked tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from services.gateway.partners import Partner
from services.gateway.state import Gateway
from shared.contracts.partners import PartnerRegistered, PartnerUnregistered, TokensRevoked


async def revoke(gateway: Gateway, hashes: list[str]) -> None:
    """Drop tokens from this replica's cache now and from every other replica's via the broker."""
    gateway.cache.drop(hashes)
    await gateway.broker.publish_event(TokensRevoked(token_hashes=hashes))


async def announce_registered(gateway: Gateway, partner: Partner) -> None:
    """Tell the dispatcher how to reach the partner; replicas drop what they cached of it."""
    await revoke(gateway, [h for h in (partner.token_hash, partner.token_a_hash) if h])
    gateway.cache.drop_partner(partner.id)
    await gateway.broker.publish_event(
        PartnerRegistered(
            partner_id=partner.id,
            name=partner.name,
            role=partner.role,
            parties=partner.parties,
            versions_url=partner.versions_url or "",
            version=partner.version or "",
            endpoints=partner.endpoints,
            token=partner.their_token or "",
            registered_at=datetime.now(UTC),
        )
    )


async def announce_unregistered(gateway: Gateway, partner_id: str) -> None:
    gateway.cache.drop_partner(partner_id)
    await gateway.broker.publish_event(
        PartnerUnregistered(partner_id=partner_id, unregistered_at=datetime.now(UTC))
    )
