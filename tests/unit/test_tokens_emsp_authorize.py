"""Real-time authorization of our tokens (eMSP side): the pure decisions and the handler, in memory."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from services.tokens.emsp import RULES
from services.tokens.emsp_authorize import AskDelegate, authorize_handler
from services.tokens.emsp_decisions import InvalidDelegateAnswer, Policy, delegated_decision, narrow
from services.tokens.emsp_store import IssuedTokens, updated_of
from shared.contracts.base import RpcReply, error, ok
from shared.contracts.tokens import (
    AuthorizationDecided,
    Decider,
    DelegatedAuthorize,
    RealtimeAuthorize,
    TokenBlock,
    TokenExpire,
    TokenUpsert,
)
from shared.errors import NotEnoughInformation
from shared.messaging.rpc import RpcTimeout
from shared.modules.memory import MemorySenderStore
from shared.modules.sender import apply_inputs
from shared.ocpi.v2_1_1.tokens import Allowed, AuthorizationInfo, LocationReferences, TokenType
from tests.unit.test_tokens_emsp_rules import T0, token

DEFAULT = Policy()
HERE = LocationReferences(location_id="LOC1", evse_uids=["E1", "E2"], connector_ids=["1", "2"])


def refs(
    location_id: str = "LOC1", evses: list[str] | None = None, connectors: list[str] | None = None
) -> LocationReferences:
    return LocationReferences(location_id=location_id, evse_uids=evses, connector_ids=connectors)


def test_narrowing_keeps_only_what_was_asked() -> None:
    """EVSEs and connectors the request did not name are dropped; an answer naming none gets the request's."""
    assert narrow(refs(evses=["E2", "E9"], connectors=["1"]), HERE) == refs(evses=["E2"], connectors=["1"])
    assert narrow(refs(), HERE) == HERE
    assert narrow(None, HERE) == HERE
    assert narrow(refs(evses=["E9"]), HERE) == refs(evses=[], connectors=["1", "2"])
    # The request named the whole location: the authorizer may name some of its EVSEs.
    assert narrow(refs(evses=["E9"]), refs()) == refs(evses=["E9"])
    assert narrow(refs(), None) is None
    with pytest.raises(InvalidDelegateAnswer):
        narrow(refs("OTHER"), HERE)


def test_delegate_replies_become_decisions() -> None:
    """1000 with an AuthorizationInfo decides; 2002 is ours too; other statuses or data are unusable."""
    answer = ok(AuthorizationInfo(allowed=Allowed.NO_CREDIT))
    decision = delegated_decision(answer, HERE)
    assert (decision.allowed, decision.decider) == (Allowed.NO_CREDIT, Decider.DELEGATE)
    assert decision.info_object().location is None  # only ALLOWED names a location
    with pytest.raises(NotEnoughInformation):
        delegated_decision(error(2002, "where?"), None)
    with pytest.raises(InvalidDelegateAnswer):
        delegated_decision(error(3000, "down"), None)
    with pytest.raises(InvalidDelegateAnswer):
        delegated_decision(ok({"allowed": "MAYBE"}), None)


async def tokens() -> IssuedTokens:
    store = IssuedTokens(MemorySenderStore(updated_of))
    await apply_inputs(
        store,
        RULES,
        [
            TokenUpsert(event_id="1", token=token("OK")),
            TokenUpsert(event_id="2", token=token("GONE")),
            TokenUpsert(event_id="3", token=token("LOST")),
            TokenUpsert(event_id="4", token=token("APP", type="OTHER")),
            TokenExpire(event_id="5", token_uid="GONE", at=T0 + timedelta(1)),
            TokenBlock(event_id="6", token_uid="LOST", at=T0 + timedelta(1)),
        ],
    )
    return store


async def answer(
    uid: str, location: LocationReferences | None = None, policy: Policy = DEFAULT,
    ask: AskDelegate | None = None, token_type: TokenType = TokenType.RFID,
) -> tuple[RpcReply, list[AuthorizationDecided]]:  # fmt: skip
    handle = authorize_handler(await tokens(), policy, ask)
    msg = RealtimeAuthorize(token_uid=uid, token_type=token_type, location=location, partner_id="p1")
    outcome = await handle(msg)
    assert outcome.reply is not None
    events = [e for e in outcome.events if isinstance(e, AuthorizationDecided)]
    assert len(events) == len(outcome.events)
    return outcome.reply, events


