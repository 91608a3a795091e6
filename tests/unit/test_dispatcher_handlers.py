"""Unit tests of the dispatcher's event routing: bindings from the catalogue, unknown kinds, poison."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import msgspec
import pytest

from services.dispatcher.domain import change_from_key
from services.dispatcher.handlers import Deps, coalesce, handle_batch, objects_changed, partner_registered
from services.dispatcher.partner_tokens import PartnerTokens
from services.dispatcher.partners import Partner, PartnerCache
from services.dispatcher.pull_schedule import PullSchedule
from services.dispatcher.push_plans import PUSH_PLANS, Snapshot
from services.dispatcher.pushes import PushQueue
from shared.contracts.base import Message
from shared.contracts.cdrs import CdrCreated
from shared.contracts.locations import ChangeScope, LocationChange, LocationChanged
from shared.contracts.partners import PartnerRegistered, SyncState
from shared.contracts.sessions import SessionChanged
from shared.messaging.consumer import Delivery
from shared.messaging.queues import DISPATCHER_EVENTS, DISPATCHER_TOKEN_EVENTS
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Role
from tests.support.dispatcher_billing import EVERY_SESSION_FIELD, cdr_created, session, session_changed

# These paths return or raise before any dependency is used.
NO_DEPS = cast(Deps, object())


def delivery(body: bytes, key: str = "credentials.partner.registered") -> Delivery:
    """A message as the shared consumer hands it over."""
    return Delivery(body=body, routing_key=key, headers={}, message_id="m1", redelivered=False)


def test_bindings_come_from_the_message_catalogue() -> None:
    """The queue is bound to the partner events, changes of our objects and pull requests; token
    changes come on a queue of their own, so they are never read after a backlog of the others."""
    assert DISPATCHER_EVENTS.routing_keys == (
        "credentials.partner.*",
        "locations.location.changed",
        "tariffs.tariff.changed",
        "tariffs.tariff.removed",
        "dispatcher.module.pull",
    )
    assert DISPATCHER_TOKEN_EVENTS.routing_keys == (
        "tokens.token.changed",
        "sessions.session.changed",
        "cdrs.cdr.created",
    )


async def test_an_unknown_kind_under_a_bound_key_is_skipped() -> None:
    """A message type the dispatcher does not know (a newer producer) is acked without effect."""
    body = b'{"type": "credentials.partner.renamed", "partner_id": "p"}'
    assert await handle_batch([delivery(body)], NO_DEPS) == [None]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type": "credentials.partner.unregistered"}',
        b'{"type": "locations.location.changed", "version": 1}',
    ],
)
async def test_an_unreadable_event_is_poison(body: bytes) -> None:
    """Broken JSON or a known kind that fails validation is dead-lettered with the reason."""
    (verdict,) = await handle_batch([delivery(body)], NO_DEPS)
    assert verdict is not None and "not a dispatcher event" in verdict


async def test_in_a_batch_poison_gets_a_verdict_and_unknown_kinds_none() -> None:
    """A batch names each unreadable event's reason and passes over kinds that are not ours."""
    batch = [delivery(b"not json"), delivery(b'{"type": "credentials.partner.renamed", "partner_id": "p"}')]
    verdicts = await handle_batch(batch, NO_DEPS)
    assert verdicts[1] is None and verdicts[0] is not None and "not a dispatcher event" in verdicts[0]


def changed(version: int, *changes: LocationChange, location_id: str = "L1") -> LocationChanged:
    state = msgspec.convert(
        {"id": location_id, "type": "ON_STREET", "address": "a", "city": "c", "postal_code": "1",
         "country": "NLD", "coordinates": {"latitude": "52.000000", "longitude": "5.000000"},
         "name": f"v{version}", "last_updated": "2024-05-01T12:00:00Z"},
        Location,
    )  # fmt: skip
    return LocationChanged(location=state, version=version, changes=list(changes))


def test_coalesce_keeps_the_newest_state_with_every_part() -> None:
    """Per location the newest version wins, whatever the order, and each changed part appears once."""
    e1, e2 = LocationChange(ChangeScope.EVSE_STATUS, "E1"), LocationChange(ChangeScope.EVSE, "E2")
    whole = LocationChange(ChangeScope.LOCATION)
    events = [changed(3, e1), changed(5, e2, e1), changed(1, whole, location_id="L2"), changed(4, whole)]
    snapshots = coalesce([PUSH_PLANS[LocationChanged].snapshot(event, None) for event in events])
    assert [
        (s.key, s.version, s.state and s.state["name"], [change_from_key(p) for p in s.parts])
        for s in snapshots
    ] == [
        ("L1", 5, "v5", [e1, e2, whole]),
        ("L2", 1, "v1", [whole]),
    ]


class FakeCache:
    """The partner projection's receivers, without a database."""

    def __init__(self, partners: list[tuple[str, SyncState]]) -> None:
        self.partners = partners

    async def receivers(self, module: ModuleID) -> list[Partner]:
        return [
            Partner(
                pid, Role.EMSP, (), "http://x/versions", {module.value: "http://x"}, "t", state, True, 0.0
            )
            for pid, state in self.partners
        ]


