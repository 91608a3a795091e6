"""Values the database cannot store never get in: bounded ints, the JSON depth check, query bounds,
future last_updated, and storage errors turned into verdicts (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import msgspec
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.errors import DocumentTooLarge

from services.gateway.module_calls import QUERY_INT_MAX, page_query, parse_body, refuse_future_last_updated
from services.locations.app import input_handler
from services.locations.handlers import dispatch
from services.locations.repository import Repository, in_memory_repository
from shared.contracts.base import Message, RpcReply
from shared.contracts.locations import LocationChanged, LocationUpsert, PartnerLocationImport
from shared.contracts.objects import SenderList
from shared.contracts.partners import Party
from shared.errors import OcpiFailure, answer_of
from shared.messaging.consumer import Delivery
from shared.modules.receiver import PartnerRecord
from shared.modules.sender import Removed
from shared.ocpi.v2_1_1.codec import MAX_DEPTH, TooDeep, check_depth, decode, encode, to_builtins
from shared.ocpi.v2_1_1.commands import ReserveNow
from shared.ocpi.v2_1_1.locations import Connector, ConnectorPatch, Location
from shared.ocpi.v2_1_1.status import OcpiResponse
from shared.ocpi.v2_1_1.tariffs import PriceComponent
from shared.ocpi.v2_1_1.types import INT32_MAX, INT64_MAX, utc_now
from tests.support.object_requests import receiver_put
from tests.unit.test_locations_handlers import connector, evse, location

BIG = 2**63  # one more than BSON can store


def connector_json(**overrides: Any) -> dict[str, Any]:
    return {**to_builtins(connector()), **overrides}


def nested(depth: int) -> Any:
    """An array nested `depth` levels deep."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def true_depth(value: Any) -> int:
    """How deeply arrays/objects nest in a Python value (the oracle of the depth check)."""
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    return 0


# ---- bounded ints -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["voltage", "amperage"])
@pytest.mark.parametrize("value", [BIG, 2**64, 10**30, INT32_MAX + 1, -1])
def test_connector_ints_out_of_range_are_refused_naming_the_field(field: str, value: int) -> None:
    """Voltage and amperage beyond 0..2^31-1 are a ValidationError naming the field, in PUT and PATCH."""
    body = encode(connector_json(**{field: value}))
    with pytest.raises(msgspec.ValidationError, match=f"`\\$.{field}`"):
        decode(body, Connector)
    with pytest.raises(msgspec.ValidationError, match=f"`\\$.{field}`"):
        decode(encode({field: value}), ConnectorPatch)


def test_connector_ints_at_the_bounds_are_accepted_and_storable() -> None:
    """0 and 2^31-1 decode, and BSON stores them."""
    for value in (0, INT32_MAX):
        decoded = decode(encode(connector_json(voltage=value, amperage=value)), Connector)
        assert decoded.voltage == value
        bson.encode(to_builtins(decoded, keep_datetimes=True))


@given(st.integers())
@settings(max_examples=200, deadline=None)
def test_every_accepted_int_is_storable(value: int) -> None:
    """Whatever int the models accept, BSON can encode: no accepted value raises OverflowError."""
    for type_, wrap in (
        (Connector, lambda v: connector_json(voltage=v)),
        (OcpiResponse[None], lambda v: {"status_code": v, "timestamp": "2024-05-01T12:00:00Z"}),
        (PriceComponent, lambda v: {"type": "TIME", "price": 1.5, "step_size": v}),
    ):
        try:
            decoded = decode(encode(wrap(value)), type_)  # type: ignore[arg-type]
        except msgspec.ValidationError:
            continue
        bson.encode(to_builtins(decoded, keep_datetimes=True))


def test_other_model_and_contract_ints_are_bounded() -> None:
    """Tariff step sizes, reservation ids, envelope status codes and message ints refuse 2^63."""
    with pytest.raises(msgspec.ValidationError, match="step_size"):
        decode(encode({"type": "TIME", "price": 1.5, "step_size": BIG}), PriceComponent)
    with pytest.raises(msgspec.ValidationError, match="reservation_id"):
        msgspec.convert({"reservation_id": BIG}, ReserveNow)
    with pytest.raises(msgspec.ValidationError, match="status_code"):
        decode(encode({"status_code": BIG, "timestamp": "2024-05-01T12:00:00Z"}), OcpiResponse[None])
    with pytest.raises(msgspec.ValidationError, match="offset"):
        body = encode({"type": "objects.sender.list", "module": "locations", "offset": BIG, "limit": 1})
        msgspec.json.decode(body, type=SenderList)
    changed = to_builtins(LocationChanged(location=location(), version=INT64_MAX, changes=[]))
    with pytest.raises(msgspec.ValidationError, match="version"):
        msgspec.convert({**changed, "version": BIG}, LocationChanged)
    with pytest.raises(msgspec.ValidationError, match="total_count"):
        msgspec.json.decode(b'{"total_count": 9223372036854775808}', type=RpcReply)


# ---- the depth check ----------------------------------------------------------------------------


