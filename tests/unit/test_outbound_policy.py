"""Which partner URLs and addresses we call (M1): https and public addresses only, unless allowed."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from shared.outbound_policy import AddressNotAllowed, OutboundPolicy, UrlNotAllowed, policed_socket
from shared.settings import load_settings

STRICT = OutboundPolicy()
LOCAL = OutboundPolicy(allow_http=True, allow_private=True)

NOT_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.1.1",  # link-local
    "::1",
    "fe80::1",
    "fd12:3456::1",  # unique local
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "192.0.2.1",  # documentation
]
NEVER = [
    "169.254.169.254",
    "fd00:ec2::254",
    "100.100.100.200",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "255.255.255.255",
]


@pytest.mark.parametrize("address", NOT_PUBLIC + NEVER)
def test_loopback_private_link_local_and_metadata_addresses_are_refused_by_default(address: str) -> None:
    with pytest.raises(AddressNotAllowed):
        STRICT.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_allow_private_lets_local_deployments_connect(address: str) -> None:
    LOCAL.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NEVER)
def test_metadata_and_non_unicast_addresses_are_refused_even_when_private_ones_are_allowed(
    address: str,
) -> None:
    with pytest.raises(AddressNotAllowed):
        LOCAL.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "93.184.216.34"])
def test_public_addresses_are_allowed(address: str) -> None:
    STRICT.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://partner.example.com/ocpi/versions",  # not https
        "ftp://partner.example.com/x",
        "file:///etc/passwd",
        "https://127.0.0.1/ocpi/versions",
        "https://[::1]:8443/x",
        "https://10.0.0.5/x",
        "https://localhost/x",
        "https://api.localhost/x",
        "https://user:secret@partner.example.com/x",
        "https:///no-host",
        "not a url",
    ],
)
def test_urls_refused_by_default(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        STRICT.check_url(url)


def test_an_https_url_with_a_public_name_passes_the_static_check() -> None:
    """Names are checked again once resolved (the resolver and the socket factory)."""
    STRICT.check_url("https://partner.example.com:8443/ocpi/versions?x=1")


def test_local_policy_allows_http_to_loopback_but_never_metadata() -> None:
    LOCAL.check_url("http://127.0.0.1:8080/ocpi/versions")
    LOCAL.check_url("http://localhost:8080/ocpi/versions")
    with pytest.raises(UrlNotAllowed):
        LOCAL.check_url("http://169.254.169.254/latest/meta-data/")


def test_the_socket_factory_refuses_the_address_actually_connected_to() -> None:
    """The last check: whatever resolved the name, the socket is never made for a refused address."""
    make = policed_socket(STRICT)
    with pytest.raises(AddressNotAllowed):
        make((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    with pytest.raises(AddressNotAllowed):
        make((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:192.168.0.1", 80, 0, 0)))
    sock = make((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 443)))
    sock.close()


def test_the_policy_comes_from_settings_and_is_strict_by_default() -> None:
    assert OutboundPolicy.from_settings(load_settings(environ={})) == STRICT
    env = {"OUTBOUND_ALLOW_HTTP": "true", "OUTBOUND_ALLOW_PRIVATE": "true"}
    assert OutboundPolicy.from_settings(load_settings(environ=env)) == LOCAL
