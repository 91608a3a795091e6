"""The gateway's requests for a one-level module (tariffs, tokens, ...): plain handler functions.

A flat module's objects sit directly below `{country_code}/{party_id}` (receiver) or the module's URL
(sender), so GET, PUT, PATCH and DELETE mean the same for every such module: the module table says
which type a body is, which id field must match the URL, and the status of an unknown object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from shared.contracts.base import Message, Outcome, ok
from shared.contracts.objects import (
    ReceiverDelete,
    ReceiverGet,
    ReceiverPatch,
    ReceiverPut,
    SenderGet,
    SenderList,
)
from shared.contracts.partners import Party
from shared.errors import InvalidInput, OcpiFailure, UnknownObject, failure_reply
from shared.modules.receiver import (
    PartnerRecord,
    ReceiverStore,
    Rule,
    delete_whole,
    patch_whole,
    put_whole,
    receive,
    store_change,
)
from shared.modules.sender import SenderStore, sender_page
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.modules import OcpiModule
from shared.ocpi.v2_1_1.types import utc_now
from shared.rpc_service import RpcHandler

T = TypeVar("T")
Announce = Callable[[PartnerRecord[Any]], Message]


def object_id(module: OcpiModule, path: list[str]) -> str:
    """The one id of a flat module's path; InvalidInput for any other path."""
    if len(path) != 1 or not path[0]:
        raise InvalidInput(f"a {module.name} object is addressed by {module.level(1).name} alone")
    return path[0]


def unknown(module: OcpiModule, party: Party | None, key: str) -> UnknownObject:
    """HTTP 404 with the module's status for an object we do not hold."""
    where = key if party is None else f"{party.country_code}/{party.party_id}/{key}"
    return UnknownObject(f"Unknown {module.level(1).object_type.__name__}: {where}", module.unknown_status)


def sender_handlers(
    module: OcpiModule, store: SenderStore[Any], internal_get: bool = False
) -> dict[type[Message], RpcHandler]:
    """The list, and GET by id where the module's Sender interface has it, or where the platform's
    own processes need it (`internal_get`: the sessions service reads the tariff of a connector;
    partners cannot, the gateway has no such route)."""

    async def handle_list(msg: SenderList) -> Outcome:
        return await sender_page(store, msg)

    async def handle_get(msg: SenderGet) -> Outcome:
        try:
            key = object_id(module, msg.path)
            record = await store.get(key)
            if record is None or record.removed:
                raise unknown(module, None, key)
        except OcpiFailure as exc:
            return Outcome(reply=failure_reply(exc))
        return Outcome(reply=ok(record.value))

    handlers: dict[type[Message], RpcHandler] = {SenderList: handle_list}
    if module.sender_get or internal_get:
        handlers[SenderGet] = handle_get
    return handlers


def owner_list(store: SenderStore[T], view: Callable[[T], Any]) -> RpcHandler:
    """The list of a module whose audience is the token's owner (sessions, CDRs): a partner sees
    the objects of its own parties only (`SenderList.parties`), as `view` shows them."""

    async def handle(msg: SenderList) -> Outcome:
        owners = tuple((p.country_code, p.party_id) for p in msg.parties)
        return await sender_page(store, msg, owners=owners, view=view)

    return handle


def receiver_handlers(
    module: OcpiModule, store: ReceiverStore[Any], announce: Announce
) -> dict[type[Message], RpcHandler]:
    """GET, PUT, PATCH and DELETE of partners' objects, as far as the module's Receiver has them."""

    async def handle_get(msg: ReceiverGet) -> Outcome:
        try:
            key = object_id(module, msg.path)
            record = await store.get(msg.party, key)
            if record is None or record.removed:
                raise unknown(module, msg.party, key)
        except OcpiFailure as exc:
            return Outcome(reply=failure_reply(exc))
        return Outcome(reply=ok(record.value))

    async def handle_change(msg: ReceiverPut | ReceiverPatch | ReceiverDelete) -> Outcome:
        try:
            key = object_id(module, msg.path)
            rule = _rule(module, msg, key)
        except OcpiFailure as exc:
            return Outcome(reply=failure_reply(exc))
        return await receive(store, msg.party, key, rule, announce, via=msg.partner_id)

    handlers: dict[type[Message], RpcHandler] = {
        ReceiverGet: handle_get,
        ReceiverPut: handle_change,
        ReceiverPatch: handle_change,
        ReceiverDelete: handle_change,
    }
    methods = {ReceiverGet: "GET", ReceiverPut: "PUT", ReceiverPatch: "PATCH", ReceiverDelete: "DELETE"}
    return {kind: h for kind, h in handlers.items() if methods[kind] in module.receiver_methods}


def _body(body: bytes, type_: type[T]) -> T:
    try:
        return decode(body, type_)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidInput(f"Invalid {type_.__name__}: {exc}") from exc


def _rule(module: OcpiModule, msg: ReceiverPut | ReceiverPatch | ReceiverDelete, key: str) -> Rule[Any]:
    """The flat-object rule of a request: PUT replaces, PATCH merges, DELETE leaves a tombstone."""
    level = module.level(1)
    missing = unknown(module, msg.party, key)
    if isinstance(msg, ReceiverPut):
        incoming: Any = _body(msg.body, level.object_type)
        return lambda stored: put_whole(stored, incoming, key, level.id_field)
    if isinstance(msg, ReceiverPatch):
        patch = _body(msg.body, level.patch_type)
        now = utc_now()
        return lambda stored: patch_whole(stored, patch, key, now, missing, level.id_field)
    return lambda stored: delete_whole(stored, missing)


async def import_whole(
    module: OcpiModule,
    store: ReceiverStore[T],
    party: Party,
    obj: T,
    key: str,
    announce: Announce,
    via: str = "",
) -> Outcome:
    """Store an object pulled from a partner during a re-sync like a PUT (unless ours is newer).

    `via` is the connection it was pulled through, stored like a PUT's. Raises one of UNSTORABLE
    when it can never be stored (the caller dead-letters it).
    """
    id_field = module.level(1).id_field

    def rule(stored: T | None) -> T | None:
        return put_whole(stored, obj, key, id_field)  # type: ignore[type-var]

    _, after = await store_change(store, party, key, rule, via)
    return Outcome() if after is None else Outcome(events=[announce(after)])
