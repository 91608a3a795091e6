"""Calls to a partner's OCPI API during the credentials handshake (we are the client here)."""

from __future__ import annotations

from typing import Any, TypeVar

import aiohttp
import msgspec

from shared.ocpi.v2_1_1.codec import decode, encode
from shared.ocpi.v2_1_1.credentials import Credentials
from shared.ocpi.v2_1_1.status import OcpiResponse, OcpiStatus
from shared.ocpi.v2_1_1.versions import Version, VersionDetail, VersionNumber

T = TypeVar("T")


class PartnerApiError(Exception):
    """The partner's API could not be used (down, refused, or answered something we can't read)."""


class PartnerClient:
    """A thin OCPI client for versions and credentials; one aiohttp session per gateway."""

    def __init__(self, session: aiohttp.ClientSession, timeout: float = 10.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(
        self, method: str, url: str, token: str, type_: type[T], body: Any = None, request_id: str = ""
    ) -> T:
        headers = {"Authorization": f"Token {token}", "X-Request-ID": request_id or ""}
        data = encode(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=self._timeout
            ) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PartnerApiError(f"{method} {url} failed: {exc!r}") from exc
        if status >= 300:
            raise PartnerApiError(f"{method} {url} answered HTTP {status}")
        try:
            envelope = decode(payload, OcpiResponse[type_])  # type: ignore[valid-type]
        except msgspec.DecodeError as exc:
            raise PartnerApiError(f"{method} {url} answered an unreadable body: {exc}") from exc
        if envelope.status_code != OcpiStatus.SUCCESS or envelope.data is None:
            raise PartnerApiError(
                f"{method} {url} answered status {envelope.status_code}: {envelope.status_message or ''}"
            )
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
        headers = {"Authorization": f"Token {token}", "X-Request-ID": request_id}
        try:
            async with self._session.delete(url, headers=headers, timeout=self._timeout) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PartnerApiError(f"DELETE {url} failed: {exc!r}") from exc


def pick_version(versions: list[Version]) -> Version | None:
    """The version both sides speak: this platform implements 2.1.1 only."""
    for version in versions:
        if version.version == VersionNumber.V2_1_1:
            return version
    return None