def test_depth_at_the_limit_passes_and_one_more_is_too_deep() -> None:
    """MAX_DEPTH levels are read; MAX_DEPTH + 1 is TooDeep, which is a msgspec.DecodeError."""
    check_depth(json.dumps(nested(MAX_DEPTH)).encode())
    with pytest.raises(TooDeep) as caught:
        check_depth(json.dumps(nested(MAX_DEPTH + 1)).encode())
    assert isinstance(caught.value, msgspec.DecodeError)
    assert str(MAX_DEPTH) in str(caught.value)


def test_brackets_inside_strings_do_not_count() -> None:
    """Brackets in strings, escaped quotes and backslashes included, nest nothing."""
    for text in ("[" * 1000, '\\"' + "{" * 1000, "\\\\" + "[" * 1000, '\\\\\\"' + "[" * 1000):
        check_depth(json.dumps({"name": text, "other": [text, {"k": text}]}).encode())


def test_unbalanced_deep_json_is_too_deep() -> None:
    """Malformed JSON that opens 1000 levels is refused by the check, not left to msgspec's recursion."""
    for raw in (b"[" * 1000, b'{"a":' * 1000, b"[" * 40 + b"[" * 40 + b"]" * 40):
        with pytest.raises(TooDeep):
            check_depth(raw)


def test_deep_unknown_field_is_a_decode_error_not_a_recursion_error() -> None:
    """A 1000-deep unknown field in a Location is a DecodeError from decode (msgspec alone recurses)."""
    body = to_builtins(location())
    raw = encode(body)[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    with pytest.raises(RecursionError):
        msgspec.json.decode(raw, type=Location)
    with pytest.raises(TooDeep):
        decode(raw, Location)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=200,
)


@given(json_values, st.integers(min_value=0, max_value=12))
@settings(max_examples=300, deadline=None)
def test_depth_check_agrees_with_the_true_depth(value: Any, limit: int) -> None:
    """For any JSON document the check refuses exactly those nested deeper than the limit."""
    raw = json.dumps(value).encode()
    if true_depth(value) > limit:
        with pytest.raises(TooDeep):
            check_depth(raw, limit)
    else:
        check_depth(raw, limit)


# ---- the gateway's edge -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["offset=9223372036854775808", f"limit={QUERY_INT_MAX + 1}", "offset=-1"])
def test_out_of_range_query_ints_are_2001_naming_the_parameter(query: str) -> None:
    """offset and limit beyond 0..2^31-1 are refused with 400/2001 naming the parameter."""
    request = make_mocked_request("GET", f"/ocpi/cpo/2.1.1/locations?{query}")
    with pytest.raises(OcpiFailure) as caught:
        page_query(request, 100)
    assert answer_of(caught.value) == (400, 2001)
    assert query.split("=")[0] in caught.value.message


def test_largest_query_ints_pass() -> None:
    """offset 2^31-1 is passed on; a large limit is lowered to the cap as before."""
    request = make_mocked_request("GET", f"/x?offset={QUERY_INT_MAX}&limit={QUERY_INT_MAX}")
    query = page_query(request, 100)
    assert (query.offset, query.limit) == (QUERY_INT_MAX, 100)


