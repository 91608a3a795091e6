"""Gateway requests of every object module: one set of generic RPC requests, routed by `module`.

The gateway validates a body against the module table's type for the addressed level (so a 2001
names the partner's field at the edge) and forwards the partner's bytes as `Raw`; the service decodes
them once more into the same type. `path` holds the ids below `{country_code}/{party_id}` (receiver)
or below the module's URL (sender), one per level. The `objects.*` tags are new, so an old gateway
and a new service never decode each other's requests wrongly during a rolling deploy.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from shared.contracts.base import Message
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.types import NonNegativeInt


class SenderList(Message, frozen=True, kw_only=True, tag="objects.sender.list"):
    """GET of the module's list: a page of our objects."""

    module: str
    offset: NonNegativeInt = 0
    limit: NonNegativeInt
    date_from: datetime | None = None
    date_to: datetime | None = None
    # Opaque keyset position from a Link we issued; when present it wins over offset.
    cursor: str | None = None
    # The connection asking and the parties it may see: a module whose audience is the token's
    # owner (sessions, CDRs) lists only the objects of those parties.
    partner_id: str = ""
    parties: list[Party] = msgspec.field(default_factory=list)


class SenderGet(Message, frozen=True, kw_only=True, tag="objects.sender.get"):
    """GET of one of our objects (or a part of it, for locations)."""

    module: str
    path: list[str]


class ReceiverGet(Message, frozen=True, kw_only=True, tag="objects.receiver.get"):
    """GET of a partner-owned object as we hold it."""

    module: str
    party: Party
    path: list[str]
    # The connection (partner id) that made the request: the party's own, or a hub carrying it.
    partner_id: str = ""


class ReceiverPut(Message, frozen=True, kw_only=True, tag="objects.receiver.put"):
    """PUT of a partner-owned object; `body` is the level's object type, validated at the edge."""

    module: str
    party: Party
    path: list[str]
    body: msgspec.Raw
    partner_id: str = ""


class ReceiverPatch(Message, frozen=True, kw_only=True, tag="objects.receiver.patch"):
    """PATCH of a partner-owned object; `body` is the level's patch type, validated at the edge."""

    module: str
    party: Party
    path: list[str]
    body: msgspec.Raw
    partner_id: str = ""


class ReceiverPost(Message, frozen=True, kw_only=True, tag="objects.receiver.post"):
    """POST of a new partner-owned object (CDRs): stored once under `party`, answered with the
    object's path below the module's URL (the gateway turns it into the `Location` header)."""

    module: str
    party: Party
    body: msgspec.Raw
    partner_id: str = ""


class ReceiverDelete(Message, frozen=True, kw_only=True, tag="objects.receiver.delete"):
    """DELETE of a partner-owned object (modules whose receiver has DELETE: tariffs)."""

    module: str
    party: Party
    path: list[str]
    partner_id: str = ""


ObjectRequest = (
    SenderList | SenderGet | ReceiverGet | ReceiverPut | ReceiverPatch | ReceiverPost | ReceiverDelete
)
