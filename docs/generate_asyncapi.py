"""Write docs/asyncapi.yaml from the message catalogue in shared/contracts.

Run from the repository root after changing a message: `python -m docs.generate_asyncapi`.
`tests/unit/test_docs_catalogue.py` fails when the committed document is not what this script writes.

The payload schemas come from the msgspec Structs themselves (`msgspec.json.schema_components`), so
the document cannot drift from what the services decode. The examples are built from the same Structs
and encoded with msgspec, so they are valid by construction. The YAML is written by a small emitter
(docs/yaml_text.py: the product does not depend on a YAML library).
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from docs.yaml_text import generator_main, yaml_text
from services.cdrs.cpo_rules import cdr_of
from services.cdrs.emsp_check import ours_of
from services.cdrs.emsp_rules import theirs_of, verdict_of
from services.sessions.cpo_rules import SessionInputs, Start, StartFacts, session_changed
from shared.contracts.base import Message, routing_key
from shared.contracts.catalogue import (
    BILLING_EVENTS,
    DECISION_EVENTS,
    INPUTS,
    PARTNER_EVENTS,
    PARTNER_OBJECT_EVENTS,
    PUSHED,
    REQUESTS,
    flat,
)
from shared.contracts.cdrs import (
    CdrCreated,
    CdrDelivered,
    CdrDispute,
    CdrDisputesList,
    CdrVerdict,
    PartnerCdrDisputed,
    PartnerCdrReceived,
    TariffSource,
)
from shared.contracts.locations import (
    ChangeScope,
    ConnectorRemove,
    ConnectorUpsert,
    EvseRemove,
    EvseStatusSet,
    EvseUpsert,
    LocationChange,
    LocationChanged,
    LocationRemove,
    LocationUpsert,
    PartnerLocationChanged,
)
from shared.contracts.partners import (
    PartnerRegistered,
    PartnerSyncStateChanged,
    PartnerToken,
    PartnerTokenGet,
    PartnerUnregistered,
    Party,
    SyncState,
)
from shared.contracts.sessions import (
    ChargingSession,
    PartnerSessionChanged,
    SessionChanged,
    SessionEnded,
    SessionMeter,
    SessionStart,
    SessionStop,
)
from shared.contracts.tariffs import (
    PartnerTariffChanged,
    PartnerTariffRemoved,
    TariffChanged,
    TariffRemove,
    TariffRemoved,
    TariffUpsert,
)
from shared.contracts.tokens import (
    AuthorizationDecided,
    ChargerAuthorization,
    ChargerAuthorize,
    Decider,
    DelegatedAuthorize,
    PartnerAuthorize,
    PartnerTokenChanged,
    RealtimeAuthorize,
    TokenBlock,
    TokenChanged,
    TokenExpire,
    TokenHolder,
    TokenLookup,
    TokenUpsert,
)
from shared.messaging.headers import DEADLINE, ERROR, ORIGINAL_ROUTING_KEY, REQUEST_ID
from shared.messaging.topology import DELIVERY_LIMIT, Topology
from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.locations import (
    EVSE,
    Capability,
    Connector,
    ConnectorFormat,
    ConnectorType,
    GeoLocation,
    Location,
    LocationType,
    PowerType,
    Status,
)
from shared.ocpi.v2_1_1.modules import MODULES
from shared.ocpi.v2_1_1.tariffs import PriceComponent, Tariff, TariffDimensionType, TariffElement
from shared.ocpi.v2_1_1.tokens import (
    Allowed,
    AuthorizationInfo,
    LocationReferences,
    Token,
    TokenType,
    WhitelistType,
)
from shared.pricing import price_session
from shared.settings import Role

OUTPUT = Path(__file__).resolve().parent / "asyncapi.yaml"
# The namespace the document shows; every name starts with the deployment's OCPI_NAMESPACE instead.
NAMESPACE = "ocpi"
CATALOGUE_VERSION = "1"
AMQP_BINDING_VERSION = "0.2.0"

# What the company's systems publish on the internal exchange, and which service consumes each.
INPUT_TYPES: tuple[type[Message], ...] = flat(INPUTS)
CONSUMED_BY: dict[type[Message], str] = {
    kind: MODULES[module_id].service for module_id, kinds in INPUTS.items() for kind in kinds
}
# Domain events on the events exchange that internal consumers may bind to.
EVENT_TYPES: tuple[type[Message], ...] = (
    *flat(PUSHED),
    *flat(PARTNER_OBJECT_EVENTS),
    *BILLING_EVENTS,
    *DECISION_EVENTS,
    *PARTNER_EVENTS,
)
# Requests (RPC) on the rpc exchange, with their replies.
REQUEST_TYPES: tuple[type[Message], ...] = REQUESTS
# The structs that travel as the `data` of the requests' replies (documented beside them).
REPLY_TYPES: tuple[type[Any], ...] = (
    AuthorizationInfo,
    ChargerAuthorization,
    TokenHolder,
    CdrDispute,
    PartnerToken,
)

EVENT_NOTES: dict[type[Message], str] = {
    LocationChanged: (
        "Published by the locations service after every committed change of one of our locations "
        "(CPO side), with the full location after the change and its version (a counter per "
        "location, +1 per stored change). A redelivered input announces the current state again, "
        "so consumers must tolerate repeats: drop versions they have already seen."
    ),
    PartnerLocationChanged: (
        "Published by the locations service after a partner's location changed in our copy "
        "(eMSP side): a PUT or PATCH from the partner, or a location pulled during a re-sync."
    ),
    TariffChanged: (
        "Published by the tariffs service after every committed change of one of our tariffs (CPO "
        "side), with the full tariff and its version (a counter per tariff, +1 per stored change, "
        "removals included). Consumers drop versions they have already seen."
    ),
    TariffRemoved: (
        "Published by the tariffs service when one of our tariffs was removed, with the version of "
        "the removal; a later TariffChanged of the same id has a higher version."
    ),
    PartnerTariffChanged: (
        "Published by the tariffs service after a partner's tariff changed in our copy (eMSP "
        "side): a PUT or PATCH from the partner, or a tariff pulled during a re-sync."
    ),
    PartnerTariffRemoved: "Published by the tariffs service after a partner deleted one of its tariffs.",
    TokenChanged: (
        "Published by the tokens service after every stored change of one of our tokens (eMSP side), "
        "with the plain 2.1.1 Token and its version (+1 per stored change). `changed` names the "
        "Token fields that differ from the previous version (every field for a new token): the "
        "dispatcher PATCHes a CPO holding the previous version when only `valid`, `whitelist` and "
        "`last_updated` changed, and PUTs the token otherwise. A redelivered input announces the "
        "same version again; consumers drop versions they have seen."
    ),
    PartnerTokenChanged: (
        "Published by the tokens service after an eMSP partner's token changed in our copy (CPO "
        "side): a PUT or PATCH from the partner, or a token pulled during a re-sync; `partner_id` "
        "is the connection it came through. Outbox rules as for partner locations: an event can "
        "come twice, never goes missing."
    ),
    AuthorizationDecided: (
        "Published by the tokens service for every authorization answered with an `allowed`: a CPO "
        "partner's real-time request about one of our tokens (eMSP side; `partner_id` is the CPO's "
        "connection) or a charger's request (CPO side). `decider` says who decided (LOCAL: the "
        "token as held; DELEGATE: the company's authorizer; REALTIME: the token's eMSP; FALLBACK: "
        "nobody answered in time) and `reason` why. Requests answered with an error (unknown "
        "token, 2002) decide nothing and publish nothing."
    ),
    PartnerRegistered: (
        "Published by the gateway when a credentials handshake with a partner completes or is "
        "updated: the partner's id, parties, role and endpoints. It carries no token: the dispatcher "
        "asks the gateway for it (PartnerTokenGet) and gets it sealed."
    ),
    PartnerUnregistered: "Published by the gateway when a partner's credentials are deleted.",
    PartnerSyncStateChanged: (
        "Published by the dispatcher when pushes to a partner start failing (RETRYING), are given "
        "up (OUT_OF_SYNC, the partner's pushes are parked) or reach it again (IN_SYNC)."
    ),
    SessionChanged: (
        "Published by the sessions service when one of our sessions started, changed or ended (CPO "
        "side): the 2.1.1 Session as partners see it, its version (+1 per stored change), `owner` "
        "(the token's party) and `partner_id` (the connection that serves it; both null when no "
        "partner gave us the token: the session goes to nobody), and `changed`, the Session fields "
        "that differ from the previous announcement (every field for a new session). A start and a "
        "stop are announced at once, meter values at most once per SESSIONS_PUSH_INTERVAL_SECONDS "
        "of the meter's own clock: the versions stored in between are not announced (`version` "
        "skips them) and the next announcement names every field they changed. The dispatcher "
        "PUTs or PATCHes it to the owner's eMSP only. Consumers drop versions they have seen."
    ),
    PartnerSessionChanged: (
        "Published by the sessions service after a CPO partner's session of one of our drivers "
        "changed in our copy (eMSP side): a PUT or PATCH from the partner; `partner_id` is the "
        "connection it came through. Outbox rules as for partner locations: an event can come "
        "twice, never goes missing."
    ),
    CdrCreated: (
        "Published by the cdrs service when it made the CDR of one of our ended sessions (CPO "
        "side): the CDR, always version 1 (a CDR never changes), and `owner` and `partner_id` as "
        "in the session (null: nobody gets it). The dispatcher POSTs it to that connection's cdrs "
        "endpoint, exactly once in effect (services/dispatcher/README.md). A redelivered "
        "SessionEnded announces the same CDR again; consumers keep the first."
    ),
    PartnerCdrReceived: (
        "Published by the cdrs service once a CPO partner's CDR of one of our drivers is stored "
        "(eMSP side), with our `verdict` on its price: AGREED (our total within "
        "CDRS_PRICE_TOLERANCE of theirs), DISPUTED (beyond it, or a tariff in another currency) or "
        "UNCHECKED (no tariff to price it with, a lookup that did not answer, a CDR the calculator "
        "cannot price; `reason` says which). A CDR is stored once: a repeated POST publishes "
        "nothing. Outbox rules as for partner locations: an event can come twice, never goes "
        "missing."
    ),
    SessionEnded: (
        "Published by the sessions service beside the last SessionChanged when one of our sessions "
        "completed (CPO side): the stored ChargingSession (the Session, its owner and connection, "
        "the tariff in force at its start, the location's time zone and the meter readings). The "
        "cdrs service makes the session's CDR from it, once, however often it comes (again when an "
        "input of the ended session is redelivered)."
    ),
    CdrDelivered: (
        "Published by the dispatcher after an eMSP took a CDR we POSTed (HTTP 2xx, status 1000): "
        '`location` is the eMSP\'s `Location` header ("" when it sent none, or one over 2,048 '
        "characters). The cdrs service stores it with the CDR. At least once: when the dispatcher "
        "dies between the eMSP's answer and recording it, the CDR is POSTed and announced once more."
    ),
    PartnerCdrDisputed: (
        "Published by the cdrs service beside PartnerCdrReceived when our verdict on a received CDR "
        "is DISPUTED (eMSP side), for the billing team: the CDR's key and currency and the verdict "
        "(`theirs`, `ours`, `difference` = ours - theirs, `reason`). Not published again after a "
        "crash: the disputes list (`ocpi-admin cdrs disputes`) is the complete record."
    ),
}

INPUT_NOTES: dict[type[Message], str] = {
    LocationUpsert: (
        "Creates the location or replaces it as a whole. Ignored when `location.last_updated` is "
        "older than the stored location's, or when nothing changed."
    ),
    LocationRemove: (
        "Sets every EVSE of the location to REMOVED with `last_updated` = `at` (OCPI 2.1.1 has no "
        "delete). Changes nothing when the location is unknown, when `at` is older than the "
        "location's `last_updated`, or when every EVSE is REMOVED already."
    ),
    EvseStatusSet: (
        "`at` becomes the EVSE's `last_updated`; a status older than the EVSE's `last_updated` "
        "or equal to the current status changes nothing. Unknown location or EVSE: dead-lettered."
    ),
    EvseUpsert: (
        "Adds the EVSE to the location or replaces it; ignored when older than the stored EVSE. "
        "Unknown location: dead-lettered."
    ),
    EvseRemove: (
        "Sets the EVSE's status to REMOVED with `last_updated` = `at`. Changes nothing when the "
        "location or EVSE is unknown, the EVSE is REMOVED already, or `at` is older than the EVSE's "
        "`last_updated`."
    ),
    ConnectorUpsert: (
        "Adds the connector to the EVSE or replaces it; ignored when older than the stored "
        "connector. Unknown location or EVSE: dead-lettered."
    ),
    TariffUpsert: (
        "Creates the tariff or replaces it as a whole. Ignored when `tariff.last_updated` is older "
        "than the stored tariff's (or its removal's), or when nothing changed."
    ),
    TariffRemove: (
        "Removes the tariff: it leaves our tariffs list and every eMSP partner gets a DELETE. "
        "Changes nothing when the tariff is unknown or removed already, or when `at` is older than "
        "its `last_updated`."
    ),
    TokenUpsert: (
        "Issues the token or replaces it as a whole. Ignored when `token.last_updated` is older "
        "than the stored token's, or when nothing changed. An invalid token keeps the stored "
        "reason (EXPIRED stays EXPIRED), else real-time authorizations answer BLOCKED."
    ),
    TokenBlock: (
        "Sets `valid` to false with `last_updated` = `at`; real-time authorizations answer BLOCKED. "
        "Changes nothing when the token is unknown or `at` is older than its `last_updated`."
    ),
    TokenExpire: (
        "Sets `valid` to false with `last_updated` = `at`; real-time authorizations answer EXPIRED. "
        "Changes nothing when the token is unknown or `at` is older than its `last_updated`."
    ),
    ConnectorRemove: (
        "Removes the connector from the EVSE. Removing the last connector of an EVSE is "
        "dead-lettered (remove the EVSE instead). Changes nothing when the location, EVSE or "
        "connector is unknown or `at` is older than the connector's `last_updated`."
    ),
    SessionStart: (
        "Starts the session. The sessions service reads the location (the Session keeps only this "
        "EVSE and connector), the connector's tariff and the token's holder from the locations, "
        "tariffs and tokens services, stores the session ACTIVE at 0 kWh, priced with that tariff "
        "(a FLAT fee shows at once), and announces it. A token no partner gave us: stored, sent to "
        "nobody. No tariff at the connector, or an unknown one: no `total_cost`, currency "
        "SESSIONS_CURRENCY. Dead-lettered: an unknown location, EVSE or connector. A second start of "
        "the same `session_id` changes nothing."
    ),
    SessionMeter: (
        "`kwh` is cumulative since the start. Each reading begins a charging period that the next "
        "reading (or the stop) ends: ENERGY = the kWh between them, TIME = the hours between them "
        "(PARKING_TIME when the reading that begins it has `charging` false); the session is priced "
        "again. Readings are kept in time order whatever order they arrive in; one at the instant of "
        "a stored reading replaces it. Dead-lettered: a session with no stored start, a reading "
        "before the start, a meter going backwards. Changes nothing once the session ended. "
        "Announced at most once per SESSIONS_PUSH_INTERVAL_SECONDS of the readings' time; the ones "
        "in between are stored without an announcement."
    ),
    SessionStop: (
        "`kwh` is the final reading: it closes the last period (readings after `at` are dropped), "
        "the session becomes COMPLETED with `end_datetime` = `at`, is priced a last time and "
        "announced at once, with a SessionEnded from which the cdrs service makes its CDR. "
        "Dead-lettered: a session with no stored start, a stop before the start, a final reading "
        "below an earlier one. Changes nothing once the session ended."
    ),
}


# Who publishes each request, with which routing key, and what it replies.
REQUEST_NOTES: dict[type[Message], tuple[str, str]] = {
    ChargerAuthorize: (
        "tokens",
        "From the charger backend: may this token charge here? The reply's `data` is a ChargerAuthorization.",
    ),
    DelegatedAuthorize: (
        "the value of TOKENS_AUTHORIZE_DELEGATE",
        "From the tokens service to the company's authorizer (eMSP side), for a valid token a CPO "
        "partner asks about. Reply with `data` = an AuthorizationInfo (status_code 1000): its "
        "`location` is narrowed to the EVSEs and connectors the CPO named (an answer for another "
        "location is not used). Reply status_code 2002 when a location is needed: the CPO gets "
        "2002. No reply within TOKENS_AUTHORIZE_DEADLINE_SECONDS (the request's "
        f"`{DEADLINE}` header, epoch milliseconds, says until when it is worth answering), or an "
        "unusable one: the CPO gets TOKENS_AUTHORIZE_FALLBACK.",
    ),
    RealtimeAuthorize: (
        "tokens",
        "Platform-internal: the gateway's POST /ocpi/emsp/2.1.1/tokens/{token_uid}/authorize. Reply "
        "`data`: an AuthorizationInfo; HTTP 404 / 2000 for a token we did not issue; 2002.",
    ),
    PartnerAuthorize: (
        "dispatcher",
        "Platform-internal: the tokens service asks the token's eMSP in real time (CPO side). Reply "
        "`data`: the eMSP's AuthorizationInfo; 404 when it does not know the token; 3001 when it "
        "cannot be reached in time.",
    ),
    TokenLookup: (
        "tokens",
        "Platform-internal: the sessions service asks, for every session start, whose token it is "
        "(CPO side). Reply `data`: a TokenHolder (the owner party, `partner_id` of the connection "
        "that serves it, the token as we hold it); HTTP 404 / 2000 when no partner gave us the "
        "token, or several parties hold its uid and type as valid: the session then goes to nobody.",
    ),
    PartnerTokenGet: (
        "credentials",
        "Platform-internal: the dispatcher asks the gateway for the token a partner gave us, on every "
        "PartnerRegistered (which carries none). Reply `data`: a PartnerToken, the token sealed "
        "(AES-256-GCM) under PARTNER_TOKEN_KEYS for that partner, which only the gateway and the "
        "dispatcher hold; HTTP 404 / 2000 when the partner is not connected (any more).",
    ),
    CdrDisputesList: (
        "cdrs",
        "Platform-internal: the admin API's GET /admin/cdrs/disputes (eMSP side). Reply `data`: a "
        "list of CdrDispute, the `limit` most recently received CDRs whose verdict is DISPUTED, "
        "newest first.",
    ),
}

# ---- examples: built from the Structs, so they always decode --------------------------------------

_T0 = datetime(2025, 1, 15, 9, 0, 0, tzinfo=UTC)
_T1 = datetime(2025, 1, 15, 9, 5, 0, tzinfo=UTC)


def example_connector(tariff_id: str | None = None) -> Connector:
    return Connector(
        id="1",
        standard=ConnectorType.IEC_62196_T2,
        format=ConnectorFormat.SOCKET,
        power_type=PowerType.AC_3_PHASE,
        voltage=400,
        amperage=32,
        tariff_id=tariff_id,
        last_updated=_T0,
    )


def example_evse(
    status: Status = Status.AVAILABLE, last_updated: datetime = _T0, tariff_id: str | None = None
) -> EVSE:
    return EVSE(
        uid="EVSE-0001-1",
        evse_id="NL*ABC*E0001*1",
        status=status,
        capabilities=[Capability.RFID_READER, Capability.REMOTE_START_STOP_CAPABLE],
        connectors=[example_connector(tariff_id)],
        last_updated=last_updated,
    )


def example_location(evse: EVSE | None = None) -> Location:
    evse = evse or example_evse()
    return Location(
        id="LOC-0001",
        type=LocationType.ON_STREET,
        name="Keizersgracht 585",
        address="Keizersgracht 585",
        city="Amsterdam",
        postal_code="1017DR",
        country="NLD",
        coordinates=GeoLocation(latitude="52.364416", longitude="4.889357"),
        evses=[evse],
        time_zone="Europe/Amsterdam",
        last_updated=max(_T0, evse.last_updated),
    )


def example_tariff() -> Tariff:
    """2 EUR per hour, billed per 5 minutes, as in mod_tariffs.md's PUT example."""
    return Tariff(
        id="TARIFF-AC-1",
        currency="EUR",
        elements=[
            TariffElement(
                price_components=[PriceComponent(type=TariffDimensionType.TIME, price=2.0, step_size=300)]
            )
        ],
        last_updated=_T0,
    )