def info(reply: RpcReply) -> AuthorizationInfo:
    assert reply.status_code == 1000, reply
    return msgspec.json.decode(reply.data, type=AuthorizationInfo)


async def test_unknown_token_or_other_type_is_404_2000_without_a_decision() -> None:
    """A token we did not issue, or asked with another type: HTTP 404, status 2000, no event."""
    for uid, kind in (("NOPE", TokenType.RFID), ("OK", TokenType.OTHER), ("APP", TokenType.RFID)):
        reply, events = await answer(uid, token_type=kind)
        assert (reply.http_status, reply.status_code, events) == (404, 2000, [])
    reply, _ = await answer("APP", token_type=TokenType.OTHER)
    assert info(reply).allowed is Allowed.ALLOWED


async def test_valid_token_without_delegate_is_allowed_where_asked() -> None:
    """ALLOWED, the request's references echoed; the event says LOCAL and names the CPO connection."""
    reply, (event,) = await answer("OK", HERE)
    assert info(reply) == AuthorizationInfo(allowed=Allowed.ALLOWED, location=HERE)
    assert (event.allowed, event.decider, event.location, event.partner_id) == (
        Allowed.ALLOWED, Decider.LOCAL, HERE, "p1"
    )  # fmt: skip
    reply, _ = await answer("OK")
    assert info(reply) == AuthorizationInfo(allowed=Allowed.ALLOWED)


async def test_invalid_tokens_answer_why_and_ask_nobody() -> None:
    """EXPIRED and BLOCKED from the stored reason, even without a location when one is required."""

    async def never(_: DelegatedAuthorize) -> RpcReply:
        raise AssertionError("the delegate must not be asked")

    policy = Policy(requires_location=True, delegate="authorizer")
    for uid, allowed in (("GONE", Allowed.EXPIRED), ("LOST", Allowed.BLOCKED)):
        reply, (event,) = await answer(uid, None, policy, never)
        assert info(reply) == AuthorizationInfo(allowed=allowed)
        assert event.decider is Decider.LOCAL


async def test_a_required_location_missing_is_2002() -> None:
    """TOKENS_AUTHORIZE_REQUIRES_LOCATION and no LocationReferences: 2002, no decision."""
    reply, events = await answer("OK", None, Policy(requires_location=True))
    assert (reply.status_code, events) == (2002, [])


async def test_the_delegate_decides_narrowed_or_falls_back() -> None:
    """The delegate's answer (narrowed), its 2002, and the fallback when it does not answer."""
    asked: list[DelegatedAuthorize] = []

    async def delegate(request: DelegatedAuthorize) -> RpcReply:
        asked.append(request)
        return ok(AuthorizationInfo(allowed=Allowed.ALLOWED, location=refs(evses=["E2", "E3"])))

    policy = Policy(delegate="authorizer", fallback=Allowed.ALLOWED)
    reply, (event,) = await answer("OK", HERE, policy, delegate)
    assert info(reply).location == refs(evses=["E2"], connectors=["1", "2"])
    assert event.decider is Decider.DELEGATE
    assert asked[0].token.uid == "OK" and asked[0].location == HERE and asked[0].partner_id == "p1"

    async def needs_location(_: DelegatedAuthorize) -> RpcReply:
        return error(2002, "which location?")

    reply, events = await answer("OK", None, policy, needs_location)
    assert (reply.status_code, events) == (2002, [])

    async def silent(_: DelegatedAuthorize) -> RpcReply:
        raise RpcTimeout("authorizer did not answer within 1.0s")

    reply, (event,) = await answer("OK", HERE, policy, silent)
    assert info(reply) == AuthorizationInfo(allowed=Allowed.ALLOWED, location=HERE)
    assert event.decider is Decider.FALLBACK and "did not answer" in event.reason
