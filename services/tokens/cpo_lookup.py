"""Whose token started a session (TokenLookup, from the sessions service): owner and connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.tokens.cpo_cache import TokenKey
from services.tokens.cpo_policy import Ambiguous, Found, Holder
from shared.contracts.base import Outcome, ok
from shared.contracts.tokens import TokenHolder, TokenLookup
from shared.errors import UnknownObject, failure_reply


class TokenLookups:
    """The handler of TokenLookup: one indexed read of `partner_tokens` (a session starts rarely)."""

    def __init__(self, find: Callable[[TokenKey], Awaitable[Found]]) -> None:
        self._find = find

    async def __call__(self, msg: TokenLookup) -> Outcome:
        found = await self._find((msg.token_uid, msg.token_type))
        if isinstance(found, Holder):
            return Outcome(reply=ok(TokenHolder(owner=found.party, partner_id=found.via, token=found.token)))
        why = "no partner gave us this token"
        if isinstance(found, Ambiguous):
            why = f"{len(found.parties)} parties hold this token"
        return Outcome(reply=failure_reply(UnknownObject(why)))