def example_token(valid: bool = True, last_updated: datetime = _T0) -> Token:
    """mod_tokens.md's example token."""
    return Token(
        uid="012345678",
        type=TokenType.RFID,
        auth_id="DE8ACC12E46L89",
        visual_number="DF000-2001-8999",
        issuer="TheNewMotion",
        valid=valid,
        whitelist=WhitelistType.ALLOWED,
        last_updated=last_updated,
    )


_AT_EVSE = LocationReferences(location_id="LOC-0001", evse_uids=["EVSE-0001-1"])

# The billing examples: one session of an eMSP partner's driver at our connector (CPO side), and a CPO
# partner's CDR of one of our drivers (eMSP side).
_EMSP_PARTNER = "6f1e2d3c4b5a6978"  # acme, the eMSP of PartnerRegistered's example
_CPO_PARTNER = "3b4c5d6e7f8091a2"
_OWNER = Party("DE", "ACM")
_METER_AT = datetime(2025, 1, 15, 9, 30, 0, tzinfo=UTC)
_PARKED_AT = datetime(2025, 1, 15, 9, 50, 0, tzinfo=UTC)
_STOP_AT = datetime(2025, 1, 15, 10, 0, 0, tzinfo=UTC)
SESSION_START = SessionStart(
    event_id="4d5e6f70-8192-4a3b-9c4d-5e6f708192a3",
    session_id="SES-0001",
    token_uid="012345678",
    location_id="LOC-0001",
    evse_uid="EVSE-0001-1",
    connector_id="1",
    at=_T0,
)
SESSION_METER = SessionMeter(
    event_id="5e6f7081-92a3-4b4c-8d5e-6f708192a3b4", session_id="SES-0001", at=_METER_AT, kwh=11.0
)
# The car is full: from this reading on the session is parking time.
SESSION_PARKED = SessionMeter(
    event_id="6f708192-a3b4-4c5d-9e6f-708192a3b4c5",
    session_id="SES-0001",
    at=_PARKED_AT,
    kwh=14.5,
    charging=False,
)
SESSION_STOP = SessionStop(
    event_id="708192a3-b4c5-4d6e-8f70-8192a3b4c5d6", session_id="SES-0001", at=_STOP_AT, kwh=14.5
)


