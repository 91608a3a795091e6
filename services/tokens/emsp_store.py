"""Where our tokens live: the generic sender store of `IssuedToken`s, seen through `IssuedTokens`.

`IssuedTokens` stores what the input rules make without their `unsaved` mark (a stored state is
the previous version of the next batch), and pages the plain 2.1.1 Tokens partners list: the reason
of an invalid token stays ours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import datetime

import msgspec
from pymongo.asynchronous.database import AsyncDatabase

from services.tokens.emsp_rules import IssuedToken
from shared.modules.mongo import MongoSenderStore
from shared.modules.sender import Owners, OwnRecord, OwnWrite, SenderStore, Window
from shared.ocpi.v2_1_1.tokens import Token
from shared.storage import Document

COLLECTION = "own_tokens"


def updated_of(issued: IssuedToken) -> datetime:
    """The last_updated a token is filtered and paged by."""
    return issued.token.last_updated


class IssuedTokens:
    """A SenderStore of our tokens whose pages hold 2.1.1 Tokens (see the module docstring)."""

    def __init__(self, inner: SenderStore[IssuedToken]) -> None:
        self._inner = inner

    async def get(self, key: str) -> OwnRecord[IssuedToken] | None:
        """The stored token, read from the database."""
        return await self._inner.get(key)

    async def get_many(self, keys: Collection[str]) -> dict[str, OwnRecord[IssuedToken]]:
        """The stored tokens among `keys`, by uid."""
        return await self._inner.get_many(keys)

    async def save_many(self, writes: Sequence[OwnWrite[IssuedToken]]) -> dict[str, int]:
        """Store the writes as stored states (no `unsaved` mark)."""
        stored = [
            dataclasses.replace(write, value=msgspec.structs.replace(write.value, unsaved=False))
            for write in writes
        ]
        return await self._inner.save_many(stored)

    async def page(self, window: Window) -> list[tuple[int, Token]]:
        """(created_seq, Token) pairs of a window, oldest creation first."""
        return [(seq, issued.token) for seq, issued in await self._inner.page(window)]

    async def count(
        self, date_from: datetime | None, date_to: datetime | None, owners: Owners | None = None
    ) -> int:
        """How many tokens match the date filters."""
        return await self._inner.count(date_from, date_to, owners)


async def mongo_tokens(db: AsyncDatabase[Document]) -> IssuedTokens:
    """`own_tokens`, with the indexes of the list in place."""
    store = MongoSenderStore(db, COLLECTION, IssuedToken, "issued", updated_of)
    await store.ensure_indexes()
    return IssuedTokens(store)
