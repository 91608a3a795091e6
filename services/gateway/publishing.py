"""Events the gateway publishes about partners: registry changes and revoked tokens.

Every registry change is committed together with the outbox entry (`Pending`) of what it owes the
other processes. `announce` publishes the entry right after the commit and clears it once the
broker has confirmed; when that does not happen (broker blip, crash, cancellation), the sweep
(`sweeper.py`) publishes it again. Receivers take the events idempotently: a token is dropped
twice, and the dispatcher orders registrations by the `at` of the change, which the entry keeps.
"""

from __future__ import annotations

import structlog

from services.gateway.partners import Announcement, ConnectionStatus, Partner, Pending
from services.gateway.state import Gateway
from shared.contracts.partners import PartnerRegistered, PartnerUnregistered, TokensRevoked
from shared.failpoints import failpoint

log = structlog.get_logger(__name__)
# Test-only crash point between a committed registry change and its first publish.
AFTER_COMMIT = "gateway.after_registry_commit"


async def announce(gateway: Gateway, partner: Partner, entry: Pending) -> bool:
    """Publish what the just committed change owes; False (logged) when it is left to the sweep.

    `partner` is the state the commit returned. Nothing is held meanwhile: a crash here leaves the
    entry in the document, nothing else.
    """
    failpoint(AFTER_COMMIT)
    try:
        await publish_owed(gateway, partner, entry)
    except Exception as exc:
        log.warning(
            "registry_announcement_deferred",
            partner_id=partner.id,
            entry=entry.id,
            announce=entry.announce.value if entry.announce else None,
            reason=repr(exc),
        )
        return False
    return True


async def publish_owed(gateway: Gateway, partner: Partner, entry: Pending) -> None:
    """Publish one outbox entry, then clear it (a removed partner is deleted once nothing is owed).

    A REGISTERED entry is published with the partner's connection as `partner` holds it; a partner
    unregistered or removed since then gets none (the later change owes its own event).
    """
    gateway.cache.drop(entry.revoked)
    gateway.cache.drop_partner(partner.id)
    if entry.revoked:
        await gateway.broker.publish_event(TokensRevoked(token_hashes=entry.revoked))
    if entry.announce is Announcement.UNREGISTERED:
        await gateway.broker.publish_event(
            PartnerUnregistered(partner_id=partner.id, unregistered_at=entry.at)
        )
    elif (
        entry.announce is Announcement.REGISTERED
        and partner.status is ConnectionStatus.CONNECTED
        and partner.removed_at is None
    ):
        await gateway.broker.publish_event(registered_event(partner, entry))
    if await gateway.partners.announced(partner.id, entry.id):
        log.info("partner_deleted", partner_id=partner.id, reason="removal announced")


def registered_event(partner: Partner, entry: Pending) -> PartnerRegistered:
    """How the dispatcher reaches the partner, stamped with the time of the change; not the token,
    which the dispatcher asks for (token_requests.py)."""
    return PartnerRegistered(
        partner_id=partner.id,
        name=partner.name,
        role=partner.role,
        parties=partner.parties,
        versions_url=partner.versions_url or "",
        version=partner.version or "",
        endpoints=partner.endpoints,
        registered_at=entry.at,
    )


async def publish_all_owed(gateway: Gateway, partner: Partner) -> None:
    """Publish every entry the partner still owes, oldest first; a removed one is then deleted.
    Raises on the first failure: what is left stays for the next try."""
    for entry in sorted(partner.outbox, key=lambda e: e.at):
        await publish_owed(gateway, partner, entry)
    if partner.removed_at is not None and await gateway.partners.delete_if_announced(partner.id):
        log.info("partner_deleted", partner_id=partner.id, reason="removal announced")
