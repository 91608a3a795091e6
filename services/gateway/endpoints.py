"""Which OCPI modules we offer a partner, and the URLs under which we offer them.

OCPI 2.1.1 endpoints carry no role, so a deployment that is CPO and eMSP at once offers each
partner the interface of the role it plays towards that partner: an eMSP partner sees our CPO
(sender) interface, a CPO partner our eMSP (receiver) interface.
"""

from __future__ import annotations

from shared.ocpi.v2_1_1.modules import MODULES as OBJECT_MODULES
from shared.ocpi.v2_1_1.versions import Endpoint, ModuleID
from shared.settings import Role, Settings

VERSION = "2.1.1"

# Modules we implement for each of our roles, from the module table: a module is offered under our
# CPO URLs when the CPO sends or receives it, likewise for the eMSP.
MODULES: dict[Role, tuple[ModuleID, ...]] = {
    role: tuple(m.id for m in OBJECT_MODULES.values() if role in (m.sender_role, m.receiver_role))
    for role in Role
}

# Modules a partner must offer before we can work with it, by the partner's role.
REQUIRED_FROM_PARTNER: dict[Role, frozenset[str]] = {
    Role.CPO: frozenset({"credentials", "locations"}),
    Role.EMSP: frozenset({"credentials", "locations"}),
}


def our_role_towards(partner_role: Role) -> Role:
    return Role.EMSP if partner_role is Role.CPO else Role.CPO


def versions_url(settings: Settings) -> str:
    return f"{settings.public_url}/ocpi/versions"


def version_url(settings: Settings) -> str:
    return f"{settings.public_url}/ocpi/{VERSION}"


def credentials_url(settings: Settings) -> str:
    return f"{settings.public_url}/ocpi/{VERSION}/credentials"


def module_url(settings: Settings, role: Role, module: ModuleID) -> str:
    return f"{settings.public_url}/ocpi/{role.value.lower()}/{VERSION}/{module.value}"


def endpoints_for(settings: Settings, partner_role: Role | None) -> list[Endpoint]:
    """The endpoints we list in our version details for a partner of `partner_role`."""
    endpoints = [Endpoint(identifier=ModuleID.CREDENTIALS, url=credentials_url(settings))]
    roles = [our_role_towards(partner_role)] if partner_role else list(settings.roles)
    for role in roles:
        if settings.has_role(role):
            endpoints += [Endpoint(identifier=m, url=module_url(settings, role, m)) for m in MODULES[role]]
    return endpoints


def missing_endpoints(partner_role: Role, offered: dict[str, str]) -> set[str]:
    return set(REQUIRED_FROM_PARTNER[partner_role]) - set(offered)
