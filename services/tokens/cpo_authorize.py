"""A charger asks whether a token may charge (ChargerAuthorize): look up, ask in real time, decide.

The lookup goes to the replica's cache first (the common case, a whitelisted token, costs no
database trip), then to `partner_tokens`. Who is asked in real time and what the answer is are the
pure rules of cpo_policy.py. Every decision is logged with its reason and announced as
AuthorizationDecided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from services.tokens.cpo_cache import TokenCache, TokenKey
from services.tokens.cpo_policy import Found, Holder, RealtimeAnswer, decide, realtime_target
from services.tokens.decision import Decision
from shared.contracts.base import Outcome, ok
from shared.contracts.partners import Party
from shared.contracts.tokens import AuthorizationDecided, ChargerAuthorization, ChargerAuthorize
from shared.errors import InvalidInput, failure_reply
from shared.ocpi.v2_1_1.tokens import LocationReferences
from shared.ocpi.v2_1_1.types import utc_now

log = structlog.get_logger(__name__)
# Token.uid is string(36) (mod_tokens.md 3.2).
UID_LENGTH = 36

FindHolder = Callable[[TokenKey], Awaitable[Found]]
Ask = Callable[[str, TokenKey, LocationReferences | None], Awaitable[RealtimeAnswer]]


class ChargerAuthorizer:
    """The handler of ChargerAuthorize; replies a ChargerAuthorization."""

    def __init__(
        self, cache: TokenCache, find: FindHolder, ask: Ask, *, realtime_for_allowed: bool, unknown_via: str
    ) -> None:
        self._cache = cache
        self._find = find
        self._ask = ask
        self._realtime_for_allowed = realtime_for_allowed
        self._unknown_via = unknown_via

    async def __call__(self, msg: ChargerAuthorize) -> Outcome:
        if not 1 <= len(msg.token_uid) <= UID_LENGTH:
            refused = InvalidInput(
                f"token_uid must have 1 to {UID_LENGTH} characters, not {len(msg.token_uid)}"
            )
            return Outcome(reply=failure_reply(refused))
        key = (msg.token_uid, msg.token_type)
        found, source = await self._lookup(key)
        target = realtime_target(
            found, realtime_for_allowed=self._realtime_for_allowed, unknown_via=self._unknown_via
        )
        answer = None if target is None else await self._ask(target, key, msg.location)
        decision = decide(found, msg.location, answer)
        owner = found.party if isinstance(found, Holder) else None
        partner_id = (found.via or None) if isinstance(found, Holder) else target
        log.info(
            "charger_authorization",
            token_uid=msg.token_uid,
            token_type=msg.token_type.value,
            allowed=decision.allowed.value,
            decider=decision.decider.value,
            reason=decision.reason,
            partner_id=partner_id,
            lookup=source,
        )
        return Outcome(
            reply=ok(_authorization(decision, owner, partner_id)),
            events=[
                AuthorizationDecided(
                    token_uid=msg.token_uid,
                    token_type=msg.token_type,
                    allowed=decision.allowed,
                    decider=decision.decider,
                    reason=decision.reason,
                    location=decision.location,
                    owner=owner,
                    partner_id=partner_id,
                    at=utc_now(),
                )
            ],
        )

    async def _lookup(self, key: TokenKey) -> tuple[Found, str]:
        """The holder of a token, and where it was found ("cache" or "database")."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached.found, "cache"
        begun = self._cache.begin()
        found = await self._find(key)
        self._cache.put(key, found, begun)
        return found, "database"


def _authorization(decision: Decision, owner: Party | None, partner_id: str | None) -> ChargerAuthorization:
    return ChargerAuthorization(
        allowed=decision.allowed,
        decider=decision.decider,
        reason=decision.reason,
        location=decision.location,
        info=decision.info,
        owner=owner,
        partner_id=partner_id,
    )