def test_parse_body_turns_deep_json_into_2001() -> None:
    """A body with 1000-deep nesting is a 400/2001, not a RecursionError (a 500)."""
    raw = encode(to_builtins(location()))[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    with pytest.raises(OcpiFailure) as caught:
        parse_body(raw, Location, "Location")
    assert answer_of(caught.value) == (400, 2001)
    assert "nested deeper" in caught.value.message


def test_future_last_updated_is_refused_naming_the_field() -> None:
    """A last_updated more than the tolerance ahead, at any depth, is a 2001 with its JSON path."""
    later = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    deep = location(evses=[evse(), msgspec.structs.replace(evse("E2"), last_updated=later)])
    with pytest.raises(OcpiFailure) as caught:
        refuse_future_last_updated(deep)
    assert answer_of(caught.value)[1] == 2001
    assert "`$.evses[1].last_updated`" in caught.value.message and "9999-12-31" in caught.value.message
    with pytest.raises(OcpiFailure, match=r"`\$.last_updated`"):
        refuse_future_last_updated(ConnectorPatch(last_updated=later))


def test_last_updated_within_the_tolerance_passes() -> None:
    """Now plus a minute (clock skew) and the past are accepted; so is a patch without last_updated."""
    refuse_future_last_updated(location(at=utc_now() + timedelta(minutes=1)))
    refuse_future_last_updated(location(at=datetime(2000, 1, 1, tzinfo=UTC)))
    refuse_future_last_updated(ConnectorPatch(voltage=230))


# ---- the locations service: storage errors become verdicts --------------------------------------


def bson_checked(repo: Repository) -> Repository:
    """The in-memory repository, encoding each partner location with BSON first, as MongoDB would."""
    save = repo.partners.save

    async def checked_save(
        party: Party, key: str, state: Location | Removed[Location], version: int | None, via: str = ""
    ) -> PartnerRecord[Location] | None:
        loc = state.last if isinstance(state, Removed) else state
        if loc.name == "too large":
            raise DocumentTooLarge("BSON document too large")
        bson.encode(to_builtins(loc, keep_datetimes=True))
        return await save(party, key, state, version, via)

    repo.partners.save = checked_save  # type: ignore[method-assign]
    return repo


def unstorable_location(lid: str = "L1") -> Location:
    """A location carrying 2^63 (built by constructor, which does not validate: a producer bug)."""
    bad = msgspec.structs.replace(connector(), voltage=BIG)
    return location(lid, evses=[msgspec.structs.replace(evse(), connectors=[bad])])


async def test_rpc_put_that_cannot_be_stored_is_a_2001_reply() -> None:
    """A receiver PUT whose value BSON refuses gets an OCPI 2001 reply instead of an exception."""
    repo = bson_checked(in_memory_repository())
    message = receiver_put("NL", "CPA", "L1", location=unstorable_location())
    outcome = await dispatch(message, repo)
    # The body travels as JSON now: its bounds refuse 2^63 at decode, naming the field.
    assert outcome.reply is not None and outcome.reply.status_code == 2001
    assert "voltage" in (outcome.reply.status_message or "")
    assert outcome.events == []
    large = msgspec.structs.replace(location(), name="too large")
    outcome = await dispatch(receiver_put("NL", "CPA", "L1", location=large), repo)
    assert outcome.reply is not None and outcome.reply.status_code == 2001
    assert "DocumentTooLarge" in (outcome.reply.status_message or "")
    assert outcome.events == []


async def test_sender_list_with_an_unstorable_offset_is_a_2001_reply() -> None:
    """A SenderList built past its bounds (offset 2^63) whose query fails to encode is a 2001."""
    repo = in_memory_repository()

    async def page(window: Any) -> list[tuple[int, Location]]:
        raise OverflowError("MongoDB can only handle up to 8-byte ints")

    repo.own.page = page  # type: ignore[method-assign]
    outcome = await dispatch(SenderList(module="locations", offset=BIG, limit=10), repo)
    assert outcome.reply is not None and outcome.reply.status_code == 2001


class _Broker:
    def __init__(self) -> None:
        self.events: list[Message] = []

    async def publish_event(self, event: Message) -> None:
        self.events.append(event)


class _Announcer:
    def published(self, events: Sequence[Message]) -> None:
        pass


def delivery(message: Message) -> Delivery:
    body = msgspec.json.encode(message)
    return Delivery(body=body, routing_key="x", headers={}, message_id=None, redelivered=False)


async def test_input_handler_dead_letters_an_unstorable_import_and_stores_the_rest() -> None:
    """An import the database refuses (too large) is dead-lettered with a reason; the good one is stored."""
    repo = in_memory_repository()
    save = repo.partners.save

    async def too_large(
        party: Party, key: str, state: Location | Removed[Location], version: int | None, via: str = ""
    ) -> PartnerRecord[Location] | None:
        if key == "BAD":
            raise DocumentTooLarge("BSON document too large")
        return await save(party, key, state, version, via)

    repo.partners.save = too_large  # type: ignore[method-assign]
    handler = input_handler(repo, _Broker().publish_event, _Announcer())  # type: ignore[arg-type]
    bad = PartnerLocationImport(country_code="NL", party_id="CPA", location=location("BAD"))
    good = PartnerLocationImport(country_code="NL", party_id="CPA", location=location("GOOD"))
    verdicts = await handler([delivery(bad), delivery(good)])
    assert verdicts[0] is not None and "cannot be stored" in verdicts[0] and verdicts[1] is None
    assert await repo.partners.get(Party("NL", "CPA"), "GOOD") is not None
    assert await repo.partners.get(Party("NL", "CPA"), "BAD") is None


async def test_input_handler_refuses_out_of_range_ints_at_decode() -> None:
    """An import carrying 2^63 in its JSON is dead-lettered at decode time, naming the field."""
    handler = input_handler(in_memory_repository(), _Broker().publish_event, _Announcer())  # type: ignore[arg-type]
    raw = msgspec.json.encode(PartnerLocationImport(country_code="NL", party_id="CPA", location=location()))
    raw = raw.replace(b'"voltage":230', b'"voltage":9223372036854775808')
    verdicts = await handler([Delivery(raw, "k", {}, None, False)])
    assert verdicts[0] is not None and "voltage" in verdicts[0]


async def test_input_handler_attributes_a_storage_error_only_to_a_lone_input() -> None:
    """A storage error of our own inputs is a verdict for a batch of one, and raised for a bigger batch."""
    repo = in_memory_repository()

    async def save_many(writes: Any) -> dict[str, int]:
        raise OverflowError("MongoDB can only handle up to 8-byte ints")

    repo.own.save_many = save_many  # type: ignore[method-assign]
    handler = input_handler(repo, _Broker().publish_event, _Announcer())  # type: ignore[arg-type]
    upserts = [LocationUpsert(event_id=f"u{i}", location=location(f"L{i}")) for i in (1, 2)]
    verdicts = await handler([delivery(upserts[0])])
    assert verdicts[0] is not None and "cannot be stored" in verdicts[0]
    with pytest.raises(OverflowError):
        await handler([delivery(upserts[0]), delivery(upserts[1])])
