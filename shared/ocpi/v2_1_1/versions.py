"""OCPI 2.1.1 version information and version details (version_information_endpoint.md).

``Version.version`` is a plain string: a partner's versions list may name versions this enum does
not know (e.g. "2.2.1"), and one unknown entry must not make the whole list unreadable. Compare it
with ``VersionNumber`` members (they are ``StrEnum``s). ``VersionDetail.version`` is strict, as we
only fetch the details of a version we support. 2.1.1 endpoints have no ``role``.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from shared.ocpi.v2_1_1.types import URL, OcpiStruct, String10, String255

__all__ = ["Endpoint", "ModuleID", "Version", "VersionDetail", "VersionNumber"]


class VersionNumber(enum.StrEnum):
    V2_0 = "2.0"
    V2_1 = "2.1"  # deprecated, use 2.1.1
    V2_1_1 = "2.1.1"


class ModuleID(enum.StrEnum):
    CDRS = "cdrs"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class Version(OcpiStruct, kw_only=True):
    version: String10
    url: URL


class Endpoint(OcpiStruct, kw_only=True):
    # A plain string: partners may list custom modules we do not know, and that must not make
    # their whole version details unreadable. Our own endpoints use ModuleID values.
    identifier: String255
    url: URL


class VersionDetail(OcpiStruct, kw_only=True):
    version: VersionNumber
    endpoints: Annotated[list[Endpoint], msgspec.Meta(min_length=1)]
