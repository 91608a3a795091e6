"""Timestamps far ahead of our clock are refused wherever an object or an input comes in (security
review L13).

Receivers keep the newer of two versions by `last_updated` (receiver.is_stale), and our own objects
follow the `at` of the inputs that change them. One version stamped 9999-12-31 would make every later
real update look older: the object would be frozen. So a partner's object whose `last_updated` (at
any depth: an EVSE, a connector) lies more than FUTURE_TOLERANCE ahead of our clock is refused with
2001 at the gateway, a partner's object pulled during a re-sync is dead-lettered by the module's
service, and so is an input of the company's systems whose `last_updated` or `at` does.

Inputs are refused, not clamped: clamped to now + tolerance, the object would still ignore correct
updates for the whole tolerance, the producer's clock or bug would go unseen, and partners would
refuse our pushes of it (their gateways apply the same rule). The dead-lettered message names the
field and can be replayed once its producer is fixed.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

import msgspec

from shared.ocpi.v2_1_1.types import format_datetime, to_utc, utc_now

__all__ = ["FUTURE_TOLERANCE", "INPUT_STAMPS", "OBJECT_STAMPS", "ahead_of_clock"]

#: How far ahead of our clock a timestamp may be: clock skew between honest systems, no more. A named
#: constant, not a setting: nothing legitimate needs more, and a larger value freezes objects longer.
FUTURE_TOLERANCE = timedelta(minutes=5)
#: The timestamps of an OCPI object that order its versions.
OBJECT_STAMPS = frozenset({"last_updated"})
#: ... and of an input message: its `at` becomes the changed object's last_updated.
INPUT_STAMPS = frozenset({"last_updated", "at"})


def ahead_of_clock(
    obj: object, names: Collection[str] = OBJECT_STAMPS, now: datetime | None = None
) -> str | None:
    """Why `obj` must be refused: its first timestamp named in `names` (at any depth of its Structs
    and lists) more than FUTURE_TOLERANCE ahead of `now`, with its JSON path; None when there is none."""
    latest = (now or utc_now()) + FUTURE_TOLERANCE
    for path, value in _stamps(obj, "$", names):
        try:
            ahead = to_utc(value) > latest
        except ValueError:  # beyond the range of a datetime once converted to UTC
            ahead = True
        if ahead:
            return (
                f"{path.rsplit('.', 1)[-1]} {_text(value)} is in the future (more than "
                f"{int(FUTURE_TOLERANCE.total_seconds())} s ahead of our clock) - at `{path}`"
            )
    return None


def _text(value: datetime) -> str:
    try:
        return format_datetime(value)
    except ValueError:
        return value.isoformat()


def _stamps(obj: object, path: str, names: Collection[str]) -> list[tuple[str, datetime]]:
    """Every datetime under `obj` in a field named in `names`, with its JSON path; an object's own
    before those of its parts (the location's before its EVSEs')."""
    found: list[tuple[str, datetime]] = []
    if isinstance(obj, msgspec.Struct):
        fields = [(name, getattr(obj, name)) for name in obj.__struct_fields__]
        for name, value in fields:
            if name in names and isinstance(value, datetime):
                found.append((f"{path}.{name}", value))
        for name, value in fields:
            if isinstance(value, msgspec.Struct | list):
                found.extend(_stamps(value, f"{path}.{name}", names))
    elif isinstance(obj, list):
        for index, item in enumerate(obj):
            found.extend(_stamps(item, f"{path}[{index}]", names))
    return found
