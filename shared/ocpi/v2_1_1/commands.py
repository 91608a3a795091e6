"""OCPI 2.1.1 Commands module objects (mod_commands.md)."""

from __future__ import annotations

import enum

from shared.ocpi.v2_1_1.tokens import Token
from shared.ocpi.v2_1_1.types import URL, DateTime, NonNegativeInt, OcpiStruct, String36, String39

__all__ = [
    "CommandResponse",
    "CommandResponseType",
    "CommandType",
    "ReserveNow",
    "StartSession",
    "StopSession",
    "UnlockConnector",
]


class CommandType(enum.StrEnum):
    """4.2"""

    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(enum.StrEnum):
    """4.1"""

    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResponse(OcpiStruct, kw_only=True):
    """3.1"""

    result: CommandResponseType


class ReserveNow(OcpiStruct, kw_only=True):
    """3.2"""

    response_url: URL
    token: Token
    expiry_date: DateTime
    reservation_id: NonNegativeInt
    location_id: String39
    evse_uid: String39 | None = None


class StartSession(OcpiStruct, kw_only=True):
    """3.3"""

    response_url: URL
    token: Token
    location_id: String39
    evse_uid: String39 | None = None


class StopSession(OcpiStruct, kw_only=True):
    """3.4"""

    response_url: URL
    session_id: String36


class UnlockConnector(OcpiStruct, kw_only=True):
    """3.5"""

    response_url: URL
    location_id: String39
    evse_uid: String39
    connector_id: String36
