"""Outbound registration (we are the client): given a partner's versions URL and TOKEN_A."""

from __future__ import annotations

import asyncio

import structlog
from pymongo.errors import PyMongoError

from services.gateway.handshake import discover, our_credentials
from services.gateway.partner_client import PartnerApiError
from services.gateway.partners import (
    Announcement,
    ConnectionStatus,
    Partner,
    Pending,
    new_partner,
    pending,
)
from services.gateway.party_claims import claimed_party_refusal
from services.gateway.publishing import announce, publish_all_owed
from services.gateway.responses import OcpiError, not_allowed
from services.gateway.state import Gateway
from services.gateway.tokens import new_token, token_hash
from shared.contracts.partners import Party
from shared.failpoints import failpoint
from shared.messaging.headers import current_request_id
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.settings import Role

log = structlog.get_logger(__name__)
# Test-only crash point: the partner accepted our credentials PUT, its answer is not stored yet.
BEFORE_STORE = "gateway.rotation.before_store"
# Pauses between tries to store a partner's rotation answer while the database refuses it (~8 s).
STORE_ANSWER_PAUSES = (0.25, 0.5, 1.0, 2.0, 4.0)


async def register_with(
    gateway: Gateway,
    name: str,
    role: Role,
    versions_url: str,
    token_a: str,
    parties: list[Party],
    *,
    shared_party: bool = False,
) -> Partner:
    """Run the handshake towards a partner; on any failure nothing stays stored on our side.

    The partner owns `parties`, as the operator named them; its credentials answer must be one of
    them, or the registration is undone (M3). They are claimed with the partner: PartiesTaken when
    another partner took one meanwhile (unless `shared_party`), NameTaken for its name.
    """
    request_id = current_request_id.get() or ""
    found = await discover(gateway.client, versions_url, token_a, role, request_id, reveal=True)
    token_b = new_token()
    partner = new_partner(
        name,
        role,
        parties[0].country_code,
        parties[0].party_id,
        extra_parties=parties[1:],
        token_hash=token_hash(token_b),
        versions_url=versions_url,
        version=found.version,
        endpoints=found.endpoints,
    )
    # Stored before the POST: the partner calls our versions endpoint with token_b while handling it.
    await gateway.partners.add(partner, shared_party=shared_party)
    try:
        theirs = await gateway.client.send_credentials(
            "POST",
            found.endpoints["credentials"],
            token_a,
            our_credentials(gateway.settings, token_b),
            request_id,
        )
    except PartnerApiError as exc:
        # Removed like any partner: token_b may be cached by replicas, and the sweep finishes it.
        await _remove_here(gateway, partner, strict=False)
        raise OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"Registration refused: {exc}") from exc
    refusal = claimed_party_refusal(parties, theirs.country_code, theirs.party_id)
    if refusal is not None:
        # It accepted us: unregister there (best effort), then forget it here; token_b dies with it.
        try:
            await gateway.client.delete_credentials(found.endpoints["credentials"], theirs.token, request_id)
        except PartnerApiError as exc:
            log.warning("partner_delete_failed", partner_id=partner.id, reason=str(exc))
        await _remove_here(gateway, partner, strict=False)
        log.warning("partner_party_refused", partner=name, claimed=f"{theirs.country_code}/{theirs.party_id}")
        raise OcpiError(
            OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
            f"Registration refused: {refusal}; nothing was kept",
            http_status=400,
        )
    # Replicas drop token_b's cached PENDING principal; the dispatcher hears the connection.
    owed = pending(Announcement.REGISTERED, [token_hash(token_b)])
    updated = await gateway.partners.update_if(
        partner.id,
        {"status": ConnectionStatus.PENDING.value, "removed_at": None},
        {
            "status": ConnectionStatus.CONNECTED.value,
            "their_token": theirs.token,
            "business_details": to_builtins(theirs.business_details),
        },
        owed=owed,
    )
    if updated is None:
        raise OcpiError(OcpiStatus.SERVER_ERROR, "Partner record changed during registration")
    await _announce_or_fail(gateway, updated, owed)
    log.info("partner_registered", partner=name, partner_id=partner.id, direction="outbound")
    return updated


