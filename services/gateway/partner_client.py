"""Calls to a partner's OCPI API during the credentials handshake (we are the client here)."""

from __future__ import annotations

from typing import Any, TypeVar

import aiohttp
import msgspec
import structlog

from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.credentials import Credentials
from shared.ocpi.v2_1_1.status import OcpiResponse, OcpiStatus
from shared.ocpi.v2_1_1.versions import Version, VersionDetail, VersionNumber
from shared.outbound_http import PartnerAnswer, PartnerCaller, PartnerCallFailed, policy_of
from shared.outbound_policy import UrlNotAllowed

log = structlog.get_logger(__name__)
T = TypeVar("T")
# The partner's status_message ends up in our answer to it and in our logs: keep it short.
MAX_MESSAGE = 500


class PartnerApiError(Exception):
    """The partner's API could not be used (down, refused, or answered something we can't read).

    The message is for our logs and the operator: it may name addresses, connect errors and HTTP
    statuses. `refusal` is set when our outbound policy refused the URL itself (M1): that text
    speaks of the partner's own URL only, so the partner may read it.
    """

    def __init__(self, message: str, refusal: str | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class PartnerClient:
    """A thin OCPI client for versions and credentials; one aiohttp session per gateway."""

    def __init__(self, session: aiohttp.ClientSession, *, max_body: int, timeout: float = 10.0) -> None:
        self._caller = PartnerCaller(session, timeout, max_body)
        self._policy = policy_of(session)

    def refusal(self, url: str) -> str | None:
        """Why our outbound policy would not call this URL (a partner may read it), or None."""
        try:
            self._policy.check_url(url)
        except UrlNotAllowed as exc:
            return f"URL not allowed: {exc}"
        return None

    async def _send(
        self, method: str, url: str, token: str, body: Any = None, request_id: str = ""
    ) -> PartnerAnswer:
        """One bounded call (see shared.outbound_http); any failure is a PartnerApiError."""
        try:
            return await self._caller.call(method, url, token, body=body, request_id=request_id)
        except PartnerCallFailed as exc:
            refusal = str(exc) if exc.reason == "not_allowed" else None
            raise PartnerApiError(f"{method} {url} failed: {exc}", refusal) from exc

    async def _call(
        self, method: str, url: str, token: str, type_: type[T], body: Any = None, request_id: str = ""
    ) -> T:
        answer = await self._send(method, url, token, body, request_id)
        if answer.http_status >= 300:
            raise PartnerApiError(f"{method} {url} answered HTTP {answer.http_status}")
        try:
            envelope = decode(answer.body, OcpiResponse[type_])  # type: ignore[valid-type]
        except msgspec.DecodeError as exc:
            raise PartnerApiError(f"{method} {url} answered an unreadable body: {exc}") from exc
        except RecursionError as exc:
            # msgspec gives up on JSON nested ~1000 deep with RecursionError, not DecodeError.
            log.warning("partner_answer_refused", reason="too_deep", method=method, url=url[:200])
            raise PartnerApiError(f"{method} {url} answered JSON nested too deep") from exc
        if envelope.status_code != OcpiStatus.SUCCESS or envelope.data is None:
            message = (envelope.status_message or "")[:MAX_MESSAGE]
            raise PartnerApiError(f"{method} {url} answered status {envelope.status_code}: {message}")
        result: T = envelope.data
        return result

    async def versions(self, url: str, token: str, request_id: str = "") -> list[Version]:
        return await self._call("GET", url, token, list[Version], request_id=request_id)

    async def version_detail(self, url: str, token: str, request_id: str = "") -> VersionDetail:
        return await self._call("GET", url, token, VersionDetail, request_id=request_id)

    async def send_credentials(
        self, method: str, url: str, token: str, ours: Credentials, request_id: str = ""
    ) -> Credentials:
        return await self._call(method, url, token, Credentials, body=ours, request_id=request_id)

    async def delete_credentials(self, url: str, token: str, request_id: str = "") -> None:
        await self._send("DELETE", url, token, request_id=request_id)


def pick_version(versions: list[Version]) -> Version | None:
    """The version both sides speak: this platform implements 2.1.1 only."""
    for version in versions:
        if version.version == VersionNumber.V2_1_1:
            return version
    return None
