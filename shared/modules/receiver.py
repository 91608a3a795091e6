"""Partners' objects of a module as we hold them (the Receiver interface): storage Protocol and rules.

Our copy is keyed by (country_code, party_id, id). Every write is compare-and-set on `version`, and
stores the object marked unannounced in the same write (an outbox, see outbox.py): no accepted
change goes unannounced when a process dies. A DELETE keeps a tombstone with its version, so the
removal is announced through the same outbox and a later PUT continues the version.

The rules here do not depend on who owns the object (the gateway checked that): an id differing
from the URL is 2001, a change older than ours changes nothing (1000, no event), a new object is 201.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import msgspec
from msgspec import UNSET

from shared.contracts.base import Message, Outcome, ok
from shared.contracts.partners import Party
from shared.errors import InvalidInput, OcpiFailure, UnknownObject, failure_reply
from shared.modules.sender import MAX_ATTEMPTS, UNSTORABLE, ConcurrentChanges, Removed
from shared.ocpi.v2_1_1.types import OcpiStruct, apply_patch, to_utc

T = TypeVar("T")

# (country_code, party_id, id, version) of a partner object whose event went out.
PartnerVersion = tuple[str, str, str, int]


@dataclass(frozen=True)
class PartnerRecord(Generic[T]):
    """A partner's object as stored in our copy (its last state, when it is a tombstone)."""

    party: Party
    key: str
    value: T
    version: int
    removed: bool = False
    # The connection (partner id) the newest change came through: the party's own connection or a
    # hub carrying it. Objects sent back to the owner (sessions, CDRs of a token) go there.
    via: str = ""

    @property
    def current(self) -> T | None:
        """The object as partners see it: None once deleted."""
        return None if self.removed else self.value


class ReceiverStore(Protocol[T]):
    """Partners' objects of one module, keyed by (country_code, party_id, id)."""

    async def get(self, party: Party, key: str) -> PartnerRecord[T] | None:
        """The stored record (also a tombstone), if any."""

    async def save(
        self, party: Party, key: str, state: T | Removed[T], version: int | None, via: str = ""
    ) -> PartnerRecord[T] | None:
        """Store `state` (come through connection `via`) marked unannounced if the record is still
        at `version` (None: absent); the new record, or None when the precondition failed."""

    async def announced(self, versions: Sequence[PartnerVersion]) -> None:
        """These versions were published: clear their marks (a newer version keeps its own)."""

    async def unannounced(self, stored_before: datetime, limit: int) -> list[PartnerRecord[T]]:
        """Records still marked unannounced that were stored before `stored_before`, oldest first."""


# stored object (None when absent or deleted) -> the state to store, or None when nothing changes
Rule = Callable[[T | None], T | Removed[T] | None]


async def store_change(
    store: ReceiverStore[T], party: Party, key: str, rule: Rule[T], via: str = ""
) -> tuple[T | None, PartnerRecord[T] | None]:
    """Apply `rule` to our copy with compare-and-set: (object before, record after or None if unchanged)."""
    for _ in range(MAX_ATTEMPTS):
        record = await store.get(party, key)
        before = None if record is None else record.current
        state = rule(before)
        if state is None:
            return before, None
        saved = await store.save(party, key, state, None if record is None else record.version, via)
        if saved is not None:
            return before, saved
    raise ConcurrentChanges(f"{party.country_code}/{party.party_id}/{key} kept changing")


async def receive(
    store: ReceiverStore[T],
    party: Party,
    key: str,
    rule: Rule[T],
    announce: Callable[[PartnerRecord[T]], Message],
    is_new: Callable[[T | None], bool] = lambda before: before is None,
    via: str = "",
) -> Outcome:
    """Answer a PUT, PATCH or DELETE: apply the rule, reply, and announce what was stored.

    `is_new(before)` tells whether the change created the addressed object (HTTP 201).
    """
    try:
        before, after = await store_change(store, party, key, rule, via)
    except OcpiFailure as exc:
        return Outcome(reply=failure_reply(exc))
    except msgspec.ValidationError as exc:
        return Outcome(reply=failure_reply(InvalidInput(str(exc))))
    except UNSTORABLE as exc:
        message = f"the request holds a value that cannot be stored: {type(exc).__name__}: {exc}"
        return Outcome(reply=failure_reply(InvalidInput(message)))
    if after is None:
        return Outcome(reply=ok(None))  # older than what we hold, or identical: success, no change
    created = not after.removed and is_new(before)
    return Outcome(reply=ok(None, http_status=201 if created else 200), events=[announce(after)])


# ---- rules of one-level (flat) objects -------------------------------------------------------------


class Stamped(Protocol):
    """An OCPI object with a last_updated."""

    @property
    def last_updated(self) -> datetime: ...


S = TypeVar("S", bound=Stamped)


def is_stale(incoming: datetime, stored: datetime) -> bool:
    """True when a change is older than what is stored; equal timestamps are applied (idempotent)."""
    return to_utc(incoming) < to_utc(stored)


def check_id(kind: str, in_body: object, in_url: str) -> None:
    """InvalidInput (2001) when the body names another object than the URL (absent is fine)."""
    if in_body is not UNSET and in_body != in_url:
        raise InvalidInput(f"{kind} {in_body!r} in the body differs from {in_url!r} in the URL")


def put_whole(stored: S | None, incoming: S, object_id: str, id_field: str = "id") -> S | None:
    """A full object replaces the stored one unless it is older or identical."""
    check_id(id_field, getattr(incoming, id_field), object_id)
    if stored is not None and (is_stale(incoming.last_updated, stored.last_updated) or incoming == stored):
        return None
    return incoming


def patch_time(patch: OcpiStruct, stored: datetime, now: datetime) -> datetime | None:
    """The last_updated a PATCH sets, or None when the PATCH is older than the stored object."""
    at = getattr(patch, "last_updated", UNSET)
    if isinstance(at, datetime):
        return None if is_stale(at, stored) else at
    # 2.1.1 does not require last_updated in a PATCH: the change happens now (never going backwards).
    return max(to_utc(now), to_utc(stored))


def patch_whole(
    stored: S | None,
    patch: OcpiStruct,
    object_id: str,
    now: datetime,
    unknown: UnknownObject,
    id_field: str = "id",
) -> S | None:
    """Fields present in the PATCH replace the stored ones; `unknown` is raised when we lack the object."""
    if stored is None:
        raise unknown
    check_id(id_field, getattr(patch, id_field, UNSET), object_id)
    at = patch_time(patch, stored.last_updated, now)
    if at is None:
        return None
    merged: S = apply_patch(stored, patch)  # type: ignore[type-var]
    return msgspec.structs.replace(merged, last_updated=at)  # type: ignore[type-var]


def delete_whole(stored: S | None, unknown: UnknownObject) -> Removed[S]:
    """The tombstone of a stored object; `unknown` is raised when we lack it."""
    if stored is None:
        raise unknown
    return Removed(stored)