async def update_towards(gateway: Gateway, partner: Partner) -> Partner:
    """Credentials PUT towards the partner: new tokens both ways, their endpoints fetched again.

    No step's failure locks the partner out (M4). Our new token is offered beside the current one
    before the PUT, and both stay valid until the partner's answer is stored; only then is the old
    one retired. We never go back to a token the partner may have dropped: a failed PUT leaves both
    valid, and a failed discovery of its new versions URL keeps its answer with the old endpoints.
    """
    if partner.status is not ConnectionStatus.CONNECTED or not partner.their_token:
        raise not_allowed("Partner is not connected")
    request_id = current_request_id.get() or ""
    token_b = new_token()
    hash_b = token_hash(token_b)
    try:
        offered = await gateway.partners.update_if(
            partner.id,
            {
                "token_hash": partner.token_hash,
                "status": ConnectionStatus.CONNECTED.value,
                "removed_at": None,
            },
            {},
            offer=hash_b,
        )
    except PyMongoError as exc:
        # Step 1 failed: the partner must never hold a token we may not know, so nothing is sent.
        log.warning("partner_rotation_not_stored", partner_id=partner.id, reason=repr(exc))
        raise OcpiError(
            OcpiStatus.SERVER_ERROR,
            f"The new token could not be stored (database: {type(exc).__name__}, see the gateway's log); "
            "nothing was sent to the partner and its current token still works. Try again once the "
            "database works",
            http_status=503,
        ) from exc
    if offered is None:
        raise OcpiError(
            OcpiStatus.SERVER_ERROR, "Partner record changed meanwhile; nothing was sent, try again"
        )
    try:
        theirs = await gateway.client.send_credentials(
            "PUT",
            partner.endpoints["credentials"],
            partner.their_token,
            our_credentials(gateway.settings, token_b),
            request_id,
        )
    except PartnerApiError as exc:
        # It may have taken token_b before failing (a timeout after it stored it): both stay valid
        # until a rotation completes.
        log.warning("partner_rotation_refused", partner_id=partner.id, reason=str(exc))
        raise OcpiError(
            OcpiStatus.UNABLE_TO_USE_CLIENT_API,
            f"Credentials update refused: {exc}; the partner's current token and the one offered both "
            "still work",
        ) from exc
    failpoint(BEFORE_STORE)
    await _store_answer(gateway, offered, hash_b, theirs.token)
    try:
        found = await discover(
            gateway.client, theirs.url, theirs.token, partner.role, request_id, reveal=True
        )
    except OcpiError as exc:
        log.warning("partner_rotation_discovery_failed", partner_id=partner.id, reason=exc.message)
        raise OcpiError(
            OcpiStatus.UNABLE_TO_USE_CLIENT_API,
            f"The partner took the new credentials (stored), but its new versions URL did not work, so "
            f"its endpoints were kept: {exc.message}. Repeat the rotation once it works.",
        ) from exc
    owed = pending(Announcement.REGISTERED, [])
    updated = await gateway.partners.update_if(
        partner.id,
        {"token_hash": hash_b},
        {"versions_url": theirs.url, "version": found.version, "endpoints": found.endpoints},
        owed=owed,
    )
    if updated is None:
        raise OcpiError(OcpiStatus.SERVER_ERROR, "Partner record changed during the update")
    await _announce_or_fail(gateway, updated, owed)
    return updated


async def _store_answer(gateway: Gateway, partner: Partner, hash_b: str, their_token: str) -> Partner:
    """The partner took token_b: make it the token, retire the old and any other offered one, keep
    the token it gave us, and announce that (the dispatcher must call it with the new token).

    The partner's answer exists only in this request now: a database that refuses the write is
    tried again for a few seconds before the answer is given up (both our tokens keep working).
    """
    retired = [partner.token_hash, *(h for h in partner.next_token_hashes if h != hash_b)]
    owed = pending(Announcement.REGISTERED, retired)
    for pause in (*STORE_ANSWER_PAUSES, None):
        try:
            stored = await gateway.partners.update_if(
                partner.id,
                {"next_token_hashes": hash_b, "status": ConnectionStatus.CONNECTED.value, "removed_at": None},
                {"token_hash": hash_b, "next_token_hashes": [], "their_token": their_token},
                owed=owed,
            )
            break
        except PyMongoError as exc:
            if pause is None:
                log.error("partner_rotation_answer_not_stored", partner_id=partner.id, reason=repr(exc))
                raise OcpiError(
                    OcpiStatus.SERVER_ERROR,
                    f"The partner took the new credentials, but its answer could not be stored (database: "
                    f"{type(exc).__name__}, see the gateway's log). The partner's current token and the one "
                    "offered both still work; we still call it with its previous token, which it may no "
                    "longer accept. Repeat the rotation once the database works",
                    http_status=503,
                ) from exc
            log.warning("partner_rotation_answer_store_retried", partner_id=partner.id, reason=repr(exc))
            await asyncio.sleep(pause)
    if stored is None:
        # Changed meanwhile (an inbound PUT or DELETE, a removal): that change holds; token_b stays
        # offered if it still can be.
        raise OcpiError(
            OcpiStatus.SERVER_ERROR,
            "The partner took the new credentials, but the partner record changed meanwhile; check "
            "`partner list` and repeat the rotation",
        )
    # A deferred announcement is the sweep's; the rotation goes on to refresh the endpoints.
    await announce(gateway, stored, owed)
    return stored


