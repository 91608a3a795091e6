"""Partners' tokens sealed at rest (review M5): the gateway's registry and the dispatcher's projection
seal what older versions stored in clear, seal again under a new key, refuse to start without the
key that opens them; the gateway hands a token to the dispatcher sealed, and only for a connected
partner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.dispatcher.partner_tokens import PartnerTokens, TokenUnavailable
from services.dispatcher.partners import PartnerProjection
from services.gateway.auth import TokenCache
from services.gateway.partner_client import PartnerClient
from services.gateway.partners import ConnectionStatus, PartnerRepository, new_partner
from services.gateway.state import Gateway
from services.gateway.token_requests import token_server
from shared.contracts.partners import PartnerRegistered, Party
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.sealing import Sealer, SealError, new_key
from shared.settings import Role, Settings
from shared.storage import Document

pytestmark = pytest.mark.integration
OLD, NEW = new_key(), new_key()
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(mongo_url: str, namespace: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
    yield client[f"{namespace}_sealing"]
    await client.close()


async def test_the_gateway_seals_clear_tokens_of_an_older_version_and_reads_them(
    db: AsyncDatabase[Document],
) -> None:
    repository = PartnerRepository(db, Sealer.from_setting(NEW))
    partner = new_partner("acme", Role.EMSP, "DE", "ACM", status=ConnectionStatus.CONNECTED)
    await repository.add(partner)
    # What a version before sealing left in the document.
    await db["partners"].update_one(
        {"_id": partner.id}, {"$set": {"their_token": "clear-token"}, "$unset": {"their_token_sealed": ""}}
    )
    assert await repository.seal_stored() == 1
    doc = await db["partners"].find_one({"_id": partner.id})
    assert doc is not None and "their_token" not in doc and "clear-token" not in str(doc)
    assert doc["their_token_sealed"].startswith("s1.")
    found = await repository.get(partner.id)
    assert found is not None and found.their_token == "clear-token"
    assert await repository.seal_stored() == 0


async def test_a_token_the_gateway_stores_is_sealed_on_every_write(db: AsyncDatabase[Document]) -> None:
    repository = PartnerRepository(db, Sealer.from_setting(NEW))
    partner = new_partner("acme", Role.EMSP, "DE", "ACM", their_token="first")
    await repository.add(partner)
    changed = await repository.update_if(partner.id, {}, {"their_token": "second"})
    assert changed is not None and changed.their_token == "second"
    doc = await db["partners"].find_one({"_id": partner.id})
    assert doc is not None and "second" not in str(doc) and "first" not in str(doc)
    cleared = await repository.update_if(partner.id, {}, {"their_token": None})
    assert cleared is not None and cleared.their_token is None


async def test_a_key_rotation_seals_again_under_the_new_key_and_a_missing_key_is_named(
    db: AsyncDatabase[Document],
) -> None:
    before = PartnerRepository(db, Sealer.from_setting(OLD))
    partner = new_partner("acme", Role.EMSP, "DE", "ACM", their_token="their-token")
    await before.add(partner)
    # Without the old key, nothing opens: the gateway must not start (it names the key).
    with pytest.raises(SealError, match=Sealer.from_setting(OLD).current):
        await PartnerRepository(db, Sealer.from_setting(NEW)).seal_stored()
    # NEW first, OLD still there: sealed again under NEW.
    assert await PartnerRepository(db, Sealer.from_setting(f"{NEW},{OLD}")).seal_stored() == 1
    # Then OLD may go.
    after = PartnerRepository(db, Sealer.from_setting(NEW))
    assert await after.seal_stored() == 0
    found = await after.get(partner.id)
    assert found is not None and found.their_token == "their-token"


def registration(partner_id: str) -> PartnerRegistered:
    return PartnerRegistered(
        partner_id=partner_id,
        name="acme",
        role=Role.EMSP,
        parties=[Party("DE", "ACM")],
        versions_url="http://x/versions",
        version="2.1.1",
        endpoints={"locations": "http://x/locations"},
        registered_at=NOW,
    )


async def test_the_dispatcher_seals_clear_tokens_and_again_after_a_rotation(
    db: AsyncDatabase[Document],
) -> None:
    projection = PartnerProjection(db, Sealer.from_setting(OLD))
    await projection.register(registration("p"), Sealer.from_setting(OLD).seal("their-token", "p"), NOW, 5)
    await db["partners"].insert_one(
        {"_id": "legacy", "role": "EMSP", "versions_url": "http://y/versions", "token": "legacy-token"}
    )
    rotated = PartnerProjection(db, Sealer.from_setting(f"{NEW},{OLD}"))
    assert await rotated.seal_stored() == 2
    assert await rotated.seal_stored() == 0
    after = PartnerProjection(db, Sealer.from_setting(NEW))
    tokens = {p.partner_id: p.token for p in await after.all()}
    assert tokens == {"p": "their-token", "legacy": "legacy-token"}
    stored = [str(doc) async for doc in db["partners"].find()]
    assert not [doc for doc in stored if "their-token" in doc or "legacy-token" in doc]


async def test_the_gateway_hands_a_connected_partners_token_over_sealed_and_no_other(
    db: AsyncDatabase[Document], broker: Broker
) -> None:
    """PartnerTokenGet through the broker: sealed for the partner it names; 404 for one that is not
    connected; a dispatcher holding other keys does not take the answer."""
    sealer = Sealer.from_setting(NEW)
    repository = PartnerRepository(db, sealer)
    connected = new_partner(
        "a", Role.EMSP, "DE", "AAA", status=ConnectionStatus.CONNECTED, their_token="tok-a"
    )
    pending = new_partner("b", Role.EMSP, "DE", "BBB")
    for partner in (connected, pending):
        await repository.add(partner)
    # The answer needs the registry and the sealer only: no outbound client.
    gateway = Gateway(
        Settings(),
        broker,
        RpcClient(broker, 3.0),
        repository,
        TokenCache(),
        cast(PartnerClient, None),
        sealer,
    )
    server = token_server(gateway)
    await server.start()
    rpc = RpcClient(broker, 3.0)
    await rpc.start()
    try:
        sealed = await PartnerTokens(rpc, sealer).sealed(connected.id)
        assert sealed is not None and "tok-a" not in sealed
        assert sealer.open(sealed, connected.id) == "tok-a"
        assert await PartnerTokens(rpc, sealer).sealed(pending.id) is None
        assert await PartnerTokens(rpc, sealer).sealed("nobody") is None
        with pytest.raises(TokenUnavailable):
            await PartnerTokens(rpc, Sealer.from_setting(OLD)).sealed(connected.id)
    finally:
        await server.stop()
