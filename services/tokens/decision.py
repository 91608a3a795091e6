"""An authorization decision, as both sides of the tokens service make it: what is answered, who
decided and why (logged, and published as AuthorizationDecided)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.tokens import Decider
from shared.ocpi.v2_1_1.tokens import Allowed, AuthorizationInfo, LocationReferences
from shared.ocpi.v2_1_1.types import DisplayText


@dataclass(frozen=True)
class Decision:
    """What the caller is told, who decided and why."""

    allowed: Allowed
    decider: Decider
    reason: str
    location: LocationReferences | None = None
    info: DisplayText | None = None

    def info_object(self) -> AuthorizationInfo:
        """The AuthorizationInfo of a real-time answer: a location only with ALLOWED (mod_tokens.md
        3.1: the location where the driver may charge)."""
        location = self.location if self.allowed is Allowed.ALLOWED else None
        return AuthorizationInfo(allowed=self.allowed, location=location, info=self.info)
