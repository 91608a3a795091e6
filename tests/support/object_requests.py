"""The gateway's generic `objects.*` requests, built as the gateway builds them (for service tests)."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.contracts import objects
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.codec import encode


def sender_list(module: str = "locations", **query: Any) -> objects.SenderList:
    """GET of the module's list; `query` as the gateway parses it (or as a Link's next_query)."""
    return msgspec.convert({"module": module, **query}, objects.SenderList, strict=False)


def _path(*ids: str | None) -> list[str]:
    return [i for i in ids if i is not None]


def sender_get(
    location_id: str, evse_uid: str | None = None, connector_id: str | None = None
) -> objects.SenderGet:
    """GET of one of our locations, EVSEs or connectors."""
    return objects.SenderGet(module="locations", path=_path(location_id, evse_uid, connector_id))


def receiver_get(
    country_code: str, party_id: str, location_id: str, evse_uid: str | None = None,
    connector_id: str | None = None, module: str = "locations",
) -> objects.ReceiverGet:  # fmt: skip
    """GET of a partner's object as we hold it."""
    path = _path(location_id, evse_uid, connector_id)
    return objects.ReceiverGet(module=module, party=Party(country_code, party_id), path=path)


def receiver_put(
    country_code: str, party_id: str, location_id: str, evse_uid: str | None = None,
    connector_id: str | None = None, *, location: Any = None, evse: Any = None, connector: Any = None,
) -> objects.ReceiverPut:  # fmt: skip
    """PUT of a partner's location, EVSE or connector: the one object given is the body."""
    (body,) = [obj for obj in (location, evse, connector) if obj is not None]
    path = _path(location_id, evse_uid, connector_id)
    return objects.ReceiverPut(
        module="locations", party=Party(country_code, party_id), path=path, body=msgspec.Raw(encode(body))
    )


def receiver_patch(
    country_code: str, party_id: str, location_id: str, evse_uid: str | None = None,
    connector_id: str | None = None, *, patch: dict[str, Any],
) -> objects.ReceiverPatch:  # fmt: skip
    """PATCH of a partner's location, EVSE or connector with these fields."""
    path = _path(location_id, evse_uid, connector_id)
    return objects.ReceiverPatch(
        module="locations", party=Party(country_code, party_id), path=path, body=msgspec.Raw(encode(patch))
    )
