"""Our own objects of a module (the Sender interface): storage Protocol, the list page, the input loop.

Writes are compare-and-set: adding fails when the object exists, an update when the stored `version`
moved on (another replica or a concurrent message got there first); the loser reads again and
retries. Each object remembers the `event_id`s of its recent inputs, stored with each version, so a
redelivered input, checked against the version it is applied to, changes nothing twice. Inputs are
applied a batch at a time: one read of the objects not already known, one bulk write.

A removed object stays as a tombstone (`Removed`) with its version, so that a removal and a later
re-creation stay ordered for every consumer; lists and counts leave tombstones out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge

from shared.contracts.base import Message, Outcome, ok
from shared.contracts.objects import SenderList
from shared.errors import InvalidInput, failure_reply
from shared.modules.paging import decode_cursor, next_page_query
from shared.ocpi.v2_1_1.types import to_utc

T = TypeVar("T")

# How many recent event ids an object remembers. A redelivered input was unacked when its replica
# stopped; that replica applied at most the rest of its batch after it (a batch is acked before the
# next one is applied), so batches stay at most this big. Another replica may have applied more
# inputs meanwhile: then the last_updated guard keeps the older input from undoing them.
RECENT_EVENTS = 200
# Compare-and-set attempts before giving up (the message is then retried by the consumer).
MAX_ATTEMPTS = 20

#: What a write raises for a value the database can never store: an int beyond 64 bits
#: (OverflowError), a key or value BSON refuses, a document over 16 MB, nesting too deep to encode.
#: Trying the same message again cannot help: it gets a verdict (2001 or dead-lettered) instead.
UNSTORABLE: tuple[type[Exception], ...] = (OverflowError, InvalidDocument, DocumentTooLarge, RecursionError)


@dataclass(frozen=True)
class Removed(Generic[T]):
    """A tombstone: the object's last state before it was removed."""

    last: T


class ConcurrentChanges(Exception):
    """Others kept changing the same object; the message is retried later."""


class Rejected(Exception):
    """An input that can never apply to the stored state: it is dead-lettered with this reason."""


@dataclass(frozen=True)
class OwnRecord(Generic[T]):
    """One of our objects as stored (its last state, when it is a tombstone)."""

    value: T
    version: int
    created_seq: int
    recent_event_ids: tuple[str, ...] = ()
    removed: bool = False

    @property
    def state(self) -> T | Removed[T]:
        """The object, or its tombstone."""
        return Removed(self.value) if self.removed else self.value


@dataclass(frozen=True)
class OwnWrite(Generic[T]):
    """A new state of one object and the inputs that made it (at least one)."""

    key: str
    value: T
    # The stored version this state replaces; None for an object that is not stored yet.
    version: int | None
    event_ids: tuple[str, ...]
    removed: bool = False


# The parties a partner may see of a module whose audience is the token's owner (sessions, CDRs).
Owners = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Window:
    """Which objects a page holds: keyset (`after_seq`) or offset, and the date filters."""

    limit: int
    offset: int = 0
    after_seq: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    # Only objects of these (country_code, party_id) owners; None: every object (see Owners).
    owners: Owners | None = None

    def matches(self, created_seq: int, last_updated: datetime) -> bool:
        """The filter of the window, without offset and limit (used by the in-memory store)."""
        return (
            (self.after_seq is None or created_seq > self.after_seq)
            and (self.date_from is None or to_utc(last_updated) >= to_utc(self.date_from))
            and (self.date_to is None or to_utc(last_updated) < to_utc(self.date_to))
        )


