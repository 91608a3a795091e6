"""OCPI 2.1.1 Tokens module objects (mod_tokens.md)."""

from __future__ import annotations

import enum

from msgspec import UNSET, UnsetType

from shared.ocpi.v2_1_1.types import (
    DateTime,
    DisplayText,
    LanguageCode,
    OcpiStruct,
    String36,
    String39,
    String64,
)

__all__ = [
    "Allowed",
    "AuthorizationInfo",
    "LocationReferences",
    "Token",
    "TokenPatch",
    "TokenType",
    "WhitelistType",
]


class Allowed(enum.StrEnum):
    """4.1"""

    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class TokenType(enum.StrEnum):
    """4.3"""

    OTHER = "OTHER"
    RFID = "RFID"


class WhitelistType(enum.StrEnum):
    """4.4"""

    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class LocationReferences(OcpiStruct, kw_only=True):
    """4.2; also the optional body of the real-time authorization POST."""

    location_id: String39
    evse_uids: list[String39] | None = None
    connector_ids: list[String36] | None = None


class AuthorizationInfo(OcpiStruct, kw_only=True):
    """3.1: response of the real-time authorization POST."""

    allowed: Allowed
    location: LocationReferences | None = None
    info: DisplayText | None = None


class Token(OcpiStruct, kw_only=True):
    """3.2. The combination of ``uid`` and ``type`` is unique within an eMSP."""

    uid: String36
    type: TokenType
    auth_id: String36
    visual_number: String64 | None = None
    issuer: String64
    valid: bool
    whitelist: WhitelistType
    language: LanguageCode | None = None
    last_updated: DateTime


class TokenPatch(OcpiStruct, kw_only=True):
    """Partial Token (PATCH /tokens/{country_code}/{party_id}/{token_uid}); see locations.py."""

    uid: String36 | UnsetType = UNSET
    type: TokenType | UnsetType = UNSET
    auth_id: String36 | UnsetType = UNSET
    visual_number: String64 | UnsetType | None = UNSET
    issuer: String64 | UnsetType = UNSET
    valid: bool | UnsetType = UNSET
    whitelist: WhitelistType | UnsetType = UNSET
    language: LanguageCode | UnsetType | None = UNSET
    last_updated: DateTime | UnsetType = UNSET
