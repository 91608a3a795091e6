"""Unit tests of the dispatcher's event routing: bindings from the catalogue, unknown kinds, poison."""

from __future__ import annotations

from typing import cast

import pytest

from services.dispatcher.handlers import BINDINGS, Deps, handle
from shared.messaging.consumer import Delivery, PoisonMessage

# These paths return or raise before any dependency is used.
NO_DEPS = cast(Deps, object())


def delivery(body: bytes, key: str = "credentials.partner.registered") -> Delivery:
    """A message as the shared consumer hands it over."""
    return Delivery(body=body, routing_key=key, headers={}, message_id="m1", redelivered=False)


def test_bindings_come_from_the_message_catalogue() -> None:
    """The queue is bound to the partner events, location changes and pull requests."""
    assert BINDINGS == ("credentials.partner.*", "locations.location.changed", "dispatcher.module.pull")


async def test_an_unknown_kind_under_a_bound_key_is_skipped() -> None:
    """A message type the dispatcher does not know (a newer producer) is acked without effect."""
    await handle(delivery(b'{"type": "credentials.partner.renamed", "partner_id": "p"}'), NO_DEPS)


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
    with pytest.raises(PoisonMessage, match="not a dispatcher event"):
        await handle(delivery(body), NO_DEPS)
