"""Which URLs and addresses we call on a partner's word (finding M1).

A partner gives us URLs (credentials `url`, versions, endpoints, pull `Link`s); anything we call
must be https and reach a public address, unless a setting allows http or non-public addresses
(`make run` and the tests allow both, so that two local deployments connect over
http://127.0.0.1). Cloud metadata, unspecified and multicast addresses are never called.

Checked three times: the URL before any connection (`check_url`, also IP literals), every address a
name resolves to (`PolicedResolver`), and the address each socket is made for (`policed_socket`),
so a name that resolves differently the second time (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

if TYPE_CHECKING:
    from shared.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata and platform endpoints of the usual clouds: credentials live there.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlNotAllowed(ValueError):
    """A URL we will not call; the message says which rule, in words a partner may read."""


class AddressNotAllowed(OSError):
    """A resolved address we will not connect to (an OSError, so aiohttp reports it as a connect failure)."""


@dataclass(frozen=True)
class OutboundPolicy:
    """The rules; the default is the strict one (production)."""

    allow_http: bool = False
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(allow_http=settings.outbound_allow_http, allow_private=settings.outbound_allow_private)

    def check_url(self, url: str) -> None:
        """Refuse a URL by its scheme, credentials or literal host, before any connection."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as exc:
            raise UrlNotAllowed("the URL cannot be parsed") from exc
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in schemes:
            raise UrlNotAllowed(f"the URL must use {' or '.join(schemes)}")
        if not parsed.host:
            raise UrlNotAllowed("the URL has no host")
        if parsed.user is not None or parsed.password is not None:
            raise UrlNotAllowed("the URL must not carry credentials")
        host = parsed.host.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            if not self.allow_private:
                raise UrlNotAllowed("the URL's host is not a public address")
            return
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: its addresses are checked once resolved
        try:
            self.check_address(literal)
        except AddressNotAllowed as exc:
            raise UrlNotAllowed(f"the URL's host {exc.strerror}") from exc

    def check_address(self, address: Address) -> None:
        """Refuse an address that is not public (unless allowed), or never to be called."""
        address = _embedded_ipv4(address)
        if address in METADATA:
            raise AddressNotAllowed(0, "is a cloud metadata address")
        # ::1 sits in IPv6's reserved ::/8, so loopback is left to the private rule below.
        if (
            address.is_unspecified
            or address.is_multicast
            or (address.is_reserved and not address.is_loopback)
        ):
            raise AddressNotAllowed(0, "is not a unicast address")
        if not address.is_global and not self.allow_private:
            raise AddressNotAllowed(0, "is not a public address")


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64), which is what would be reached."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _address_of(host: str) -> Address:
    # A link-local IPv6 address may carry a zone ("%eth0"): the address is what counts.
    return ipaddress.ip_address(host.split("%", 1)[0])


class PolicedResolver(AbstractResolver):
    """Resolves names, and refuses the name when any of its addresses is not allowed."""

    def __init__(self, policy: OutboundPolicy, names: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._names = names or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._names.resolve(host, port, family)
        for result in results:
            self._policy.check_address(_address_of(result["host"]))
        return results

    async def close(self) -> None:
        await self._names.close()


SocketFactory = Callable[[tuple[Any, ...]], socket.socket]


def policed_socket(policy: OutboundPolicy) -> SocketFactory:
    """A socket factory for aiohttp's connector: the last check, on the address actually connected to."""

    def make(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        policy.check_address(_address_of(str(sockaddr[0])))
        return socket.socket(family=family, type=type_, proto=proto)

    return make
