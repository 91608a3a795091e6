"""Unit tests of the dispatcher's tokens work: the push plan (PATCH or PUT, fallback, priority), the
pulled token's import message, and how an eMSP's authorize answer becomes our RPC reply."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from services.dispatcher.authorize import authorize_url, interpret, tokens_endpoint
from services.dispatcher.handlers import coalesce
from services.dispatcher.ocpi_client import Reply
from services.dispatcher.partners import Partner
from services.dispatcher.pull import import_message, object_id
from services.dispatcher.push_plans import MODULE_PLANS, PUSH_PLANS, URGENT, Snapshot
from shared.contracts.partners import Party, SyncState
from shared.contracts.tokens import PartnerAuthorize, PartnerTokenImport, TokenChanged
from shared.ocpi.v2_1_1.tokens import Token, TokenType, WhitelistType
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Role

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
PLAN = MODULE_PLANS[ModuleID.TOKENS]
ALL_FIELDS = ["uid", "type", "auth_id", "issuer", "valid", "whitelist", "last_updated"]


def token(uid: str = "012345678", valid: bool = True, issuer: str = "TheNewMotion") -> Token:
    return Token(
        uid=uid,
        type=TokenType.RFID,
        auth_id="DE8ACC12E46L89",
        issuer=issuer,
        valid=valid,
        whitelist=WhitelistType.ALLOWED,
        last_updated=T0,
    )


def snapshot(changed: list[str], valid: bool = True, version: int = 2) -> Snapshot:
    event = TokenChanged(token=token(valid=valid), version=version, changed=changed)
    return PUSH_PLANS[TokenChanged].snapshot(event, "req-1")


def test_a_token_change_is_a_snapshot_keyed_by_uid_with_the_changed_fields_as_parts() -> None:
    """TokenChanged -> module TOKENS, key = uid, state = the token, one part per changed field."""
    snap = snapshot(["valid", "last_updated"])
    assert (snap.module, snap.key, snap.version, snap.request_id) == (
        ModuleID.TOKENS,
        "012345678",
        2,
        "req-1",
    )
    assert snap.state is not None and snap.state["auth_id"] == "DE8ACC12E46L89"
    assert snap.parts == [{"field": "valid"}, {"field": "last_updated"}]


def test_only_status_fields_changed_is_one_patch_of_those_fields_from_the_newest_state() -> None:
    """valid/whitelist/last_updated only: PATCH {uid} with exactly those fields, partial."""
    snap = snapshot(["valid", "last_updated"], valid=False)
    (call,) = PLAN.calls(snap.key, snap.state, snap.parts, 10)
    assert (call.method, call.path, call.partial) == ("PATCH", ("012345678",), True)
    assert call.body == {"valid": False, "last_updated": "2024-05-01T12:00:00Z"}
    assert PLAN.pushed([call], snap.parts) == snap.parts


def test_any_other_field_changed_puts_the_whole_token() -> None:
    """A change of issuer (or a new token: every field) is one PUT of the whole token."""
    for changed in (["issuer", "last_updated"], ALL_FIELDS, []):
        snap = snapshot(changed)
        (call,) = PLAN.calls(snap.key, snap.state, snap.parts, 10)
        assert (call.method, call.path, call.partial, call.body) == ("PUT", ("012345678",), False, snap.state)
        assert PLAN.pushed([call], snap.parts) is None


def test_a_patch_the_cpo_cannot_place_falls_back_to_a_put_of_the_whole_token() -> None:
    """The plan's fallback (after 'unknown object') is the PUT of the whole token."""
    snap = snapshot(["whitelist"])
    assert snap.state is not None
    fallback = PLAN.fallback(snap.state)
    assert fallback is not None
    assert (fallback.method, fallback.path, fallback.body, fallback.partial) == (
        "PUT",
        ("012345678",),
        snap.state,
        False,
    )


def test_a_put_covers_every_part_and_a_patch_covers_its_own() -> None:
    """What a delivered push carried: a PUT (None) covers all, a PATCH only the fields it had."""
    valid, issuer = {"field": "valid"}, {"field": "issuer"}
    assert PLAN.covers(None, issuer)
    assert PLAN.covers([valid], valid)
    assert not PLAN.covers([valid], issuer)


def test_an_invalidated_card_is_urgent_and_nothing_else_is() -> None:
    """Priority: newest state valid=false and 'valid' among the parts; else the usual 0."""
    urgent = snapshot(["valid", "last_updated"], valid=False)
    assert PLAN.priority(urgent.state, urgent.parts) == URGENT
    renamed_while_blocked = snapshot(["issuer"], valid=False)
    assert PLAN.priority(renamed_while_blocked.state, renamed_while_blocked.parts) == 0
    unblocked = snapshot(["valid"], valid=True)
    assert PLAN.priority(unblocked.state, unblocked.parts) == 0
    for module in (ModuleID.LOCATIONS, ModuleID.TARIFFS):
        assert MODULE_PLANS[module].priority({"valid": False}, [{"field": "valid"}]) == 0


