"""Who holds a token uid among our partners' tokens: the charger's lookup, one indexed query."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from services.tokens.cpo_cache import TokenKey
from services.tokens.cpo_policy import Found, Holder, choose_holder
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.codec import convert
from shared.ocpi.v2_1_1.tokens import Token
from shared.storage import Document

# More copies of one uid than this are not looked at (uids are unique within an eMSP).
MOST_HOLDERS = 16


class TokenHolders:
    """Reads the `partner_tokens` collection of MongoReceiverStore by uid and type."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    async def ensure_indexes(self) -> None:
        """The charger's lookup: the stored id is the token's uid; its type narrows it."""
        await self._collection.create_index([("id", ASCENDING), ("token.type", ASCENDING)])

    async def find(self, key: TokenKey) -> Found:
        """The holder of a uid and type (see choose_holder when several parties hold it)."""
        uid, token_type = key
        cursor = self._collection.find(
            {"id": uid, "token.type": token_type.value, "removed": {"$ne": True}},
            {"country_code": 1, "party_id": 1, "token": 1, "via": 1, "version": 1},
        )
        documents = await cursor.limit(MOST_HOLDERS).to_list()
        return choose_holder(
            [
                Holder(
                    party=Party(document["country_code"], document["party_id"]),
                    token=convert(document["token"], Token),
                    via=str(document.get("via", "")),
                    version=int(document["version"]),
                )
                for document in documents
            ]
        )
