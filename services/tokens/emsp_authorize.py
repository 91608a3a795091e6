"""A CPO partner's real-time authorization of one of our tokens (eMSP side, mod_tokens.md 2.2.2).

Unknown token (or another type): HTTP 404 with 2000, as status_codes.md asks for a resource that
does not exist (2.1.1 has no "unknown token" code). An invalid token is BLOCKED or EXPIRED without
asking anyone; a location is required only for tokens that could be allowed (the answer of an invalid
one does not depend on it). A valid token is ALLOWED, or decided by the company's authorizer (the
delegate) within its deadline, else the configured fallback. Each answer is logged with its reason
and announced as an AuthorizationDecided event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from services.tokens.decision import Decision
from services.tokens.emsp_decisions import (
    InvalidDelegateAnswer,
    Policy,
    check_location,
    delegated_decision,
    fallback_decision,
    held_decision,
    local_decision,
)
from services.tokens.emsp_rules import IssuedToken
from shared.contracts.base import Outcome, RpcReply, ok
from shared.contracts.tokens import AuthorizationDecided, DelegatedAuthorize, RealtimeAuthorize
from shared.errors import OcpiFailure, UnknownObject, failure_reply
from shared.messaging.rpc import RpcTimeout
from shared.modules.sender import OwnRecord
from shared.ocpi.v2_1_1.types import utc_now
from shared.rpc_service import RpcHandler

log = structlog.get_logger(__name__)

# Sends a DelegatedAuthorize to the delegate and waits (bounded) for its reply; raises RpcTimeout.
AskDelegate = Callable[[DelegatedAuthorize], Awaitable[RpcReply]]


class HeldTokens(Protocol):
    """What an authorization reads: one of our tokens as stored now."""

    async def get(self, key: str) -> OwnRecord[IssuedToken] | None:
        """The stored token, read from the database."""


async def _delegate(
    ask: AskDelegate, policy: Policy, msg: RealtimeAuthorize, issued: IssuedToken
) -> Decision:
    """The delegate's decision, or the fallback when it gives none we can use."""
    request = DelegatedAuthorize(token=issued.token, location=msg.location, partner_id=msg.partner_id)
    try:
        reply = await ask(request)
    except RpcTimeout as exc:
        return fallback_decision(policy, msg.location, f"the authorizer did not answer: {exc}")
    try:
        return delegated_decision(reply, msg.location)
    except InvalidDelegateAnswer as exc:
        log.warning("delegate_answer_invalid", delegate=policy.delegate, reason=str(exc))
        return fallback_decision(policy, msg.location, f"the authorizer's answer was unusable: {exc}")


async def decide(
    msg: RealtimeAuthorize, store: HeldTokens, policy: Policy, ask: AskDelegate | None
) -> Decision:
    """The decision on a request; UnknownObject or NotEnoughInformation when there is none."""
    record = await store.get(msg.token_uid)
    if record is None or record.removed or record.value.token.type != msg.token_type:
        raise UnknownObject(f"Unknown token: {msg.token_uid} ({msg.token_type.value})")
    held = held_decision(record.value)
    if held is not None:
        return held
    check_location(policy, msg.location)
    if ask is None:
        return local_decision(msg.location)
    return await _delegate(ask, policy, msg, record.value)


def authorize_handler(store: HeldTokens, policy: Policy, ask: AskDelegate | None) -> RpcHandler:
    """The RealtimeAuthorize handler: an AuthorizationInfo reply and its AuthorizationDecided event."""

    async def handle(msg: RealtimeAuthorize) -> Outcome:
        try:
            decision = await decide(msg, store, policy, ask)
        except OcpiFailure as exc:
            log.info(
                "token_authorization_refused",
                token_uid=msg.token_uid,
                partner_id=msg.partner_id,
                reason=exc.message,
            )
            return Outcome(reply=failure_reply(exc))
        info = decision.info_object()
        log.info(
            "token_authorized",
            token_uid=msg.token_uid,
            partner_id=msg.partner_id,
            allowed=info.allowed.value,
            decider=decision.decider.value,
            reason=decision.reason,
        )
        event = AuthorizationDecided(
            token_uid=msg.token_uid,
            token_type=msg.token_type,
            allowed=info.allowed,
            decider=decision.decider,
            reason=decision.reason,
            location=info.location,
            partner_id=msg.partner_id or None,
            at=utc_now(),
        )
        return Outcome(reply=ok(info), events=[event])

    return handle
