"""Pure rules of the dispatcher: what to push, when to retry, which versions may go out, paging."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import msgspec

from shared.contracts.locations import ChangeScope, LocationChange
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.storage import Document

# What one more call costs beyond its body, in bytes of the body it competes with: the request line
# and headers both ways, and the receiver's handling of one more request. With it, the whole location
# is sent only when most of its EVSEs changed (for a 40-EVSE site, about three quarters).
CALL_OVERHEAD_BYTES = 400


@dataclass(frozen=True)
class PushCall:
    """One HTTP call to a partner's receiver of a module; `path` follows `{cc}/{party}/` (see
    `collection`)."""

    method: str
    path: tuple[str, ...]
    body: object
    # A PATCH or EVSE PUT the receiver cannot place (unknown object) falls back to a location PUT.
    partial: bool
    # A DELETE answered "unknown object": the partner does not hold it, which is what we wanted.
    absent_ok: bool = False
    # The call addresses the module's endpoint itself, not `{cc}/{party}/{path...}` below it (the
    # POST of a new CDR, mod_cdrs.md 2.2.2); `path` is then empty.
    collection: bool = False


class Answer(enum.Enum):
    """How a partner answered one call."""

    OK = "OK"
    UNKNOWN_OBJECT = "UNKNOWN_OBJECT"
    FAILED = "FAILED"
    # HTTP 429: the partner asks us to slow down; not a failure of the partner (no attempt counted).
    THROTTLED = "THROTTLED"


def change_key(change: LocationChange) -> dict[str, str | None]:
    """The stored form of a change; equal changes give equal documents (for `$addToSet`)."""
    return {"scope": change.scope.value, "evse_uid": change.evse_uid, "connector_id": change.connector_id}


def change_from_key(doc: dict[str, str | None]) -> LocationChange:
    """Inverse of `change_key`."""
    return LocationChange(
        scope=ChangeScope(doc["scope"]), evse_uid=doc.get("evse_uid"), connector_id=doc.get("connector_id")
    )


def location_put(location: Document) -> PushCall:
    """PUT of the whole location (its stored JSON form)."""
    return PushCall(method="PUT", path=(str(location["id"]),), body=location, partial=False)


_sizer = msgspec.json.Encoder()


def _evse(location: Document, uid: str) -> Document | None:
    return next((e for e in location.get("evses") or () if e.get("uid") == uid), None)


def plan_push(
    location: Document, changes: Iterable[LocationChange], max_calls: int | None = None
) -> list[PushCall]:
    """Choose the calls that bring a partner from any earlier state to `location` (JSON form), given
    what changed: one call per changed EVSE (a PATCH of status and last_updated where only the status
    changed, else a PUT of the EVSE), or the whole location when that is smaller than those calls
    (CALL_OVERHEAD_BYTES each), or when they are more than `max_calls` (what one push may send
    within its lease)."""
    per_evse: dict[str, set[ChangeScope]] = {}
    for change in changes:
        if change.scope is ChangeScope.LOCATION or change.evse_uid is None:
            return [location_put(location)]
        per_evse.setdefault(change.evse_uid, set()).add(change.scope)
    if not per_evse or (max_calls is not None and len(per_evse) > max_calls):
        return [location_put(location)]
    calls: list[PushCall] = []
    for uid in sorted(per_evse):
        evse = _evse(location, uid)
        if evse is None:
            return [location_put(location)]
        path = (str(location["id"]), uid)
        if per_evse[uid] == {ChangeScope.EVSE_STATUS}:
            body = {"status": evse["status"], "last_updated": evse["last_updated"]}
            calls.append(PushCall(method="PATCH", path=path, body=body, partial=True))
        else:
            calls.append(PushCall(method="PUT", path=path, body=evse, partial=True))
    if _cost(location) <= sum(_cost(call.body) for call in calls):
        return [location_put(location)]
    return calls


def _cost(body: object) -> int:
    """What sending `body` in a call of its own costs, in bytes."""
    return len(_sizer.encode(body)) + CALL_OVERHEAD_BYTES


def covers(pushed: Sequence[LocationChange] | None, change: LocationChange) -> bool:
    """Whether a delivered push (None: a whole-location PUT) already carried `change`'s part."""
    if pushed is None:
        return True
    if change.scope is ChangeScope.LOCATION or change.evse_uid is None:
        return False
    return any(
        p.evse_uid == change.evse_uid and (p.scope is not ChangeScope.EVSE_STATUS or p == change)
        for p in pushed
    )


def pushed_changes(
    calls: Sequence[PushCall], changes: Sequence[LocationChange]
) -> list[LocationChange] | None:
    """What a successful push carried: None for a whole-location PUT, else the changes it covered."""
    if any(not call.partial for call in calls):
        return None
    return list(changes)


def classify(http_status: int | None, status_code: int | None) -> Answer:
    """Success is HTTP 2xx with status_code 1000; 404, 2001 and 2003 mean the receiver lacks the object."""
    if http_status is None:
        return Answer.FAILED
    if http_status == 429:
        return Answer.THROTTLED
    if http_status == 404 or status_code in (
        OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
        OcpiStatus.UNKNOWN_LOCATION,
    ):
        return Answer.UNKNOWN_OBJECT
    if 200 <= http_status < 300 and status_code == OcpiStatus.SUCCESS:
        return Answer.OK
    return Answer.FAILED


# HTTP statuses that are about the connection, not about the object: never a refusal of it.
_NOT_ABOUT_THE_OBJECT = frozenset({401, 403, 408, 429})


def is_refusal(http_status: int | None, status_code: int | None) -> bool:
    """The partner answered, and refused the object itself: an OCPI client error (2xxx) with an HTTP
    status below 500 that is not about the connection (its token, its rate, a timeout)."""
    return (
        http_status is not None
        and 200 <= http_status < 500
        and http_status not in _NOT_ABOUT_THE_OBJECT
        and status_code is not None
        and 2000 <= status_code < 3000
    )


def retry_delay(attempts: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff: min(cap, base * 2**attempts), scaled by a jitter factor in [0.5, 1.0]."""
    if not 0.5 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0.5, 1.0]")
    exponent = min(max(attempts, 0), 62)
    return min(cap, base * 2.0**exponent) * jitter


def next_probe_interval(current: float, floor: float, ceiling: float) -> float:
    """The probe interval after another failed probe: doubled, within [floor, ceiling]."""
    return min(ceiling, max(floor, current * 2.0))


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


def next_page_url(link_header: str | None, current_url: str) -> str | None:
    """The `rel="next"` target of a Link header, resolved against the page that carried it."""
    if not link_header:
        return None
    for match in _LINK.finditer(link_header):
        rel = _REL.search(match.group(2) or "")
        if rel is None:
            continue
        values = (rel.group(1) or rel.group(2) or "").lower().split()
        if "next" in values:
            return str(urljoin(current_url, match.group(1).strip()))
    return None


def with_query(url: str, params: dict[str, str]) -> str:
    """`url` with `params` added (replacing parameters of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def first_page_url(endpoint: str, limit: int, date_from: str | None) -> str:
    """The first page of a partner's paginated list, optionally only what changed since `date_from`."""
    params = {"limit": str(limit)}
    if date_from is not None:
        params["date_from"] = date_from
    return with_query(endpoint, params)
