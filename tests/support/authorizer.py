"""A fake of the company's authorizer behind an eMSP deployment (TOKENS_AUTHORIZE_DELEGATE): the RPC
server the tokens service asks about each valid card it issued (services/tokens/README.md)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec

from shared.contracts.base import Outcome, ok
from shared.contracts.tokens import DelegatedAuthorize
from shared.ocpi.v2_1_1.tokens import Allowed, AuthorizationInfo

# The routing key tests/conftest.py's pair gives B (TOKENS_AUTHORIZE_DELEGATE).
AUTHORIZER = "authorizer"


@dataclass
class Authorizer:
    """NO_CREDIT for every card but those it allows, after a delay for the cards given one; it
    returns the location it was asked about."""

    delays: dict[str, float] = field(default_factory=dict)
    allows: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    async def handle(self, body: bytes) -> Outcome:
        request = msgspec.json.decode(body, type=DelegatedAuthorize)
        self.asked.append(request.token.uid)
        await asyncio.sleep(self.delays.get(request.token.uid, 0.0))
        allowed = Allowed.ALLOWED if request.token.uid in self.allows else Allowed.NO_CREDIT
        return Outcome(reply=ok(AuthorizationInfo(allowed=allowed, location=request.location)))
