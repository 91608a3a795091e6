"""The operator's admin API (a separate listener, loopback by default): partners and re-syncs."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from aiohttp import web

from services.gateway import registration
from services.gateway.admin_contracts import AddedPartner, AddPartner, PartnerView, RegisterPartner
from services.gateway.endpoints import our_role_towards, versions_url
from services.gateway.middleware import Handler
from services.gateway.module_calls import call_service
from services.gateway.partners import ConnectionStatus, NameTaken, Partner, new_partner, pending
from services.gateway.party_claims import check_claims, storage_refusal
from services.gateway.party_store import PartiesTaken
from services.gateway.publishing import announce
from services.gateway.responses import OcpiError, bad_body, invalid, not_allowed, success, unauthorized
from services.gateway.state import Gateway, gateway_of
from services.gateway.tokens import new_token, same_hash, token_hash
from shared.contracts.cdrs import CdrDisputesList
from shared.contracts.partners import Party, PullRequested
from shared.errors import OcpiFailure
from shared.ocpi.v2_1_1.modules import MODULES, module_named
from shared.settings import Settings

T = TypeVar("T")


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every admin call carries `Authorization: Bearer <OCPI_ADMIN_TOKEN>`."""
    if request.path in ("/healthz", "/readyz"):
        return await handler(request)  # probes carry no token
    expected = gateway_of(request).settings.admin_token
    given = request.headers.get("Authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not same_hash(token_hash(token.strip()), token_hash(expected)):
        raise unauthorized("Admin token required")
    return await handler(request)


async def _body(request: web.Request, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.read(), type=type_)
    except msgspec.DecodeError as exc:
        raise bad_body("request body", exc) from exc


def view(partner: Partner, settings: Settings) -> PartnerView:
    """The partner as the operator sees it, with its TOKEN_A's expiry (TOKEN_A_TTL_SECONDS)."""
    return PartnerView(
        id=partner.id,
        name=partner.name,
        role=partner.role,
        country_code=partner.country_code,
        party_id=partner.party_id,
        parties=partner.parties,
        status=partner.status.value,
        sync_state=partner.sync_state.value,
        sync_detail=partner.sync_detail,
        versions_url=partner.versions_url,
        version=partner.version,
        endpoints=partner.endpoints,
        token_a_expires_at=partner.token_a_expires_at(settings.token_a_ttl),
        token_a_expired=partner.token_a_expired(settings.token_a_ttl),
    )


async def _partner(request: web.Request, *, removed: bool = False) -> Partner:
    """The partner named in the path; with `removed`, also one whose removal is not finished."""
    key = request.match_info["partner"]
    partner = await gateway_of(request).partners.find_by_name_or_id(key, removed=removed)
    if partner is None:
        raise OcpiError(2000, "No such partner", http_status=404)
    return partner


async def add_partner(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    body = await _body(request, AddPartner)
    if not gateway.settings.has_role(our_role_towards(body.role)):
        raise invalid(
            f"role: this deployment is not {our_role_towards(body.role).value} for a {body.role.value}"
        )
    if await gateway.partners.find_by_name_or_id(body.name):
        raise invalid(f"name: a partner called {body.name!r} exists already")
    extra = [p.party() for p in body.extra_parties]
    await check_claims(gateway, [Party(body.country_code, body.party_id), *extra], shared=body.shared_party)
    token_a = new_token()
    partner = new_partner(
        body.name,
        body.role,
        body.country_code,
        body.party_id,
        extra_parties=extra,
        token_a_hash=token_hash(token_a),
    )
    partner.token_a_issued_at = partner.created_at
    try:
        # The checks above give the answer; the storage refuses what a concurrent call took since.
        await gateway.partners.add(partner, shared_party=body.shared_party)
    except (PartiesTaken, NameTaken) as exc:
        raise _refused(exc) from exc
    return _added(gateway, partner, token_a)


def _refused(exc: PartiesTaken | NameTaken) -> OcpiFailure:
    """The 2001 of the checks in code, for what the storage refused (M3, L11)."""
    if isinstance(exc, NameTaken):
        return invalid(f"name: a partner called {exc.name!r} exists already")
    return storage_refusal(exc)


async def issue_token_a(request: web.Request) -> web.Response:
    """A new TOKEN_A for a partner that has not registered yet (its old one expired or was lost);
    the old one stops working at once."""
    gateway = gateway_of(request)
    partner = await _partner(request)
    if partner.status is not ConnectionStatus.PENDING or partner.token_a_hash is None:
        raise not_allowed(
            "This partner has registered (or we registered with it): it has no TOKEN_A to replace; "
            "to start again, remove it and add it anew"
        )
    token_a = new_token()
    owed = pending(None, [partner.token_a_hash])  # replicas forget the old one's cached principal
    updated = await gateway.partners.update_if(
        partner.id,
        {"status": ConnectionStatus.PENDING.value, "token_a_hash": partner.token_a_hash, "removed_at": None},
        {"token_a_hash": token_hash(token_a), "token_a_issued_at": owed.at},
        owed=owed,
    )
    if updated is None:
        raise OcpiError(2000, "The partner changed meanwhile (it may have registered); nothing was issued")
    await announce(gateway, updated, owed)  # left to the sweep when the broker is away: it expired anyway
    return _added(gateway, updated, token_a)


def _added(gateway: Gateway, partner: Partner, token_a: str) -> web.Response:
    added = AddedPartner(
        partner=view(partner, gateway.settings), token_a=token_a, versions_url=versions_url(gateway.settings)
    )
    return success(added)


async def register_partner(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    body = await _body(request, RegisterPartner)
    roles = [our_role_towards(r) for r in gateway.settings.roles]
    role = body.role or (roles[0] if len(roles) == 1 else None)
    if role is None:
        raise invalid("role: this deployment is CPO and eMSP; say whether the partner is CPO or EMSP")
    if not gateway.settings.has_role(our_role_towards(role)):
        raise invalid(f"role: this deployment is not {our_role_towards(role).value} for a {role.value}")
    name = body.name or body.versions_url
    if await gateway.partners.find_by_name_or_id(name):
        raise invalid(f"name: a partner called {name!r} exists already")
    parties = list(dict.fromkeys(p.party() for p in body.parties))
    await check_claims(gateway, parties, shared=body.shared_party)
    try:
        partner = await registration.register_with(
            gateway, name, role, body.versions_url, body.token, parties, shared_party=body.shared_party
        )
    except (PartiesTaken, NameTaken) as exc:
        raise _refused(exc) from exc
    return success(view(partner, gateway_of(request).settings))


async def list_partners(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    return success([view(p, gateway.settings) for p in await gateway.partners.all()])


async def get_partner(request: web.Request) -> web.Response:
    return success(view(await _partner(request), gateway_of(request).settings))


async def rotate_partner(request: web.Request) -> web.Response:
    partner = await registration.update_towards(gateway_of(request), await _partner(request))
    return success(view(partner, gateway_of(request).settings))


async def remove_partner(request: web.Request) -> web.Response:
    # A half-removed partner is found too: repeating the call finishes its removal.
    await registration.remove(gateway_of(request), await _partner(request, removed=True))
    return success(None)


async def sync_partner(request: web.Request) -> web.Response:
    """Ask the dispatcher to pull the partner's objects again (a full re-sync): of one module with
    `?module=`, else of every module of the table the partner offers."""
    partner = await _partner(request)
    named = request.query.get("module")
    if named is not None and module_named(named) is None:
        raise invalid(f"module must be one of {', '.join(sorted(MODULES))}")
    modules = [named] if named else [m for m in MODULES if m in partner.endpoints]
    for module in modules:
        await gateway_of(request).broker.publish_event(
            PullRequested(partner_id=partner.id, module=module, full=True)
        )
    return success({"requested": modules})


async def cdr_disputes(request: web.Request) -> web.Response:
    """The received CDRs whose price we dispute, newest first (`?limit=`, 1 to 1000, default 100)."""
    text = request.query.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise invalid("limit must be a whole number from 1 to 1000")
    return await call_service(gateway_of(request), "cdrs", CdrDisputesList(limit=int(text)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/partners", add_partner)
    app.router.add_get("/admin/partners", list_partners)
    app.router.add_post("/admin/registrations", register_partner)
    app.router.add_get("/admin/partners/{partner}", get_partner)
    app.router.add_delete("/admin/partners/{partner}", remove_partner)
    app.router.add_post("/admin/partners/{partner}/rotate", rotate_partner)
    app.router.add_post("/admin/partners/{partner}/token", issue_token_a)
    app.router.add_post("/admin/partners/{partner}/sync", sync_partner)
    app.router.add_get("/admin/cdrs/disputes", cdr_disputes)
