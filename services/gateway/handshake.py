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
from shared.settings import Role, Settings

log = structlog.get_logger(__name__)


class PartnerVersion(msgspec.Struct, frozen=True):
    """What we learnt from a partner's versions endpoint and version details."""

    version: str
    endpoints: dict[str, str]


async def discover(
    client: PartnerClient, url: str, token: str, partner_role: Role, request_id: str = ""
) -> PartnerVersion:
    """Fetch a partner's versions and 2.1.1 details; 3001/3002/3003 when that does not work out."""
    try:
        versions = await client.versions(url, token, request_id)
    except PartnerApiError as exc:
        log.warning("partner_versions_failed", url=url, reason=str(exc))
        raise OcpiError(
            OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"Unable to use your versions endpoint: {exc}"
        ) from exc
    chosen = pick_version(versions)
    if chosen is None:
        offered = ", ".join(v.version for v in versions) or "none"
        raise OcpiError(
            OcpiStatus.UNSUPPORTED_VERSION, f"No common version: we speak 2.1.1, you offer {offered}"
        )
    try:
        detail = await client.version_detail(chosen.url, token, request_id)
    except PartnerApiError as exc:
        raise OcpiError(
            OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"Unable to use your version details: {exc}"
        ) from exc
    endpoints = {str(e.identifier): e.url for e in detail.endpoints}
    missing = missing_endpoints(partner_role, endpoints)
    if missing:
        raise OcpiError(
            OcpiStatus.NO_MATCHING_ENDPOINTS, f"Your 2.1.1 endpoints lack: {', '.join(sorted(missing))}"
        )
    return PartnerVersion(version=chosen.version, endpoints=endpoints)


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
