"""Real-time authorization for the tokens service (CPO side): the RPC `PartnerAuthorize`.

The dispatcher holds the partners' connections and the outbound HTTP session, so the tokens service
asks it to POST `{tokens endpoint}/{token_uid}/authorize?type=...` (mod_tokens.md 2.2.2) to the
token's eMSP. The call is bounded by the caller's deadline: an answer it no longer waits for is
worth nothing, and a charger is waiting behind it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote, urlencode

import msgspec
import structlog

from services.dispatcher.ocpi_client import OcpiClient, Reply
from services.dispatcher.partners import Partner, PartnerCache
from shared.contracts.base import Outcome, RpcReply, error, ok
from shared.contracts.tokens import PartnerAuthorize
from shared.messaging.headers import current_deadline, current_request_id
from shared.ocpi.v2_1_1.codec import decode
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tokens import AuthorizationInfo
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Role

log = structlog.get_logger(__name__)

# Kept from the caller's deadline for our reply to travel back through the broker.
DEADLINE_MARGIN = 0.2


def unable(message: str, http_status: int = 502) -> RpcReply:
    """3001: the eMSP's API could not be used (not reachable, an error, too late, not known)."""
    return error(OcpiStatus.UNABLE_TO_USE_CLIENT_API, message, http_status)


def authorize_url(endpoint: str, request: PartnerAuthorize) -> str:
    """`{endpoint}/{token_uid}/authorize?type={token_type}`, the uid escaped as one segment."""
    query = urlencode({"type": request.token_type.value})
    return f"{endpoint.rstrip('/')}/{quote(request.token_uid, safe='')}/authorize?{query}"


def tokens_endpoint(partner: Partner | None, partner_id: str) -> tuple[str | None, str]:
    """The partner's tokens endpoint, or None and why it cannot be asked."""
    if partner is None:
        return None, f"partner {partner_id} is not registered"
    if partner.role is not Role.EMSP:
        return None, f"partner {partner_id} is not an eMSP"
    endpoint = partner.endpoints.get(ModuleID.TOKENS.value)
    if not endpoint:
        return None, f"partner {partner_id} has no tokens endpoint"
    return endpoint, ""


def interpret(reply: Reply, seconds: float, token_uid: str) -> tuple[RpcReply, str]:
    """Our answer to the tokens service for the eMSP's `reply`, and the outcome word for the log."""
    if reply.http_status == 404:
        unknown = error(OcpiStatus.CLIENT_ERROR, f"the eMSP does not know token {token_uid}", 404)
        return unknown, "unknown_token"
    if reply.http_status is None:
        if reply.failure == "timeout":
            return unable(f"the eMSP did not answer within {seconds:.2f}s", 504), "timeout"
        return unable(f"the eMSP could not be reached: {reply.message}"), "unreachable"
    if not reply.answered or reply.status_code != OcpiStatus.SUCCESS:
        detail = f"HTTP {reply.http_status} status {reply.status_code} {reply.message}".strip()
        return unable(f"the eMSP answered {detail}"), "error"
    try:
        info = decode(reply.data, AuthorizationInfo)
    except (msgspec.DecodeError, RecursionError) as exc:
        # An answer we cannot read is no answer: the tokens service decides as if none came.
        return unable(f"the eMSP's AuthorizationInfo is invalid: {exc}"), "invalid"
    return ok(info), info.allowed.value


class PartnerAuthorizer:
    """Answers PartnerAuthorize: find the eMSP, POST its authorize endpoint in time, relay the answer."""

    def __init__(
        self,
        partners: PartnerCache,
        client: OcpiClient,
        default_seconds: float,
        margin: float = DEADLINE_MARGIN,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._partners = partners
        self._client = client
        self._default = default_seconds
        self._margin = margin
        self._wall = wall

    def _budget(self) -> float:
        """Seconds the call may take: until the caller's deadline less the margin, else the default."""
        deadline = current_deadline.get()
        if deadline is None:
            return self._default
        return deadline - self._wall() - self._margin

    async def authorize(self, request: PartnerAuthorize) -> Outcome:
        """The RPC handler: one POST to the eMSP at most, one log line always."""
        started = time.monotonic()
        reply, outcome, http_status = await self._authorize(request)
        log.info(
            "partner_authorize",
            partner_id=request.partner_id,
            token_uid=request.token_uid,
            token_type=request.token_type.value,
            outcome=outcome,
            partner_http_status=http_status,
            status_code=reply.status_code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return Outcome(reply=reply)

    async def _authorize(self, request: PartnerAuthorize) -> tuple[RpcReply, str, int | None]:
        partner = await self._partners.get(request.partner_id)
        endpoint, why = tokens_endpoint(partner, request.partner_id)
        if endpoint is None or partner is None:
            return unable(why), "not_possible", None
        seconds = self._budget()
        if seconds <= 0:
            return unable("no time left before the caller's deadline", 504), "no_time", None
        reply = await self._client.call(
            "POST",
            authorize_url(endpoint, request),
            partner.token,
            body=request.location,
            request_id=current_request_id.get(),
            seconds=seconds,
        )
        answer, outcome = interpret(reply, seconds, request.token_uid)
        return answer, outcome, reply.http_status
