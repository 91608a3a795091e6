"""The steps of the credentials handshake that both directions share."""

from __future__ import annotations

import msgspec
import structlog

from services.gateway.endpoints import missing_endpoints, versions_url
from services.gateway.partner_client import PartnerApiError, PartnerClient, pick_version
from services.gateway.responses import OcpiError, bad_body, invalid
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.credentials import Credentials
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.types import BusinessDetails
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Role, Settings

log = structlog.get_logger(__name__)
MODULE_IDS = frozenset(m.value for m in ModuleID)


class PartnerVersion(msgspec.Struct, frozen=True):
    """What we learnt from a partner's versions endpoint and version details."""

    version: str
    endpoints: dict[str, str]


async def discover(
    client: PartnerClient,
    url: str,
    token: str,
    partner_role: Role,
    request_id: str = "",
    *,
    reveal: bool = False,
) -> PartnerVersion:
    """Fetch a partner's versions and 2.1.1 details; 2001 for a URL our policy refuses, 3001/3002/3003
    when that does not work out. What went wrong is logged; the answer names it only with `reveal`
    (the operator's admin calls): a partner learns nothing of our network from it (M1)."""
    try:
        versions = await client.versions(url, token, request_id)
    except PartnerApiError as exc:
        log.warning("partner_versions_failed", url=url[:200], reason=str(exc))
        raise _unusable("versions endpoint", exc, reveal) from exc
    chosen = pick_version(versions)
    if chosen is None:
        offered = ", ".join(v.version for v in versions) or "none"
        raise OcpiError(
            OcpiStatus.UNSUPPORTED_VERSION, f"No common version: we speak 2.1.1, you offer {offered}"
        )
    try:
        detail = await client.version_detail(chosen.url, token, request_id)
    except PartnerApiError as exc:
        log.warning("partner_version_details_failed", url=chosen.url[:200], reason=str(exc))
        raise _unusable("version details", exc, reveal) from exc
    # Only OCPI modules: identifiers become keys of stored documents (`$x`, `a.b` must never reach
    # MongoDB, review L12), and a module we do not speak is not ours to call.
    endpoints = {e.identifier: e.url for e in detail.endpoints if e.identifier in MODULE_IDS}
    ignored = sorted({e.identifier[:40] for e in detail.endpoints} - set(endpoints))
    if ignored:
        log.info("partner_endpoints_ignored", identifiers=ignored[:20])
    for identifier, endpoint_url in sorted(endpoints.items()):
        refusal = client.refusal(endpoint_url)
        if refusal is not None:
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"Your {identifier} endpoint: {refusal}",
                http_status=400,
            )
    missing = missing_endpoints(partner_role, endpoints)
    if missing:
        raise OcpiError(
            OcpiStatus.NO_MATCHING_ENDPOINTS, f"Your 2.1.1 endpoints lack: {', '.join(sorted(missing))}"
        )
    return PartnerVersion(version=chosen.version, endpoints=endpoints)


def _unusable(what: str, exc: PartnerApiError, reveal: bool) -> OcpiError:
    """2001 when our policy refused their URL (that rule is theirs to know); otherwise one 3001 text
    for every failure (connect error, timeout, HTTP status, unreadable answer) unless `reveal`."""
    if exc.refusal is not None:
        return OcpiError(
            OcpiStatus.INVALID_OR_MISSING_PARAMETERS, f"Your {what}: {exc.refusal}", http_status=400
        )
    detail = f": {exc}" if reveal else "; the X-Request-ID of this answer finds the cause in our logs"
    return OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"Unable to use your {what}{detail}")


def our_credentials(settings: Settings, token: str) -> Credentials:
    """The credentials object we hand a partner: its token to call us and who we are."""
    return Credentials(
        token=token,
        url=versions_url(settings),
        business_details=BusinessDetails(name=settings.business_name),
        party_id=settings.party_id,
        country_code=settings.country_code,
    )


def parse_credentials(body: bytes) -> Credentials:
    """Validate a credentials body at the edge; the error names the field."""
    if not body:
        raise invalid("Request body is empty; a credentials object is required")
    try:
        return decode(body, Credentials)
    except msgspec.DecodeError as exc:
        raise bad_body("credentials object", exc) from exc
