"""Our tokens (eMSP side): the pure input rules, the changed fields, and the list, in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from services.tokens.emsp import RULES
from services.tokens.emsp_rules import TOKEN_FIELDS, IssuedToken, apply_input
from services.tokens.emsp_store import IssuedTokens, updated_of
from shared.contracts.objects import SenderList
from shared.contracts.tokens import TokenBlock, TokenChanged, TokenExpire, TokenUpsert
from shared.modules.flat import sender_handlers
from shared.modules.memory import MemorySenderStore
from shared.modules.sender import apply_inputs
from shared.ocpi.v2_1_1.modules import TOKENS
from shared.ocpi.v2_1_1.tokens import Allowed, Token

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def token(uid: str = "012345678", at: datetime = T0, **fields: Any) -> Token:
    base = {"uid": uid, "type": "RFID", "auth_id": "DE8ACC12E46L89", "issuer": "TheNewMotion",
            "valid": True, "whitelist": "ALLOWED", "last_updated": at}  # fmt: skip
    return msgspec.convert({**base, **fields}, Token)


def stored(t: Token, invalid_as: Allowed | None = None) -> IssuedToken:
    return IssuedToken(token=t, invalid_as=invalid_as, changed=TOKEN_FIELDS)


def upsert(t: Token, event_id: str = "u") -> TokenUpsert:
    return TokenUpsert(event_id=event_id, token=t)


def test_a_new_token_is_stored_with_every_field_changed() -> None:
    """A new token: all Token fields are listed as changed."""
    after = apply_input(upsert(token()), None)
    assert after is not None and after.token == token() and after.invalid_as is None
    assert after.changed == TOKEN_FIELDS


def test_upsert_replaces_unless_older_or_identical() -> None:
    """Older changes nothing, identical changes nothing, equal-time different content replaces."""
    now = stored(token(at=T0 + timedelta(hours=1)))
    assert apply_input(upsert(token(at=T0)), now) is None
    assert apply_input(upsert(now.token), now) is None
    same_time = token(at=T0 + timedelta(hours=1), visual_number="DF000-2001-8999")
    after = apply_input(upsert(same_time), now)
    assert after is not None and after.changed == ("visual_number",)


def test_changed_names_only_the_fields_that_differ() -> None:
    """A newer token with another whitelist lists whitelist and last_updated."""
    later = token(at=T0 + timedelta(minutes=1), whitelist="NEVER")
    after = apply_input(upsert(later), stored(token()))
    assert after is not None and after.changed == ("whitelist", "last_updated")


def test_block_and_expire_invalidate_and_remember_why() -> None:
    """Block: valid false, last_updated=at, BLOCKED; expire likewise EXPIRED; unknown or older: nothing."""
    at = T0 + timedelta(minutes=5)
    blocked = apply_input(TokenBlock(event_id="b", token_uid="012345678", at=at), stored(token()))
    assert blocked is not None
    assert (blocked.token.valid, blocked.token.last_updated) == (False, at)
    assert blocked.invalid_as is Allowed.BLOCKED
    assert blocked.changed == ("valid", "last_updated")
    expired = apply_input(TokenExpire(event_id="e", token_uid="012345678", at=at), stored(token()))
    assert expired is not None and expired.invalid_as is Allowed.EXPIRED
    assert apply_input(TokenBlock(event_id="b", token_uid="X", at=at), None) is None
    older = TokenBlock(event_id="b", token_uid="012345678", at=T0 - timedelta(1))
    assert apply_input(older, stored(token())) is None


def test_the_first_reason_at_an_instant_stays_and_a_later_one_wins() -> None:
    """An expire at the instant of a block changes nothing; a later expire turns BLOCKED into EXPIRED."""
    blocked = stored(token(valid=False), Allowed.BLOCKED)
    assert apply_input(TokenExpire(event_id="e", token_uid="012345678", at=T0), blocked) is None
    later = apply_input(TokenExpire(event_id="e", token_uid="012345678", at=T0 + timedelta(1)), blocked)
    assert later is not None and later.invalid_as is Allowed.EXPIRED and later.changed == ("last_updated",)


def test_an_invalid_upsert_keeps_the_reason_and_a_valid_one_clears_it() -> None:
    """Reloading an expired card as invalid keeps EXPIRED; a new valid version is valid again."""
    expired = stored(token(valid=False), Allowed.EXPIRED)
    reloaded = apply_input(upsert(token(at=T0 + timedelta(1), valid=False)), expired)
    assert reloaded is not None and reloaded.invalid_as is Allowed.EXPIRED
    fresh = apply_input(upsert(token(at=T0 + timedelta(1), valid=False)), None)
    assert fresh is not None and fresh.invalid_as is Allowed.BLOCKED
    renewed = apply_input(upsert(token(at=T0 + timedelta(2))), expired)
    assert renewed is not None and renewed.invalid_as is None and renewed.changed == ("valid", "last_updated")


def store() -> IssuedTokens:
    return IssuedTokens(MemorySenderStore(updated_of))


async def test_inputs_of_one_batch_make_one_version_with_all_their_changes() -> None:
    """Upsert then block in one batch: one event whose changed is relative to the stored version."""
    tokens = store()
    (created,) = (await apply_inputs(tokens, RULES, [upsert(token(), "u1")])).events
    assert created == TokenChanged(token=token(), version=1, changed=list(TOKEN_FIELDS))
    renamed = token(at=T0 + timedelta(1), visual_number="V-1")
    block = TokenBlock(event_id="b1", token_uid="012345678", at=T0 + timedelta(2))
    (event,) = (await apply_inputs(tokens, RULES, [upsert(renamed, "u2"), block])).events
    assert isinstance(event, TokenChanged) and event.version == 2
    assert event.changed == ["visual_number", "valid", "last_updated"]
    # The next batch is relative to version 2 alone, and a replay announces version 2 again.
    record = await tokens.get("012345678")
    assert record is not None and not record.value.unsaved
    (again,) = (await apply_inputs(tokens, RULES, [block])).events
    assert again == event


async def test_the_list_holds_plain_tokens_with_date_filters() -> None:
    """The GET list answers 2.1.1 Tokens (no reason field), filtered by last_updated."""
    tokens = store()
    inputs = [upsert(token("A", T0), "a"), upsert(token("B", T0 + timedelta(hours=1)), "b")]
    await apply_inputs(tokens, RULES, [*inputs, TokenExpire(event_id="x", token_uid="A", at=T0)])
    handle = sender_handlers(TOKENS, tokens)[SenderList]
    reply = (await handle(SenderList(module="tokens", limit=10))).reply
    assert reply is not None and reply.total_count == 2
    listed = msgspec.json.decode(reply.data)
    assert [t["uid"] for t in listed] == ["A", "B"]
    assert set(listed[0]) == {"uid", "type", "auth_id", "issuer", "valid", "whitelist", "last_updated"}
    assert listed[0]["valid"] is False
    later = SenderList(module="tokens", limit=10, date_from=T0 + timedelta(minutes=30))
    reply = (await handle(later)).reply
    assert reply is not None and [t["uid"] for t in msgspec.json.decode(reply.data)] == ["B"]