def example_charging() -> list[ChargingSession]:
    """The stored session after each example input, as the sessions service's rules build it."""
    rules = SessionInputs(push_interval=30.0, currency="EUR")
    facts = StartFacts(
        location=example_location(example_evse(Status.CHARGING, _T0, tariff_id="TARIFF-AC-1")),
        time_zone="Europe/Amsterdam",
        tariff=example_tariff(),
        holder=TokenHolder(owner=_OWNER, partner_id=_EMSP_PARTNER, token=example_token()),
    )
    states: list[ChargingSession] = []
    stored = None
    for applied in (Start(SESSION_START, facts), SESSION_METER, SESSION_PARKED, SESSION_STOP):
        stored = rules.apply(applied, stored)
        assert stored is not None
        states.append(stored)
    return states


def example_verdict(cdr: CDR, source: TariffSource = TariffSource.OURS) -> CdrVerdict:
    """Our check of a received CDR priced with its own tariff, as the cdrs service takes it."""
    tariff = (cdr.tariffs or [example_tariff()])[0]
    zone = cdr.location.time_zone or "UTC"
    priced = price_session(tariff, cdr.start_date_time, cdr.stop_date_time, cdr.charging_periods, zone)
    theirs = theirs_of(cdr, tariff.id)
    return verdict_of(cdr, theirs, ours_of(priced, tariff.id), priced.currency, Decimal("0.01"), source)


