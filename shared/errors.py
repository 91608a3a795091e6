"""The one error table: domain failures, and the HTTP status and OCPI status code each is answered with.

Services raise these where they find the problem and answer with `failure_reply`; the gateway renders
the same table, so a request refused by a service gets the HTTP status the gateway would have given
it (a 2001 is HTTP 400 wherever it is found).
"""

from __future__ import annotations

from shared.contracts.base import RpcReply, error
from shared.ocpi.v2_1_1.status import OcpiStatus


class OcpiFailure(Exception):
    """A request that cannot succeed as asked; ERRORS says how it is answered."""

    def __init__(self, message: str, status: OcpiStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Overrides the table's status code (UnknownObject: 2003 for locations, 2000 elsewhere).
        self.status = status


class InvalidInput(OcpiFailure):
    """Invalid or missing parameters: a field, an id, a query value or a cursor we did not issue."""


class NotEnoughInformation(OcpiFailure):
    """The request is valid but too little to decide on (e.g. an authorization needing a location)."""


class UnknownObject(OcpiFailure):
    """The addressed object is not stored."""


class NotOwned(OcpiFailure):
    """The object belongs to a party the calling partner does not own."""


class Unauthorized(OcpiFailure):
    """No token, or one we do not know."""


class MethodNotAllowed(OcpiFailure):
    """The interface exists, but not with this method."""


class Unavailable(OcpiFailure):
    """A part of the platform needed for the answer cannot be reached right now."""


class TooManyRequests(OcpiFailure):
    """The caller sent more requests than its share; it may try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: failure -> (HTTP status, OCPI status code)
ERRORS: dict[type[OcpiFailure], tuple[int, OcpiStatus]] = {
    InvalidInput: (400, OcpiStatus.INVALID_OR_MISSING_PARAMETERS),
    NotEnoughInformation: (400, OcpiStatus.NOT_ENOUGH_INFORMATION),
    UnknownObject: (404, OcpiStatus.CLIENT_ERROR),
    NotOwned: (403, OcpiStatus.CLIENT_ERROR),
    Unauthorized: (401, OcpiStatus.CLIENT_ERROR),
    MethodNotAllowed: (405, OcpiStatus.CLIENT_ERROR),
    Unavailable: (503, OcpiStatus.SERVER_ERROR),
    TooManyRequests: (429, OcpiStatus.CLIENT_ERROR),
}


def answer_of(failure: OcpiFailure) -> tuple[int, int]:
    """(HTTP status, OCPI status code) of a failure, from the table (nearest listed base class)."""
    for kind in type(failure).__mro__:
        if kind in ERRORS:
            http_status, status = ERRORS[kind]
            return http_status, int(failure.status if failure.status is not None else status)
    return 500, int(OcpiStatus.SERVER_ERROR)


def failure_reply(failure: OcpiFailure) -> RpcReply:
    """A service's RPC reply for a failure."""
    http_status, status = answer_of(failure)
    return error(status, failure.message, http_status=http_status)