async def remove(gateway: Gateway, partner: Partner) -> None:
    """Unregister at the partner (best effort), mark it removed and announce it; then it is deleted.

    Repeatable: a partner whose removal was committed but not announced (the process died, the
    broker failed) is finished by the next call, or by the sweep.
    """
    if partner.removed_at is None:
        if (
            partner.status is ConnectionStatus.CONNECTED
            and partner.their_token
            and "credentials" in partner.endpoints
        ):
            try:
                await gateway.client.delete_credentials(partner.endpoints["credentials"], partner.their_token)
            except PartnerApiError as exc:
                log.warning("partner_delete_failed", partner_id=partner.id, reason=str(exc))
        await _remove_here(gateway, partner)
        return
    log.info("partner_removal_resumed", partner_id=partner.id, owed=len(partner.outbox))
    try:
        await publish_all_owed(gateway, partner)
    except Exception as exc:
        raise _deferred(partner) from exc


async def _remove_here(gateway: Gateway, partner: Partner, *, strict: bool = True) -> None:
    """Commit the removal with its announcement, then announce it; when that fails, it is left to
    the sweep and, if `strict`, the caller hears so."""
    for _ in range(3):
        # Every token it ever had stops working everywhere; the dispatcher forgets it.
        hashes = [
            partner.token_hash,
            partner.token_a_hash,
            *partner.next_token_hashes,
            *partner.retired_token_hashes,
        ]
        owed = pending(Announcement.UNREGISTERED, hashes)
        removed = await gateway.partners.update_if(
            partner.id,
            # Pinned to the tokens read, so that none issued meanwhile escapes the revocation.
            {"removed_at": None, "token_hash": partner.token_hash, "token_a_hash": partner.token_a_hash},
            {
                "removed_at": owed.at,
                "status": ConnectionStatus.UNREGISTERED.value,
                "token_hash": None,
                "token_a_hash": None,
                "their_token": None,
                "next_token_hashes": [],
                "retired_token_hashes": [],
            },
            owed=owed,
        )
        if removed is not None:
            log.info("partner_removed", partner_id=partner.id, partner=partner.name)
            await _release_parties(gateway, partner)
            if not await announce(gateway, removed, owed) and strict:
                raise _deferred(removed)
            return
        current = await gateway.partners.get(partner.id)
        if current is None:
            return  # a concurrent removal finished meanwhile
        if current.removed_at is not None:
            await remove(gateway, current)  # a concurrent removal committed: finish it
            return
        partner = current
    raise OcpiError(OcpiStatus.SERVER_ERROR, "Partner record kept changing during the removal")


async def _release_parties(gateway: Gateway, partner: Partner) -> None:
    """Its parties are free again (M3). When this fails the removal holds: the claims of a removed
    partner no longer count, and are dropped when it is deleted."""
    try:
        await gateway.partners.release_claims(partner.id)
    except PyMongoError as exc:
        log.warning("party_claims_not_released", partner_id=partner.id, reason=repr(exc))


async def _announce_or_fail(gateway: Gateway, partner: Partner, owed: Pending) -> None:
    """The operator hears when the announcement was left to the sweep (and may repeat the call)."""
    if not await announce(gateway, partner, owed):
        raise _deferred(partner)


def _deferred(partner: Partner) -> OcpiError:
    return OcpiError(
        OcpiStatus.SERVER_ERROR,
        f"The change to partner {partner.id} is stored, but not announced yet: the gateway announces "
        "it within a minute, or repeat the call",
        http_status=503,
    )