class FakeQueue:
    """Records each bulk enqueue: (partner, parked, module, key) per upsert."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, bool, str, str]]] = []

    async def enqueue_each(self, targets: list[tuple[str, bool, Snapshot]], now: object) -> int:
        self.calls.append([(p, parked, s.module.value, s.key) for p, parked, s in targets])
        return len(targets)


def fake_deps(cache: FakeCache, queue: FakeQueue, woken: list[list[tuple[str, str, str]]]) -> Deps:
    return Deps(
        partners=cast(PartnerCache, cache),
        tokens=cast(PartnerTokens, object()),
        pushes=cast(PushQueue, queue),
        pulls=cast(PullSchedule, object()),
        wake_pushes=lambda keys, urgent: woken.append(list(keys)),
        wake_pulls=lambda: None,
        cpo_probe=5.0,
    )


async def test_a_run_of_changes_is_one_enqueue_for_all_partners_and_wakes_one_worker_per_push() -> None:
    """Two partners, one OUT_OF_SYNC: one bulk enqueue, the parked one marked; only live pushes wake."""
    cache = FakeCache([("a", SyncState.IN_SYNC), ("b", SyncState.OUT_OF_SYNC)])
    queue = FakeQueue()
    woken: list[list[tuple[str, str, str]]] = []
    e1 = LocationChange(ChangeScope.EVSE_STATUS, "E1")
    snapshots = [
        PUSH_PLANS[LocationChanged].snapshot(event, None)
        for event in (changed(1, e1), changed(2, e1), changed(1, e1, location_id="L2"))
    ]
    await objects_changed(snapshots, fake_deps(cache, queue, woken))
    assert queue.calls == [
        [
            ("a", False, "locations", "L1"),
            ("b", True, "locations", "L1"),
            ("a", False, "locations", "L2"),
            ("b", True, "locations", "L2"),
        ]
    ]
    assert woken == [[("a", "locations", "L1"), ("a", "locations", "L2")]]


async def test_sessions_and_cdrs_go_to_the_owner_partner_only_in_the_same_single_write() -> None:
    """A session or CDR goes to the partner its event names, never to another eMSP receiving the
    module; one bulk write holds them with a location change of the same run (to every receiver)."""
    cache = FakeCache(
        [("emsp-1", SyncState.IN_SYNC), ("emsp-2", SyncState.IN_SYNC), ("hub", SyncState.OUT_OF_SYNC)]
    )
    queue = FakeQueue()
    woken: list[list[tuple[str, str, str]]] = []
    events: list[Message] = [
        session_changed(session("S1"), 1, EVERY_SESSION_FIELD, partner_id="emsp-1"),
        changed(1, LocationChange(ChangeScope.LOCATION)),
        cdr_created("C1", partner_id="hub"),
        session_changed(session("S1", kwh=2.0, minutes=5), 2, ["kwh", "last_updated"], partner_id="emsp-1"),
    ]
    snapshots = [PUSH_PLANS[type(event)].snapshot(event, None) for event in events]
    await objects_changed(snapshots, fake_deps(cache, queue, woken))
    assert queue.calls == [
        [
            ("emsp-1", False, "sessions", "S1"),
            ("emsp-1", False, "locations", "L1"),
            ("emsp-2", False, "locations", "L1"),
            ("hub", True, "locations", "L1"),
            ("hub", True, "cdrs", "C1"),  # parked: the hub is out of sync
        ]
    ]
    assert woken == [
        [("emsp-1", "sessions", "S1"), ("emsp-1", "locations", "L1"), ("emsp-2", "locations", "L1")]
    ]


@pytest.mark.parametrize("partner_id", [None, "stranger"])
async def test_an_owner_only_object_without_a_receiving_owner_goes_to_nobody(partner_id: str | None) -> None:
    """No partner serves the token (None), or the one named is not a receiver: nothing is queued,
    and a snapshot of a TOKEN_OWNER module that names no audience is never broadcast either."""
    cache = FakeCache([("emsp-1", SyncState.IN_SYNC), ("emsp-2", SyncState.IN_SYNC)])
    queue = FakeQueue()
    woken: list[list[tuple[str, str, str]]] = []
    snapshots = [
        PUSH_PLANS[SessionChanged].snapshot(session_changed(session("S1"), 1, ["kwh"], partner_id), None),
        PUSH_PLANS[CdrCreated].snapshot(cdr_created("C1", partner_id), None),
        replace(PUSH_PLANS[CdrCreated].snapshot(cdr_created("C2"), None), audience=None),
    ]
    await objects_changed(snapshots, fake_deps(cache, queue, woken))
    assert queue.calls == [[]] and woken == []


class GoneTokens:
    """The gateway's answer for a partner unregistered since its PartnerRegistered: not connected."""

    async def sealed(self, partner_id: str) -> str | None:
        return None


class NoProjection:
    async def register(self, *args: object) -> bool:
        raise AssertionError("an obsolete registration must not be stored")


async def test_a_registration_the_gateway_no_longer_has_a_token_for_is_not_stored() -> None:
    """Its PartnerUnregistered follows; storing it without a token would make pushes fail."""
    event = PartnerRegistered(
        partner_id="p",
        name="P",
        role=Role.EMSP,
        parties=[],
        versions_url="http://x/versions",
        version="2.1.1",
        endpoints={"locations": "http://x/locations"},
        registered_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    deps = fake_deps(FakeCache([]), FakeQueue(), [])
    deps.tokens = cast(PartnerTokens, GoneTokens())
    deps.partners = cast(PartnerCache, SimpleNamespace(projection=NoProjection()))
    await partner_registered(event, deps)