class SenderStore(Protocol[T]):
    """Our objects of one module, in creation order."""

    async def get(self, key: str) -> OwnRecord[T] | None:
        """The stored record (also a tombstone), if any, as the database holds it now."""

    async def get_many(self, keys: Collection[str]) -> dict[str, OwnRecord[T]]:
        """The records among `keys`, by key; may answer from what this process last wrote or read."""

    async def save_many(self, writes: Sequence[OwnWrite[T]]) -> dict[str, int]:
        """Store every write whose precondition holds; the new version of each stored one, by key.

        A new object (version None) must not exist yet; an update needs the stored version to be
        `version` still. Each is decided on its own. The caller passes only event ids that the
        record it read at `version` does not remember: the version check makes that hold at the write.
        """

    async def page(self, window: Window) -> list[tuple[int, T]]:
        """(created_seq, object) pairs of a window, oldest creation first, tombstones left out."""

    async def count(
        self, date_from: datetime | None, date_to: datetime | None, owners: Owners | None = None
    ) -> int:
        """How many objects (not tombstones) match the date filters (and belong to `owners`)."""


# ---- the list ---------------------------------------------------------------------------------------


async def sender_page(
    store: SenderStore[Any],
    msg: SenderList,
    owners: Owners | None = None,
    view: Callable[[Any], Any] | None = None,
) -> Outcome:
    """A page of our objects, oldest creation first, with the query of the next page if any.

    `owners`: only objects of these parties (the asking partner's, for sessions and CDRs);
    `view`: what partners see of a stored object (a session's OCPI form, without our notes)."""
    try:
        if msg.offset < 0 or msg.limit < 0:
            raise InvalidInput("offset and limit must not be negative")
        try:
            after_seq = None if msg.cursor is None else decode_cursor(msg.cursor)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        date_from = None if msg.date_from is None else to_utc(msg.date_from)
        date_to = None if msg.date_to is None else to_utc(msg.date_to)
        # One row more than asked tells whether another page follows.
        window = Window(msg.limit + 1, msg.offset, after_seq, date_from, date_to, owners)
        try:
            rows = await store.page(window) if msg.limit else []
            total = await store.count(date_from, date_to, owners)
        except UNSTORABLE as exc:  # a query value BSON cannot encode
            raise InvalidInput(f"a query value cannot be used: {type(exc).__name__}: {exc}") from exc
    except InvalidInput as exc:
        return Outcome(reply=failure_reply(exc))
    page = rows[: msg.limit]
    next_query = None
    if len(rows) > msg.limit:
        next_query = next_page_query(
            offset=msg.offset,
            limit=msg.limit,
            returned=len(page),
            last_seq=page[-1][0],
            date_from=date_from,
            date_to=date_to,
        )
    objects = [obj if view is None else view(obj) for _, obj in page]
    return Outcome(reply=ok(objects, total_count=total, limit=msg.limit, next_query=next_query))


# ---- inputs of the company's systems ------------------------------------------------------------------


class Input(Protocol):
    """An input of the company's systems: its event id is the idempotency key."""

    @property
    def event_id(self) -> str: ...


I = TypeVar("I", bound=Input)  # noqa: E741 - the input type of a module
I_contra = TypeVar("I_contra", bound=Input, contravariant=True)


class InputRules(Protocol[T, I_contra]):
    """How a module's inputs change its objects: pure functions."""

    def key_of(self, msg: I_contra) -> str:
        """The id of the object an input changes."""

    def apply(self, msg: I_contra, stored: T | Removed[T] | None) -> T | Removed[T] | None:
        """The state after an input, None when it changes nothing; Rejected when it can never apply."""

    def part_of(self, msg: I_contra) -> Hashable:
        """What part of the object an input changes, for the announcement."""

    def changed(self, record: OwnRecord[T], parts: list[Any]) -> Message | None:
        """The announcement of a stored state and the parts that changed; None when the state is
        stored without one (a running session's meter value within its push interval)."""


@dataclass
class Applied(Generic[T]):
    """What a run of inputs does to one object: the state to store (None: unchanged) and why."""

    state: T | Removed[T] | None = None
    # Inputs that changed the object, in order: their ids are stored with the new state.
    event_ids: list[str] = field(default_factory=list)
    # The parts that changed, each once, for the announcement (of replayed inputs too).
    parts: list[Any] = field(default_factory=list)
    # Some input was applied before (a redelivery): the current state is announced again.
    replayed: bool = False
    rejected: list[tuple[int, str]] = field(default_factory=list)


