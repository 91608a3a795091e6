"""What each pushed event becomes, per module: plain data and functions, no hooks.

An event of `PUSH_PLANS` becomes a `Snapshot` (module, object key, version, the state as raw JSON,
opaque changed parts). The generic queue stores and coalesces snapshots without knowing the
object's type; only the module's `ModulePlan` reads states and parts to choose the HTTP calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.dispatcher.domain import (
    PushCall,
    change_from_key,
    change_key,
    covers,
    location_put,
    plan_push,
    pushed_changes,
)
from shared.contracts.base import Message
from shared.contracts.locations import LocationChanged
from shared.contracts.tariffs import TariffChanged, TariffRemoved
from shared.contracts.tokens import TokenChanged
from shared.ocpi.v2_1_1.codec import to_builtins
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.storage import Document

# A changed part as stored: opaque to the generic code, equal parts give equal documents.
Part = Document


@dataclass(frozen=True)
class Snapshot:
    """A state of one of our objects to coalesce into every receiver's pending push."""

    module: ModuleID
    key: str
    version: int
    # The object's JSON form; None once it is removed (the receivers get a DELETE).
    state: Document | None
    parts: list[Part]
    # The request that made this state: sent to the partner as X-Request-ID, bound in log lines.
    request_id: str | None = None


@dataclass(frozen=True)
class ModulePlan:
    """How the pending push of one object of a module becomes HTTP calls."""

    module: ModuleID
    # (key, newest state or None when removed, parts to bring over, most calls a push may make)
    # -> the calls, which go out concurrently (each addresses its own part of the object).
    calls: Callable[[str, Document | None, Sequence[Part], int], list[PushCall]]
    # Whether a delivered push (its parts; None: the whole object) already carried a part.
    covers: Callable[[Sequence[Part] | None, Part], bool]
    # What a successful push carried: None for the whole object, else the parts.
    pushed: Callable[[Sequence[PushCall], Sequence[Part]], list[Part] | None]
    # The call that puts everything in place after a partial call met an unknown object.
    fallback: Callable[[Document], PushCall | None]
    # (newest state, pending parts) -> how urgent the push is: claims take higher first (0: usual).
    priority: Callable[[Document | None, Sequence[Part]], int] = lambda state, parts: 0


@dataclass(frozen=True)
class PushPlan:
    """One pushed event type: its module and how it becomes a snapshot."""

    module: ModuleID
    snapshot: Callable[[Any, str | None], Snapshot]


# ---- locations ------------------------------------------------------------------------------------


def _location_snapshot(event: LocationChanged, request_id: str | None) -> Snapshot:
    return Snapshot(
        module=ModuleID.LOCATIONS,
        key=event.location.id,
        version=event.version,
        state=to_builtins(event.location),
        parts=[change_key(change) for change in event.changes],
        request_id=request_id,
    )


def _location_calls(
    key: str, state: Document | None, parts: Sequence[Part], max_calls: int
) -> list[PushCall]:
    if state is None:  # locations are never deleted (EVSEs become REMOVED): not expected
        return []
    return plan_push(state, [change_from_key(p) for p in parts], max_calls)


def _location_covers(pushed: Sequence[Part] | None, part: Part) -> bool:
    return covers(None if pushed is None else [change_from_key(p) for p in pushed], change_from_key(part))


def _location_pushed(calls: Sequence[PushCall], parts: Sequence[Part]) -> list[Part] | None:
    changes = pushed_changes(calls, [change_from_key(p) for p in parts])
    return None if changes is None else [change_key(c) for c in changes]


LOCATIONS_PLAN = ModulePlan(
    module=ModuleID.LOCATIONS,
    calls=_location_calls,
    covers=_location_covers,
    pushed=_location_pushed,
    fallback=location_put,
)


# ---- flat objects (tariffs): PUT the whole object, DELETE it once removed --------------------------


def _tariff_changed(event: TariffChanged, request_id: str | None) -> Snapshot:
    return Snapshot(
        module=ModuleID.TARIFFS,
        key=event.tariff.id,
        version=event.version,
        state=to_builtins(event.tariff),
        parts=[],
        request_id=request_id,
    )