def examples() -> dict[type[Message], Message]:
    """One example of every documented message."""
    charging = example_location(example_evse(Status.CHARGING, _T1))
    _, metered, _, ended = example_charging()
    cdr = cdr_of(ended)
    overcharged = msgspec.structs.replace(cdr, total_cost=2.5)
    disputed = example_verdict(overcharged)
    return {
        LocationUpsert: LocationUpsert(
            event_id="2f6c1a0e-6d0b-4a59-9a57-0c4b1f3e9d21", location=example_location()
        ),
        LocationRemove: LocationRemove(
            event_id="5e1d2b7c-8f3a-4c2e-b1d4-7a9e0f6c3b58", location_id="LOC-0001", at=_T1
        ),
        EvseStatusSet: EvseStatusSet(
            event_id="a3f9c2d1-4b5e-4f6a-8c7d-9e0f1a2b3c4d",
            location_id="LOC-0001",
            evse_uid="EVSE-0001-1",
            status=Status.CHARGING,
            at=_T1,
        ),
        EvseUpsert: EvseUpsert(
            event_id="c8e7d6f5-a4b3-4c2d-91e0-f1a2b3c4d5e6", location_id="LOC-0001", evse=example_evse()
        ),
        EvseRemove: EvseRemove(
            event_id="0d9c8b7a-6e5f-4d3c-a2b1-908f7e6d5c4b",
            location_id="LOC-0001",
            evse_uid="EVSE-0001-1",
            at=_T1,
        ),
        ConnectorUpsert: ConnectorUpsert(
            event_id="7b6a5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
            location_id="LOC-0001",
            evse_uid="EVSE-0001-1",
            connector=example_connector(),
        ),
        ConnectorRemove: ConnectorRemove(
            event_id="e4d3c2b1-a0f9-4e8d-b7c6-5a4b3c2d1e0f",
            location_id="LOC-0001",
            evse_uid="EVSE-0001-1",
            connector_id="2",
            at=_T1,
        ),
        LocationChanged: LocationChanged(
            location=charging,
            version=2,
            changes=[LocationChange(ChangeScope.EVSE_STATUS, "EVSE-0001-1")],
        ),
        PartnerLocationChanged: PartnerLocationChanged(
            country_code="DE",
            party_id="XYZ",
            location=charging,
            version=3,
            change=LocationChange(ChangeScope.EVSE, "EVSE-0001-1"),
        ),
        TariffUpsert: TariffUpsert(event_id="9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", tariff=example_tariff()),
        TariffRemove: TariffRemove(
            event_id="1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e", tariff_id="TARIFF-AC-1", at=_T1
        ),
        TariffChanged: TariffChanged(tariff=example_tariff(), version=1),
        TariffRemoved: TariffRemoved(tariff_id="TARIFF-AC-1", version=2, at=_T1),
        PartnerTariffChanged: PartnerTariffChanged(
            country_code="DE", party_id="XYZ", tariff=example_tariff(), version=1
        ),
        PartnerTariffRemoved: PartnerTariffRemoved(
            country_code="DE", party_id="XYZ", tariff_id="TARIFF-AC-1", version=2
        ),
        TokenUpsert: TokenUpsert(event_id="3c2b1a09-8f7e-4d6c-b5a4-392817060f5e", token=example_token()),
        TokenBlock: TokenBlock(
            event_id="8d7c6b5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d", token_uid="012345678", at=_T1
        ),
        TokenExpire: TokenExpire(
            event_id="f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f", token_uid="012345678", at=_T1
        ),
        TokenChanged: TokenChanged(
            token=example_token(valid=False, last_updated=_T1), version=2, changed=["valid", "last_updated"]
        ),
        PartnerTokenChanged: PartnerTokenChanged(
            country_code="DE", party_id="XYZ", token=example_token(), version=1, partner_id="6f1e2d3c4b5a6978"
        ),
        AuthorizationDecided: AuthorizationDecided(
            token_uid="012345678",
            token_type=TokenType.RFID,
            allowed=Allowed.ALLOWED,
            decider=Decider.DELEGATE,
            reason="the authorizer decided",
            location=_AT_EVSE,
            partner_id="6f1e2d3c4b5a6978",
            at=_T1,
        ),
        ChargerAuthorize: ChargerAuthorize(token_uid="012345678", location=_AT_EVSE),
        DelegatedAuthorize: DelegatedAuthorize(
            token=example_token(), location=_AT_EVSE, partner_id="6f1e2d3c4b5a6978"
        ),
        RealtimeAuthorize: RealtimeAuthorize(
            token_uid="012345678", location=_AT_EVSE, partner_id="6f1e2d3c4b5a6978"
        ),
        PartnerAuthorize: PartnerAuthorize(
            partner_id="6f1e2d3c4b5a6978", token_uid="012345678", location=_AT_EVSE
        ),
        SessionStart: SESSION_START,
        SessionMeter: SESSION_METER,
        SessionStop: SESSION_STOP,
        SessionChanged: session_changed(metered, 2, metered.pending),
        SessionEnded: SessionEnded(charging=ended, version=4, changed=ended.pending),
        PartnerSessionChanged: PartnerSessionChanged(
            country_code="DE", party_id="XYZ", session=metered.session, version=2, partner_id=_CPO_PARTNER
        ),
        CdrCreated: CdrCreated(cdr=cdr, version=1, owner=_OWNER, partner_id=_EMSP_PARTNER),
        CdrDelivered: CdrDelivered(
            cdr_id=cdr.id,
            partner_id=_EMSP_PARTNER,
            location=f"https://ocpi.acme.example/ocpi/emsp/2.1.1/cdrs/NL/ABC/{cdr.id}",
            at=_STOP_AT,
        ),
        PartnerCdrReceived: PartnerCdrReceived(
            country_code="DE",
            party_id="XYZ",
            cdr=cdr,
            verdict=example_verdict(cdr),
            version=1,
            partner_id=_CPO_PARTNER,
        ),
        PartnerCdrDisputed: PartnerCdrDisputed(
            country_code="DE",
            party_id="XYZ",
            cdr_id=cdr.id,
            currency=cdr.currency,
            verdict=disputed,
            partner_id=_CPO_PARTNER,
        ),
        TokenLookup: TokenLookup(token_uid="012345678"),
        CdrDisputesList: CdrDisputesList(limit=100),
        PartnerTokenGet: PartnerTokenGet(partner_id="6f1e2d3c4b5a6978"),
        PartnerRegistered: PartnerRegistered(
            partner_id="6f1e2d3c4b5a6978",
            name="acme",
            role=Role.EMSP,
            parties=[Party("DE", "ACM")],
            versions_url="https://ocpi.acme.example/ocpi/versions",
            version="2.1.1",
            endpoints={
                "credentials": "https://ocpi.acme.example/ocpi/emsp/2.1.1/credentials",
                "locations": "https://ocpi.acme.example/ocpi/emsp/2.1.1/locations",
            },
            registered_at=_T0,
        ),
        PartnerUnregistered: PartnerUnregistered(partner_id="6f1e2d3c4b5a6978"),
        PartnerSyncStateChanged: PartnerSyncStateChanged(
            partner_id="6f1e2d3c4b5a6978",
            state=SyncState.RETRYING,
            detail="PUT HTTP 503 status 3000 Service unavailable (request 9f8e7d6c5b4a39281706f5e4d3c2b1a0)",
            at=_T1,
        ),
    }


