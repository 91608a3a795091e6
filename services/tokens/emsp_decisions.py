"""Pure decisions of real-time authorization (eMSP side, mod_tokens.md 2.2.2): no I/O here.

The answer's `location` is the request's references, narrowed to what the EV driver may use, and
only with ALLOWED: 3.1 returns a location "if the EV driver is allowed to charge at that location".
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from services.tokens.decision import Decision
from services.tokens.emsp_rules import IssuedToken
from shared.contracts.base import RpcReply
from shared.contracts.tokens import Decider
from shared.errors import NotEnoughInformation
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tokens import Allowed, AuthorizationInfo, LocationReferences


@dataclass(frozen=True)
class Policy:
    """The deployment's authorization settings (TOKENS_AUTHORIZE_*)."""

    requires_location: bool = False
    # The internal service (RPC routing key) that decides for valid tokens; empty: allowed as held.
    delegate: str = ""
    deadline: float = 1.0
    fallback: Allowed = Allowed.NOT_ALLOWED


class InvalidDelegateAnswer(Exception):
    """The delegate answered something that is not an answer to the question asked."""


def held_decision(issued: IssuedToken) -> Decision | None:
    """BLOCKED or EXPIRED for an invalid token: nobody else needs to be asked. None if valid."""
    if issued.token.valid:
        return None
    allowed = issued.invalid_as or Allowed.BLOCKED
    return Decision(allowed, Decider.LOCAL, f"token is invalid ({allowed.value.lower()})")


def check_location(policy: Policy, location: LocationReferences | None) -> None:
    """2002 when the policy needs LocationReferences and the request has none (2.2.2)."""
    if policy.requires_location and location is None:
        raise NotEnoughInformation("LocationReferences are required to authorize this token")


def local_decision(location: LocationReferences | None) -> Decision:
    """No delegate: a valid token may charge wherever the CPO asked."""
    return Decision(Allowed.ALLOWED, Decider.LOCAL, "token is valid", location)


def fallback_decision(policy: Policy, location: LocationReferences | None, why: str) -> Decision:
    """The configured answer when the delegate gave none (TOKENS_AUTHORIZE_FALLBACK)."""
    return Decision(policy.fallback, Decider.FALLBACK, why, location)


def _within(answered: list[str] | None, asked: list[str] | None) -> list[str] | None:
    """The ids answered that were asked; all that were asked when the answer names none."""
    if asked is None:
        return answered
    if answered is None:
        return list(asked)
    return [item for item in answered if item in asked]


def narrow(
    answered: LocationReferences | None, asked: LocationReferences | None
) -> LocationReferences | None:
    """The delegate's location, limited to what the request named (EVSEs, connectors).

    None when nothing was asked; the request's references when the delegate names no location.
    """
    if asked is None:
        return None
    if answered is None:
        return asked
    if answered.location_id != asked.location_id:
        raise InvalidDelegateAnswer(
            f"answered for location {answered.location_id!r}, asked {asked.location_id!r}"
        )
    return LocationReferences(
        location_id=asked.location_id,
        evse_uids=_within(answered.evse_uids, asked.evse_uids),
        connector_ids=_within(answered.connector_ids, asked.connector_ids),
    )


def delegated_decision(reply: RpcReply, asked: LocationReferences | None) -> Decision:
    """The delegate's reply as our decision; NotEnoughInformation for its 2002.

    InvalidDelegateAnswer for any other failure status or data that is not an AuthorizationInfo.
    """
    if reply.status_code == OcpiStatus.NOT_ENOUGH_INFORMATION:
        raise NotEnoughInformation(reply.status_message or "the authorizer needs more information")
    if reply.status_code != OcpiStatus.SUCCESS:
        raise InvalidDelegateAnswer(f"status {reply.status_code}: {reply.status_message or ''}".strip())
    try:
        info = decode(bytes(reply.data), AuthorizationInfo)
    except msgspec.DecodeError as exc:
        raise InvalidDelegateAnswer(f"not an AuthorizationInfo: {exc}") from exc
    location = narrow(info.location, asked)
    return Decision(info.allowed, Decider.DELEGATE, "the authorizer decided", location, info.info)
