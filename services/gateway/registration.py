"""Outbound registration (we are the client): given a partner's versions URL and TOKEN_A."""

from __future__ import annotations

import structlog

from services.gateway.handshake import discover, our_credentials
from services.gateway.partner_client import PartnerApiError
from services.gateway.partners import ConnectionStatus, Partner, new_partner
from services.gateway.publishing import announce_registered, announce_unregistered, revoke
from services.gateway.responses import OcpiError, not_allowed
from services.gateway.state import Gateway
from services.gateway.tokens import new_token, token_hash
from shared.messaging.headers import current_request_id
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.settings import Role

log = structlog.get_logger(__name__)


async def register_with(gateway: Gateway, name: str, role: Role, versions_url: str, token_a: str) -> Partner:
    """Run the handshake towards a partner; on any failure nothing stays stored on our side."""
    request_id = current_request_id.get() or ""
    found = await discover(gateway.client, versions_url, token_a, role, request_id)
    token_b = new_token()
    partner = new_partner(
        name,
        role,
        "",
        "",
        token_hash=token_hash(token_b),
        versions_url=versions_url,
        version=found.version,
        endpoints=found.endpoints,
    )
    # Stored before the POST: the partner calls our versions endpoint with token_b while handling it.
    await gateway.partners.add(partner)
    try:
        theirs = await gateway.client.send_credentials(
            "POST",
            found.endpoints["credentials"],
            token_a,
            our_credentials(gateway.settings, token_b),
            request_id,
        )
    except PartnerApiError as exc:
        await gateway.partners.delete(partner.id)
        await revoke(gateway, [token_hash(token_b)])
        raise OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"Registration refused: {exc}") from exc
    updated = await gateway.partners.update_if(
        partner.id,
        {"status": ConnectionStatus.PENDING.value},
        {
            "status": ConnectionStatus.CONNECTED.value,
            "their_token": theirs.token,
            "country_code": theirs.country_code,
            "party_id": theirs.party_id,
            "business_details": to_builtins(theirs.business_details),
        },
    )
    if updated is None:
        raise OcpiError(OcpiStatus.SERVER_ERROR, "Partner record changed during registration")
    await announce_registered(gateway, updated)
    log.info("partner_registered", partner=name, partner_id=partner.id, direction="outbound")
    return updated


async def update_towards(gateway: Gateway, partner: Partner) -> Partner:
    """Credentials PUT towards the partner: new tokens both ways, their endpoints fetched again."""
    if partner.status is not ConnectionStatus.CONNECTED or not partner.their_token:
        raise not_allowed("Partner is not connected")
    request_id = current_request_id.get() or ""
    old_hash = partner.token_hash
    token_b = new_token()
    await gateway.partners.update_if(
        partner.id, {"token_hash": old_hash}, {"token_hash": token_hash(token_b)}
    )
    try:
        theirs = await gateway.client.send_credentials(
            "PUT",
            partner.endpoints["credentials"],
            partner.their_token,
            our_credentials(gateway.settings, token_b),
            request_id,
        )
        found = await discover(gateway.client, theirs.url, theirs.token, partner.role, request_id)
    except (PartnerApiError, OcpiError) as exc:
        # The partner did not take the new token: keep the one it still uses.
        await gateway.partners.update_if(
            partner.id, {"token_hash": token_hash(token_b)}, {"token_hash": old_hash}
        )
        raise OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"Credentials update refused: {exc}") from exc
    updated = await gateway.partners.update_if(
        partner.id,
        {"token_hash": token_hash(token_b)},
        {
            "their_token": theirs.token,
            "versions_url": theirs.url,
            "version": found.version,
            "endpoints": found.endpoints,
        },
    )
    if updated is None:
        raise OcpiError(OcpiStatus.SERVER_ERROR, "Partner record changed during the update")
    await revoke(gateway, [h for h in (old_hash,) if h])
    await announce_registered(gateway, updated)
    return updated


async def remove(gateway: Gateway, partner: Partner) -> None:
    """Unregister at the partner (best effort) and forget it here."""
    if (
        partner.status is ConnectionStatus.CONNECTED
        and partner.their_token
        and "credentials" in partner.endpoints
    ):
        try:
            await gateway.client.delete_credentials(partner.endpoints["credentials"], partner.their_token)
        except PartnerApiError as exc:
            log.warning("partner_delete_failed", partner_id=partner.id, reason=str(exc))
    await gateway.partners.delete(partner.id)
    hashes = [h for h in (partner.token_hash, partner.token_a_hash, *partner.retired_token_hashes) if h]
    await revoke(gateway, hashes)
    await announce_unregistered(gateway, partner.id)
