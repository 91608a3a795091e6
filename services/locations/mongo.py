"""The MongoDB repository of the locations service: `own_locations` (CPO) and `partner_locations` (eMSP)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from services.locations.repository import Repository, updated_of
from shared.modules.mongo import MongoReceiverStore, MongoSenderStore
from shared.ocpi.v2_1_1.locations import Location
from shared.storage import Document

OWN = "own_locations"
PARTNER = "partner_locations"
FIELD = "location"  # the document field holding the OCPI object


async def mongo_repository(db: AsyncDatabase[Document]) -> Repository:
    """The MongoDB repository of a service database, with its indexes in place."""
    own = MongoSenderStore(db, OWN, Location, FIELD, updated_of)
    partners = MongoReceiverStore(db, PARTNER, Location, FIELD, updated_of)
    await own.ensure_indexes()
    await partners.ensure_indexes()
    return Repository(own=own, partners=partners)
