"""What a session's start needs from the platform's other services, asked over RPC (no service reads
another's database): the token's owner (tokens), the location (locations) and the connector's tariff
(tariffs). A service that does not answer (RpcTimeout) or answers a server-side failure (3xxx or
HTTP 5xx: Unanswered) is a dependency away (shared/messaging/transient.py): the batch is held and
tried again until it answers, so a start is never dead-lettered for an outage. An unknown location,
EVSE or connector, or another refusal, is the message's fault (Rejected: dead-lettered)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import structlog

from services.sessions.cpo_rules import StartFacts
from shared.contracts.base import RpcReply
from shared.contracts.objects import SenderGet
from shared.contracts.sessions import SessionStart
from shared.contracts.tokens import TokenHolder, TokenLookup
from shared.messaging.rpc import RpcClient
from shared.messaging.transient import DependencyAway
from shared.modules.sender import Rejected
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.locations import Location
from shared.ocpi.v2_1_1.tariffs import Tariff

log = structlog.get_logger(__name__)


class Unanswered(DependencyAway):
    """A service answered a lookup with an error (it was unavailable, or failed): the batch is held
    and tried again, as when it does not answer at all."""


def _found(reply: RpcReply, what: str) -> bool:
    """True for the object, False for "unknown"; a server-side failure (3xxx, HTTP 5xx) is the
    service being away; any other refusal is about this start (it is dead-lettered with it)."""
    if reply.status_code == 1000:
        return True
    if reply.http_status == 404:
        return False
    failure = f"{what}: {reply.status_code} {reply.status_message}"
    if reply.status_code >= 3000 or reply.http_status >= 500:
        raise Unanswered(failure)
    raise Rejected(f"refused by {failure}")


def _zone_of(location: Location, msg: SessionStart) -> str:
    """The location's time zone when it is one zoneinfo knows; else UTC, with a warning (the session
    must not be lost for a typo in the location's data)."""
    zone = location.time_zone or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("session_time_zone_unknown", session_id=msg.session_id, time_zone=zone[:64])
        zone = "UTC"
    return zone


def the_connector(location: Location, msg: SessionStart) -> Location:
    """The location with only the session's EVSE and connector (mod_sessions.md 3.1 `location`)."""
    for evse in location.evses or []:
        if evse.uid == msg.evse_uid:
            for connector in evse.connectors:
                if connector.id == msg.connector_id:
                    only = msgspec.structs.replace(evse, connectors=[connector])
                    return msgspec.structs.replace(location, evses=[only])
            raise Rejected(f"connector {msg.connector_id} of EVSE {msg.evse_uid} is not one of ours")
    raise Rejected(f"EVSE {msg.evse_uid} of location {msg.location_id} is not one of ours")


class StartLookups:
    """Reads the facts of a start from the tokens, locations and tariffs services."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def facts(self, msg: SessionStart) -> StartFacts:
        reply = await self._rpc.call("locations", SenderGet(module="locations", path=[msg.location_id]))
        if not _found(reply, "locations"):
            raise Rejected(f"location {msg.location_id} is not one of ours")
        location = the_connector(decode(bytes(reply.data), Location), msg)
        connector = (location.evses or [])[0].connectors[0]
        tariff = None
        if connector.tariff_id is not None:
            reply = await self._rpc.call("tariffs", SenderGet(module="tariffs", path=[connector.tariff_id]))
            if _found(reply, "tariffs"):
                tariff = decode(bytes(reply.data), Tariff)
            else:
                # Priced at nothing rather than refused: the driver is charging already.
                log.warning(
                    "session_tariff_unknown", session_id=msg.session_id, tariff_id=connector.tariff_id
                )
        reply = await self._rpc.call(
            "tokens", TokenLookup(token_uid=msg.token_uid, token_type=msg.token_type)
        )
        holder = decode(bytes(reply.data), TokenHolder) if _found(reply, "tokens") else None
        if holder is None:
            log.info("session_token_not_roaming", session_id=msg.session_id, reason=reply.status_message)
        zone = _zone_of(location, msg)
        # The session (and its CDR) names the zone it is priced in, so that the eMSP checks the
        # price in the same one.
        location = msgspec.structs.replace(location, time_zone=zone)
        return StartFacts(location=location, time_zone=zone, tariff=tariff, holder=holder)