def example_payload(message: Message) -> Any:
    """The JSON the platform sends or expects for `message`, as builtins."""
    return msgspec.json.decode(msgspec.json.encode(message))


# ---- schemas ------------------------------------------------------------------------------------

_REF = "#/components/schemas/{name}"


def _is_datetime(info: mi.Type) -> bool:
    if isinstance(info, mi.DateTimeType):
        return True
    return isinstance(info, mi.UnionType) and any(isinstance(t, mi.DateTimeType) for t in info.types)


def _reachable(types: tuple[type[Any], ...]) -> list[mi.StructType | mi.EnumType]:
    """Every Struct and Enum reachable from `types`, each once."""
    found: list[mi.StructType | mi.EnumType] = []
    seen: set[type[Any]] = set()

    def walk(info: mi.Type) -> None:
        if isinstance(info, mi.StructType | mi.EnumType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            found.append(info)
        if isinstance(info, mi.StructType):
            for field in info.fields:
                walk(field.type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                walk(member)
        elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            walk(info.item_type)
        elif isinstance(info, mi.TupleType):
            for member in info.item_types:
                walk(member)
        elif isinstance(info, mi.DictType):
            walk(info.key_type)
            walk(info.value_type)

    for info in mi.multi_type_info(types):
        walk(info)
    return found


def _datetime_fields(reachable: list[mi.StructType | mi.EnumType]) -> dict[str, set[str]]:
    """Struct name -> encoded names of its datetime fields."""
    return {
        info.cls.__name__: {field.encode_name for field in info.fields if _is_datetime(field.type)}
        for info in reachable
        if isinstance(info, mi.StructType)
    }


def _mark_datetime(schema: dict[str, Any]) -> None:
    """msgspec describes datetimes as plain strings; say which strings are RFC 3339 date-times."""
    candidates = schema.get("anyOf", [schema])
    for candidate in candidates:
        if candidate.get("type") == "string":
            candidate["format"] = "date-time"


def schemas(types: tuple[type[Any], ...]) -> dict[str, Any]:
    """JSON Schemas (AsyncAPI Schema is a superset of draft 07) of `types` and everything they use.

    Descriptions are the classes' docstrings cleaned here (inspect.cleandoc), not as msgspec
    renders them: msgspec releases have dedented docstrings differently, and the document must not
    change with the library's formatting.
    """
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    reachable = _reachable(types)
    for info in reachable:
        component = components.get(info.cls.__name__)
        if component is not None and "description" in component and info.cls.__doc__:
            component["description"] = inspect.cleandoc(info.cls.__doc__)
    for struct_name, fields in _datetime_fields(reachable).items():
        properties = components[struct_name]["properties"]
        for field_name in fields:
            _mark_datetime(properties[field_name])
    return dict(sorted(components.items()))


# ---- the document -------------------------------------------------------------------------------


def _exchange(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"}


def _summary(cls: type[Message]) -> str:
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


def _request_id_header() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            REQUEST_ID: {
                "type": "string",
                "description": (
                    "Correlation id. Optional on input; the platform copies it onto every message it "
                    "publishes while handling this one and logs it with every line. When absent, the "
                    "AMQP message_id is used as the request id."
                ),
            }
        },
    }


def _message(cls: type[Message], sample: Message, input_side: bool) -> dict[str, Any]:
    tag = routing_key(sample)
    if cls in REQUEST_NOTES:
        service, notes = REQUEST_NOTES[cls]
        properties = (
            f"AMQP properties: routing key {service} (not the `type`), reply_to "
            "amq.rabbitmq.reply-to, a correlation_id to copy onto the reply, expiration = the "
            f"deadline, header `{DEADLINE}`. The reply, published to the default exchange with "
            "routing key = reply_to, is a JSON object: `status_code` (OCPI, 1000 = success), "
            "`status_message`, `http_status` (default 200) and `data` (see above)."
        )
    elif input_side:
        notes = INPUT_NOTES[cls]
        properties = (
            "AMQP properties: message_id = event_id, delivery_mode 2 (persistent), "
            "content_type application/json."
        )
    else:
        notes = EVENT_NOTES[cls]
        properties = (
            "AMQP properties: delivery_mode 2 (persistent), content_type application/json, "
            "message_id a fresh id per publish."
        )
    return {
        "name": cls.__name__,
        "title": cls.__name__,
        "summary": _summary(cls),
        "description": f"Routing key and `type`: `{tag}`.\n\n{notes}\n\n{properties}",
        "contentType": "application/json",
        "headers": _request_id_header(),
        "payload": {"$ref": _REF.format(name=cls.__name__)},
        "bindings": {"amqp": {"messageType": tag, "bindingVersion": AMQP_BINDING_VERSION}},
        "examples": [{"name": tag, "payload": example_payload(sample)}],
    }


def _channel(
    exchange: dict[str, Any], description: str, operation: str, cls: type[Message]
) -> dict[str, Any]:
    return {
        "description": description,
        "bindings": {
            "amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": AMQP_BINDING_VERSION}
        },
        operation: {
            "operationId": f"{operation}{cls.__name__}",
            "summary": _summary(cls),
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}},
            "message": {"$ref": f"#/components/messages/{cls.__name__}"},
        },
    }


