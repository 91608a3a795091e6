"""What each pushed event becomes, per module: plain data and functions, no hooks.

An event of `PUSH_PLANS` becomes a `Snapshot` (module, object key, version, the state as raw JSON,
opaque changed parts). The generic queue stores and coalesces snapshots without knowing the
object's type; only the module's `ModulePlan` reads states and parts to choose the HTTP calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
from services.dispatcher.ocpi_client import Reply
from shared.contracts.base import Message
from shared.contracts.cdrs import CDR_VERSION, CdrCreated, CdrDelivered
from shared.contracts.locations import LocationChanged
from shared.contracts.sessions import SessionChanged
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
    # Who receives it. None: every receiver of the module (modules of audience EVERY_RECEIVER).
    # Otherwise only the partners named, if they are receivers of the module: for a TOKEN_OWNER
    # module (sessions, CDRs) the connection that serves the token's party; empty: nobody.
    audience: frozenset[str] | None = None


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
    # A partner that has no version of the object yet gets the fallback (the whole object) at once,
    # not partial calls it could not place (sessions: a PUT before any PATCH).
    whole_first: bool = False
    # (key, partner_id, the replies to a successful push's calls, now) -> an event announcing the
    # delivery, or None. The worker publishes it before the push's completion is written (CDRs:
    # CdrDelivered with the eMSP's Location); the generic worker knows nothing more of it.
    announce: Callable[[str, str, Sequence[Reply], datetime], Message | None] = (
        lambda key, partner_id, replies, at: None
    )


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


def _field_covers(pushed: Sequence[Part] | None, part: Part) -> bool:
    return pushed is None or part in pushed


def _field_pushed(calls: Sequence[PushCall], parts: Sequence[Part]) -> list[Part] | None:
    return None if any(not call.partial for call in calls) else list(parts)


def _token_priority(state: Document | None, parts: Sequence[Part]) -> int:
    """A card that became invalid (blocked, expired) must reach every CPO before anything else."""
    return URGENT if state is not None and state.get("valid") is False and "valid" in _fields(parts) else 0


TOKENS_PLAN = ModulePlan(
    module=ModuleID.TOKENS,
    calls=_token_calls,
    covers=_field_covers,
    pushed=_field_pushed,
    fallback=_token_put,
    priority=_token_priority,
)

# ---- sessions: to the token's owner only; PATCH of the running fields, PUT of the whole otherwise --


# The Session fields a PATCH carries (a running session's meter and price, its end); a change of any
# other field sends the whole session. A PATCH always carries last_updated.
SESSION_PATCH_FIELDS = ("kwh", "total_cost", "status", "last_updated", "end_datetime", "charging_periods")


def owner_audience(partner_id: str | None) -> frozenset[str]:
    """The audience of an object for the token's owner: the partner serving it, or nobody."""
    return frozenset() if partner_id is None else frozenset({partner_id})


def _session_changed(event: SessionChanged, request_id: str | None) -> Snapshot:
    return Snapshot(
        module=ModuleID.SESSIONS,
        key=event.session.id,
        version=event.version,
        state=to_builtins(event.session),
        parts=[{"field": name} for name in event.changed],
        request_id=request_id,
        audience=owner_audience(event.partner_id),
    )


def _session_put(session: Document) -> PushCall:
    return PushCall(method="PUT", path=(str(session["id"]),), body=session, partial=False)


def _session_calls(key: str, state: Document | None, parts: Sequence[Part], max_calls: int) -> list[PushCall]:
    if state is None:  # sessions are never deleted (mod_sessions.md 1.1): not expected
        return []
    fields = _fields(parts)
    # A field absent from the state was emptied (optional fields are omitted): only a PUT says so.
    if fields and fields <= set(SESSION_PATCH_FIELDS) and all(name in state for name in fields):
        body = {
            name: state[name] for name in SESSION_PATCH_FIELDS if name in fields or name == "last_updated"
        }
        return [PushCall(method="PATCH", path=(key,), body=body, partial=True)]
    return [_session_put(state)]


SESSIONS_PLAN = ModulePlan(
    module=ModuleID.SESSIONS,
    calls=_session_calls,
    covers=_field_covers,
    pushed=_field_pushed,
    fallback=_session_put,
    whole_first=True,
)

# ---- CDRs: POSTed once to the token owner's eMSP, at its CDRs endpoint itself -----------------------

# A CDR never changes (mod_cdrs.md 1): every snapshot of one has CDR_VERSION whatever its event
# says, so once the partner has it (delivered 1) no event can make it go again.


def _cdr_created(event: CdrCreated, request_id: str | None) -> Snapshot:
    return Snapshot(
        module=ModuleID.CDRS,
        key=event.cdr.id,
        version=CDR_VERSION,
        state=to_builtins(event.cdr),
        parts=[],
        request_id=request_id,
        audience=owner_audience(event.partner_id),
    )


def _cdr_calls(key: str, state: Document | None, parts: Sequence[Part], max_calls: int) -> list[PushCall]:
    if state is None:  # CDRs are never removed: not expected
        return []
    # mod_cdrs.md 2.2.2: POST of the whole CDR to the endpoint, no country_code/party_id/id in the URL.
    return [PushCall(method="POST", path=(), body=state, partial=False, collection=True)]


def _cdr_delivered(key: str, partner_id: str, replies: Sequence[Reply], at: datetime) -> Message | None:
    """The eMSP took the CDR: where it keeps it (its Location header; "" when it gave none)."""
    if not replies:
        return None
    location = next((reply.location for reply in replies if reply.location), "")
    return CdrDelivered(cdr_id=key, partner_id=partner_id, location=location, at=at)


CDRS_PLAN = ModulePlan(
    module=ModuleID.CDRS,
    calls=_cdr_calls,
    covers=_whole_covers,
    pushed=_whole_pushed,
    fallback=_no_fallback,
    announce=_cdr_delivered,
)

# ---- the tables ---------------------------------------------------------------------------------------

PUSH_PLANS: dict[type[Message], PushPlan] = {
    LocationChanged: PushPlan(ModuleID.LOCATIONS, _location_snapshot),
    TariffChanged: PushPlan(ModuleID.TARIFFS, _tariff_changed),
    TariffRemoved: PushPlan(ModuleID.TARIFFS, _tariff_removed),
    TokenChanged: PushPlan(ModuleID.TOKENS, _token_changed),
    SessionChanged: PushPlan(ModuleID.SESSIONS, _session_changed),
    CdrCreated: PushPlan(ModuleID.CDRS, _cdr_created),
}

MODULE_PLANS: dict[ModuleID, ModulePlan] = {
    ModuleID.LOCATIONS: LOCATIONS_PLAN,
    ModuleID.TARIFFS: WHOLE_OBJECT_PLAN,
    ModuleID.TOKENS: TOKENS_PLAN,
    ModuleID.SESSIONS: SESSIONS_PLAN,
    ModuleID.CDRS: CDRS_PLAN,
}

__all__ = [
    "CDR_VERSION",
    "MODULE_PLANS",
    "PUSH_PLANS",
    "SESSION_PATCH_FIELDS",
    "URGENT",
    "ModulePlan",
    "Part",
    "PushPlan",
    "Snapshot",
]