def _tariff_removed(event: TariffRemoved, request_id: str | None) -> Snapshot:
    return Snapshot(
        module=ModuleID.TARIFFS,
        key=event.tariff_id,
        version=event.version,
        state=None,
        parts=[],
        request_id=request_id,
    )


def whole_object_calls(
    key: str, state: Document | None, parts: Sequence[Part], max_calls: int
) -> list[PushCall]:
    """PUT of the whole object, or DELETE once removed (a partner without it has what we want)."""
    if state is None:
        return [PushCall(method="DELETE", path=(key,), body=None, partial=False, absent_ok=True)]
    return [PushCall(method="PUT", path=(key,), body=state, partial=False)]


def _whole_covers(pushed: Sequence[Part] | None, part: Part) -> bool:
    return True  # a flat object always goes whole


def _whole_pushed(calls: Sequence[PushCall], parts: Sequence[Part]) -> list[Part] | None:
    return None


def _no_fallback(state: Document) -> PushCall | None:
    return None


WHOLE_OBJECT_PLAN = ModulePlan(
    module=ModuleID.TARIFFS,
    calls=whole_object_calls,
    covers=_whole_covers,
    pushed=_whole_pushed,
    fallback=_no_fallback,
)

# ---- tokens: PATCH of the status fields, PUT of the whole token otherwise ------------------------

# The Token fields a PATCH carries; a change of any other field sends the whole token.
TOKEN_PATCH_FIELDS = ("valid", "whitelist", "last_updated")
# The priority of a push that invalidates a card: it goes before any backlog (see pushes.claim).
URGENT = 1


def _token_changed(event: TokenChanged, request_id: str | None) -> Snapshot:
    return Snapshot(
        module=ModuleID.TOKENS,
        key=event.token.uid,
        version=event.version,
        state=to_builtins(event.token),
        parts=[{"field": name} for name in event.changed],
        request_id=request_id,
    )


def _fields(parts: Sequence[Part]) -> set[str]:
    return {str(part.get("field")) for part in parts}


def _token_put(token: Document) -> PushCall:
    return PushCall(method="PUT", path=(str(token["uid"]),), body=token, partial=False)


def _token_calls(key: str, state: Document | None, parts: Sequence[Part], max_calls: int) -> list[PushCall]:
    if state is None:  # tokens are never deleted (mod_tokens.md 2.1): not expected
        return []
    fields = _fields(parts)
    if fields and fields <= set(TOKEN_PATCH_FIELDS):
        body = {name: state[name] for name in TOKEN_PATCH_FIELDS if name in fields}
        return [PushCall(method="PATCH", path=(key,), body=body, partial=True)]
    return [_token_put(state)]


def _token_covers(pushed: Sequence[Part] | None, part: Part) -> bool:
    return pushed is None or part in pushed


def _token_pushed(calls: Sequence[PushCall], parts: Sequence[Part]) -> list[Part] | None:
    return None if any(not call.partial for call in calls) else list(parts)


def _token_priority(state: Document | None, parts: Sequence[Part]) -> int:
    """A card that became invalid (blocked, expired) must reach every CPO before anything else."""
    return URGENT if state is not None and state.get("valid") is False and "valid" in _fields(parts) else 0


TOKENS_PLAN = ModulePlan(
    module=ModuleID.TOKENS,
    calls=_token_calls,
    covers=_token_covers,
    pushed=_token_pushed,
    fallback=_token_put,
    priority=_token_priority,
)

# ---- the tables ---------------------------------------------------------------------------------------

PUSH_PLANS: dict[type[Message], PushPlan] = {
    LocationChanged: PushPlan(ModuleID.LOCATIONS, _location_snapshot),
    TariffChanged: PushPlan(ModuleID.TARIFFS, _tariff_changed),
    TariffRemoved: PushPlan(ModuleID.TARIFFS, _tariff_removed),
    TokenChanged: PushPlan(ModuleID.TOKENS, _token_changed),
}

MODULE_PLANS: dict[ModuleID, ModulePlan] = {
    ModuleID.LOCATIONS: LOCATIONS_PLAN,
    ModuleID.TARIFFS: WHOLE_OBJECT_PLAN,
    ModuleID.TOKENS: TOKENS_PLAN,
}

__all__ = ["MODULE_PLANS", "PUSH_PLANS", "URGENT", "ModulePlan", "Part", "PushPlan", "Snapshot"]