DESCRIPTION = f"""\
The RabbitMQ interface between the OCPI 2.1.1 roaming platform and the company's own systems
(charger backend, apps, billing).

Every exchange and queue name starts with the deployment's namespace (`OCPI_NAMESPACE`); this
document shows the default, `{NAMESPACE}`.

| exchange | type | carries |
|---|---|---|
| `{NAMESPACE}.internal` | topic | input from the company's systems (channels with `publish`) |
| `{NAMESPACE}.events` | topic | domain events the platform publishes (channels with `subscribe`) |
| `{NAMESPACE}.rpc` | direct | requests (RPC), routed by service name (the channels on this exchange) |
| `{NAMESPACE}.dead-letter` | fanout | what could not be handled, into `{NAMESPACE}.dead-letters` |

AsyncAPI 2 describes operations from the point of view of the platform's clients: `publish` means
the company's systems publish and the platform consumes; `subscribe` means the platform publishes
and internal consumers bind a queue of their own to the events exchange.

Messages are JSON objects. The `type` field names the message and equals its routing key: publish
every message with routing key = `type` (the input queue is bound to exactly these keys; a message
with another routing key reaches no queue and is dropped by the broker). Input messages carry an
`event_id` (idempotency key): send it as the AMQP `message_id` too, publish persistent messages and
wait for publisher confirms. A message that reaches the input queue but does not decode (unknown
`type`, missing or invalid field) or can never be applied (e.g. a status for an unknown EVSE) is
dead-lettered with the reason in the header `{ERROR}`.

Versioning: this is version {CATALOGUE_VERSION} of the catalogue. Schemas evolve compatibly: a new
field always has a default, so producers and consumers of version {CATALOGUE_VERSION} keep working
(consumers must ignore fields they do not know); a breaking change gets a new tag (routing key).
"""


