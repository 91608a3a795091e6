"""OCPI 2.1.1 status codes (status_codes.md) and the response envelope (transport_and_format.md)."""

from __future__ import annotations

import enum
from typing import Any, Generic, TypeVar

from shared.ocpi.v2_1_1.types import DateTime, Int64, OcpiStruct, utc_now

__all__ = ["OcpiResponse", "OcpiStatus", "ocpi_response"]

T = TypeVar("T")


class OcpiStatus(enum.IntEnum):
    """The status codes defined by OCPI 2.1.1 (and no others)."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_OR_MISSING_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    SERVER_ERROR = 3000
    UNABLE_TO_USE_CLIENT_API = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


class OcpiResponse(OcpiStruct, Generic[T], kw_only=True):
    """The JSON object wrapping every OCPI response.

    ``data`` is omitted when ``None`` (error responses carry no data). ``status_code`` is any
    int the database can store (``Int64``), so that a partner's response with a code outside the
    2.1.1 list can still be read; ``OcpiStatus`` members are ints and can be passed in directly.
    Decode a partner's response with e.g. ``decode(body, OcpiResponse[list[Location]])``.
    """

    data: T | None = None
    status_code: Int64
    status_message: str | None = None
    timestamp: DateTime


def ocpi_response(
    data: Any = None,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
) -> OcpiResponse[Any]:
    """An envelope stamped with the current UTC time (whole seconds)."""
    return OcpiResponse(
        data=data, status_code=status_code, status_message=status_message, timestamp=utc_now()
    )