def apply_run(
    rules: InputRules[T, I], record: OwnRecord[T] | None, run: Sequence[tuple[int, I]]
) -> Applied[T]:
    """Apply the inputs for one object in order; `run` pairs each input with its batch index.

    An input whose event id the object remembers (or that came twice in the run) changes nothing
    again. A rejected input is reported with its index and skipped; the others still apply.
    """
    applied: Applied[T] = Applied()
    seen = set(() if record is None else record.recent_event_ids)
    current = None if record is None else record.state
    for index, msg in run:
        part = rules.part_of(msg)
        if msg.event_id in seen:
            applied.replayed = True
        else:
            try:
                after = rules.apply(msg, current)
            except Rejected as exc:
                applied.rejected.append((index, str(exc)))
                continue
            if after is None:
                continue
            seen.add(msg.event_id)
            current = applied.state = after
            applied.event_ids.append(msg.event_id)
        if part not in applied.parts:
            applied.parts.append(part)
    return applied


@dataclass
class InputsOutcome:
    """What a batch of inputs did: the events to publish, and the inputs that can never apply."""

    events: list[Message] = field(default_factory=list)
    # The id of the object each event announces, in the order of `events`.
    keys: list[str] = field(default_factory=list)
    # Batch index of each rejected input, with the reason.
    rejected: dict[int, str] = field(default_factory=dict)
    # The version each changed object was stored at, by id (for the log line of the batch).
    versions: dict[str, int] = field(default_factory=dict)

    def announce(self, key: str, event: Message | None) -> None:
        """Publish `event` for the object `key` (nothing when the rules announce nothing)."""
        if event is not None:
            self.events.append(event)
            self.keys.append(key)


def _write(key: str, record: OwnRecord[T] | None, applied: Applied[T]) -> OwnWrite[T] | None:
    state = applied.state
    if state is None:
        return None
    version = None if record is None else record.version
    removed = isinstance(state, Removed)
    value: T = state.last if isinstance(state, Removed) else state
    return OwnWrite(key, value, version, tuple(applied.event_ids), removed)


async def apply_inputs(store: SenderStore[T], rules: InputRules[T, I], inputs: Sequence[I]) -> InputsOutcome:
    """Apply a batch of inputs: one read of the objects they touch, one write of those that change.

    Inputs apply in batch order per object, each object is announced once with all its changed
    parts, and a redelivered input changes nothing but announces the current state again (its event
    may have been lost with the process; consumers drop versions they have seen). Objects that
    another replica changed meanwhile are read and applied again.
    """
    runs: dict[str, list[tuple[int, I]]] = {}
    for index, msg in enumerate(inputs):
        runs.setdefault(rules.key_of(msg), []).append((index, msg))
    outcome = InputsOutcome()
    for _ in range(MAX_ATTEMPTS):
        if not runs:
            return outcome
        records = await store.get_many(list(runs))
        writes: dict[str, tuple[OwnWrite[T], Applied[T], OwnRecord[T] | None]] = {}
        for key, run in runs.items():
            record = records.get(key)
            applied = apply_run(rules, record, run)
            write = _write(key, record, applied)
            if write is not None:
                writes[key] = (write, applied, record)
                continue
            outcome.rejected.update(applied.rejected)
            if applied.replayed and record is not None:
                outcome.announce(key, rules.changed(record, applied.parts))
        saved = await store.save_many([write for write, _, _ in writes.values()]) if writes else {}
        for key, (write, applied, record) in writes.items():
            if key in saved:
                outcome.rejected.update(applied.rejected)
                seq = 0 if record is None else record.created_seq
                after = OwnRecord(write.value, saved[key], seq, (), write.removed)
                outcome.versions[key] = saved[key]
                outcome.announce(key, rules.changed(after, applied.parts))
        runs = {key: runs[key] for key in writes if key not in saved}
    raise ConcurrentChanges(f"objects {sorted(runs)} kept changing")