def build_document() -> dict[str, Any]:
    """The AsyncAPI document as builtins."""
    topology = Topology(NAMESPACE)
    samples = examples()
    internal = _exchange(topology.internal_exchange, "topic")
    events = _exchange(topology.events_exchange, "topic")
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls in INPUT_TYPES:
        sample = samples[cls]
        channels[routing_key(sample)] = _channel(
            internal,
            f"Input on `{topology.internal_exchange}`, consumed by the {CONSUMED_BY[cls]} service "
            f"from the queue `{topology.queue(CONSUMED_BY[cls], 'input')}`.",
            "publish",
            cls,
        )
        messages[cls.__name__] = _message(cls, sample, input_side=True)
    for cls in EVENT_TYPES:
        sample = samples[cls]
        channels[routing_key(sample)] = _channel(
            events, f"Domain event on `{topology.events_exchange}`.", "subscribe", cls
        )
        messages[cls.__name__] = _message(cls, sample, input_side=False)
    rpc = _exchange(topology.rpc_exchange, "direct")
    for cls in REQUEST_TYPES:
        sample = samples[cls]
        service = REQUEST_NOTES[cls][0]
        operation = "subscribe" if cls is DelegatedAuthorize else "publish"
        channels[routing_key(sample)] = _channel(
            rpc,
            f"Request (RPC) on `{topology.rpc_exchange}`, routing key {service}; the `type` field "
            "tells the requests of one service apart.",
            operation,
            cls,
        )
        messages[cls.__name__] = _message(cls, sample, input_side=operation == "publish")
    channels[topology.dead_letter_queue] = {
        "description": (
            f"Every message a service could not handle, published on the fanout exchange "
            f"`{topology.dead_letter_exchange}` and kept in this quorum queue; no service consumes it."
        ),
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": topology.dead_letter_queue,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "subscribe": {
            "operationId": "subscribeDeadLetter",
            "summary": "Messages that could not be handled, with the reason.",
            "message": {"$ref": "#/components/messages/DeadLetter"},
        },
    }
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "DeadLetter",
        "summary": "The original message, unchanged, with the reason it was set aside.",
        "description": (
            f"A message a consumer rejected keeps its body, routing key and message_id and gains the "
            f"headers `{ERROR}` and `{ORIGINAL_ROUTING_KEY}`. A message whose handling kept failing "
            f"(for example while MongoDB was down) is dead-lettered by RabbitMQ itself after "
            f"{DELIVERY_LIMIT} deliveries: it carries RabbitMQ's `x-death` / `x-first-death-reason` "
            f"headers (reason `delivery_limit`) instead of `{ERROR}`."
        ),
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                ERROR: {"type": "string", "maxLength": 1000, "description": "Why the consumer rejected it."},
                ORIGINAL_ROUTING_KEY: {"type": "string", "description": "The routing key it arrived with."},
                REQUEST_ID: {"type": "string"},
            },
        },
        "payload": {"description": "The original body, unchanged."},
    }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "OCPI platform message catalogue",
            "version": CATALOGUE_VERSION,
            "description": DESCRIPTION.strip(),
        },
        "servers": {
            "rabbitmq": {
                "url": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The deployment's RabbitMQ (AMQP_URL).",
                "variables": {"host": {"default": "localhost"}, "port": {"default": "5672"}},
            }
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {
            "messages": messages,
            "schemas": schemas((*INPUT_TYPES, *EVENT_TYPES, *REQUEST_TYPES, *REPLY_TYPES)),
        },
    }


HEADER = "# Generated by `python -m docs.generate_asyncapi` from shared/contracts: do not edit by hand.\n"


def render() -> str:
    """The text of docs/asyncapi.yaml."""
    return HEADER + yaml_text(build_document())


def main(argv: list[str] | None = None) -> int:
    return generator_main(OUTPUT, render, "docs.generate_asyncapi", argv)


if __name__ == "__main__":
    raise SystemExit(main())