def test_coalescing_a_block_with_a_later_change_keeps_it_urgent() -> None:
    """Two events of one token in a batch: newest state, union of parts, so the block stays urgent."""
    (merged,) = coalesce([snapshot(["valid"], valid=False, version=2), snapshot(["whitelist"], False, 3)])
    assert merged.version == 3 and merged.parts == [{"field": "valid"}, {"field": "whitelist"}]
    assert PLAN.priority(merged.state, merged.parts) == URGENT
    (call,) = PLAN.calls(merged.key, merged.state, merged.parts, 10)
    assert call.method == "PATCH" and call.body == {"valid": False, "whitelist": "ALLOWED"}


def test_a_pulled_token_is_imported_with_the_partner_it_came_from() -> None:
    """PartnerTokenImport carries partner_id; its message id uses the token's uid."""
    message = import_message(ModuleID.TOKENS, Party("DE", "EMP"), token(), "emsp-1")
    assert isinstance(message, PartnerTokenImport)
    assert (message.country_code, message.party_id, message.partner_id) == ("DE", "EMP", "emsp-1")
    assert object_id(ModuleID.TOKENS, message.token) == "012345678"


def emsp(endpoints: dict[str, str], role: Role = Role.EMSP) -> Partner:
    return Partner(
        partner_id="emsp-1",
        role=role,
        parties=(Party("DE", "EMP"),),
        versions_url="http://emsp/versions",
        endpoints=endpoints,
        token="secret",
        sync_state=SyncState.IN_SYNC,
        reachable=True,
        probe_interval=0.0,
    )


def test_only_a_registered_emsp_with_a_tokens_endpoint_is_asked() -> None:
    """Unknown partner, a CPO, or no tokens endpoint: no call, and a message that says which."""
    tokens = {"tokens": "http://emsp/ocpi/emsp/2.1.1/tokens/"}
    assert tokens_endpoint(emsp(tokens), "emsp-1") == ("http://emsp/ocpi/emsp/2.1.1/tokens/", "")
    assert tokens_endpoint(None, "x")[1] == "partner x is not registered"
    assert tokens_endpoint(emsp(tokens, Role.CPO), "emsp-1")[1] == "partner emsp-1 is not an eMSP"
    assert tokens_endpoint(emsp({}), "emsp-1")[1] == "partner emsp-1 has no tokens endpoint"
    request = PartnerAuthorize(partner_id="emsp-1", token_uid="a/b c", token_type=TokenType.OTHER)
    assert (
        authorize_url("http://emsp/tokens/", request) == "http://emsp/tokens/a%2Fb%20c/authorize?type=OTHER"
    )


def reply(
    http: int | None, status: int | None = 1000, data: bytes = b"null", failure: str | None = None
) -> Reply:
    return Reply(http, status, "msg", "rid", data, failure=failure)


@pytest.mark.parametrize(
    ("answer", "status_code", "http_status", "outcome"),
    [
        (reply(200, data=b'{"allowed": "ALLOWED"}'), 1000, 200, "ALLOWED"),
        (
            reply(200, data=b'{"allowed": "BLOCKED", "info": {"language": "en", "text": "lost"}}'),
            1000,
            200,
            "BLOCKED",
        ),
        (reply(404, 2000), 2000, 404, "unknown_token"),
        (reply(None, None, failure="timeout"), 3001, 504, "timeout"),
        (reply(None, None, failure="unreachable"), 3001, 502, "unreachable"),
        (reply(500, None), 3001, 502, "error"),
        (reply(200, 2002), 3001, 502, "error"),
        (reply(200, data=b'{"allowed": "MAYBE"}'), 3001, 502, "invalid"),
        (reply(200, data=b"null"), 3001, 502, "invalid"),
    ],
)
def test_the_emsps_answer_becomes_the_reply_of_the_contract(
    answer: Reply, status_code: int, http_status: int, outcome: str
) -> None:
    """1000 + AuthorizationInfo; 404 for an unknown token; 3001 (502/504) otherwise, invalid data too."""
    ours, word = interpret(answer, 1.5, "012345678")
    assert (ours.status_code, ours.http_status, word) == (status_code, http_status, outcome)
    if status_code == 1000:
        assert msgspec.json.decode(bytes(ours.data))["allowed"] == outcome
