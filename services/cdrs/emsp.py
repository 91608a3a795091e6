"""The eMSP side of the cdrs service: CDRs our drivers' CPOs POST to us, checked against the tariff.

services/cdrs/app.py composes it with the CPO side. What it wires from here (EmspSide): the
generic requests of the Receiver interface (POST, GET by the POST's Location), the operators'
disputes list, the outbox hook of the RPC server and the components to run (the announcer).

A CDR is stored once under (country_code, party_id, id) of the posting partner. Posted again with
the same content it is answered 1000 with the same Location (the CPO may retry a POST whose answer
it lost) and neither stored nor announced again; with other content it is refused with 2001 and
nothing changes (CDRs never change, mod_cdrs.md 1). The first POST is answered HTTP 201 without
data (mod_cdrs.md 2.2.2 defines only the Location header).

A verdict is taken once, when the CDR arrives, and stored with it; an UNCHECKED one (no tariff, a
lookup that did not answer, data the calculator cannot price) is not re-checked automatically: its
reason says why (e.g. "tariffs service unavailable"), so a later re-check can find those CDRs.
PartnerCdrReceived goes through the outbox and carries the verdict; PartnerCdrDisputed is published
beside it for the billing team but not re-sent by the outbox sweep after a crash: the disputes list
(CdrDisputesList, read from the stored verdicts) is the complete record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

import msgspec

from services.cdrs.emsp_check import LOOKUP_TIMEOUT, PartnerCopies, check_cdr, rpc_ask
from services.cdrs.emsp_rules import check_resent
from services.cdrs.emsp_store import ReceivedCdr, ReceivedCdrs, mark_of, mongo_received, partner_event
from shared.contracts.base import Message, Outcome, ok
from shared.contracts.cdrs import CdrDisputesList, PartnerCdrDisputed, PriceCheck
from shared.contracts.objects import ReceiverGet, ReceiverPost
from shared.contracts.partners import Party
from shared.errors import InvalidInput, OcpiFailure, failure_reply
from shared.messaging.rpc import RpcClient, RpcClientReadiness
from shared.modules.flat import object_id, unknown
from shared.modules.outbox import Announcer
from shared.modules.receiver import PartnerRecord, Rule, store_change
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.modules import CDRS
from shared.ocpi.v2_1_1.types import utc_now
from shared.rpc_service import RpcHandler
from shared.service import Component, ServiceContext


@dataclass(frozen=True)
class EmspSide:
    """What app.py wires of the eMSP side."""

    store: ReceivedCdrs
    # ReceiverPost and ReceiverGet of module "cdrs" (app.py routes them with object_requests).
    object_requests: dict[type[Message], RpcHandler]
    # CdrDisputesList, from the admin API.
    other_requests: dict[type[Message], RpcHandler]
    # The RPC server's on_published hook: clears the outbox marks of announced CDRs.
    published: Callable[[list[Message]], None]
    # The announcer first (it starts first, stops last), then the lookups' RPC client.
    components: list[Component]
    announcer: Announcer[ReceivedCdr]


def location_of(party: Party, cdr_id: str) -> str:
    """The CDR's path below the module's URL (the gateway prefixes it to make the Location header)."""
    return f"{party.country_code}/{party.party_id}/{quote(cdr_id, safe='')}"


def first_only(incoming: ReceivedCdr) -> Rule[ReceivedCdr]:
    """Store the CDR when absent; the same CDR again changes nothing; another content is refused."""

    def rule(stored: ReceivedCdr | None) -> ReceivedCdr | None:
        if stored is None:
            return incoming
        check_resent(stored.cdr, incoming.cdr)
        return None

    return rule


def events_of(record: PartnerRecord[ReceivedCdr]) -> list[Message]:
    """PartnerCdrReceived (through the outbox), and PartnerCdrDisputed when we dispute its price."""
    received = record.value
    events: list[Message] = [partner_event(record)]
    if received.verdict.check is PriceCheck.DISPUTED:
        events.append(
            PartnerCdrDisputed(
                country_code=record.party.country_code,
                party_id=record.party.party_id,
                cdr_id=record.key,
                currency=received.cdr.currency,
                verdict=received.verdict,
                partner_id=record.via,
            )
        )
    return events


def post_handler(store: ReceivedCdrs, copies: PartnerCopies, tolerance: Decimal) -> RpcHandler:
    """ReceiverPost: check the price of a new CDR, store it once, answer its Location."""

    async def handle(msg: ReceiverPost) -> Outcome:
        try:
            cdr = decode(msg.body, CDR)
        except (msgspec.DecodeError, RecursionError) as exc:
            return Outcome(reply=failure_reply(InvalidInput(f"Invalid CDR: {exc}")))
        party = msg.party
        headers = {"Location": location_of(party, cdr.id)}
        try:
            # Priced before the one read of the store: a new CDR (the common case) costs one read
            # and one write; a retry of one we hold is priced again for nothing, and answered 200.
            verdict = await check_cdr(cdr, party, copies, tolerance)
            received = ReceivedCdr(cdr=cdr, verdict=verdict, received_at=utc_now())
            _, after = await store_change(store, party, cdr.id, first_only(received), msg.partner_id)
        except OcpiFailure as exc:
            return Outcome(reply=failure_reply(exc))
        if after is None:  # the same CDR, stored by a POST running at the same time
            return Outcome(reply=ok(None, headers=headers))
        return Outcome(reply=ok(None, http_status=201, headers=headers), events=events_of(after))

    return handle


def get_handler(store: ReceivedCdrs) -> RpcHandler:
    """ReceiverGet: the CDR as posted, at the path the POST answered."""

    async def handle(msg: ReceiverGet) -> Outcome:
        try:
            key = object_id(CDRS, msg.path)
            record = await store.get(msg.party, key)
            if record is None:
                raise unknown(CDRS, msg.party, key)
        except OcpiFailure as exc:
            return Outcome(reply=failure_reply(exc))
        return Outcome(reply=ok(record.value.cdr))

    return handle


def disputes_handler(store: ReceivedCdrs) -> RpcHandler:
    """CdrDisputesList: the disputed CDRs, newest first."""

    async def handle(msg: CdrDisputesList) -> Outcome:
        return Outcome(reply=ok(await store.disputes(msg.limit)))

    return handle


async def build_emsp(ctx: ServiceContext, lookup_timeout: float = LOOKUP_TIMEOUT) -> EmspSide:
    """The store with its indexes, the RPC client of the lookups, the handlers and the announcer."""
    store = await mongo_received(ctx.db)
    # Started here, not as a component: the RPC server may take a request before components start.
    rpc = RpcClient(ctx.broker, lookup_timeout)
    await rpc.start()
    copies = PartnerCopies(rpc_ask(rpc, lookup_timeout))
    tolerance = Decimal(repr(ctx.settings.cdrs_price_tolerance))
    announcer: Announcer[ReceivedCdr] = Announcer(store, ctx.broker.publish_event, partner_event, mark_of)
    requests: dict[type[Message], RpcHandler] = {
        ReceiverPost: post_handler(store, copies, tolerance),
        ReceiverGet: get_handler(store),
    }
    return EmspSide(
        store=store,
        object_requests=requests,
        other_requests={CdrDisputesList: disputes_handler(store)},
        published=announcer.published,
        components=[announcer, RpcClientReadiness(rpc)],
        announcer=announcer,
    )
