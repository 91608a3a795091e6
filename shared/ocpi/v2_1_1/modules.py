"""The table of OCPI object modules: what differs between them is data here, not copied code.

The gateway builds its routes from it, the dispatcher its audiences and pulls, the services their
generic sender and receiver handlers, and the AsyncAPI generator its document. Commands and
credentials are not object modules (no list of stored objects) and are not in the table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.ocpi.v2_1_1.cdrs import CDR
from shared.ocpi.v2_1_1.locations import EVSE, Connector, ConnectorPatch, EVSEPatch, Location, LocationPatch
from shared.ocpi.v2_1_1.sessions import Session, SessionPatch
from shared.ocpi.v2_1_1.status import OcpiStatus
from shared.ocpi.v2_1_1.tariffs import Tariff, TariffPatch
from shared.ocpi.v2_1_1.tokens import Token, TokenPatch
from shared.ocpi.v2_1_1.types import OcpiStruct
from shared.ocpi.v2_1_1.versions import ModuleID
from shared.settings import Role


class Audience(enum.Enum):
    """Who receives our pushes of a module's objects."""

    EVERY_RECEIVER = "EVERY_RECEIVER"  # every partner of the other role with the module's endpoint
    TOKEN_OWNER = "TOKEN_OWNER"  # only the party that issued the token (sessions, CDRs)


@dataclass(frozen=True)
class Level:
    """One URL level below `{country_code}/{party_id}` (locations have three, the others one)."""

    name: str  # the URL parameter, e.g. "location_id"
    object_type: type[OcpiStruct]
    patch_type: type[OcpiStruct]
    id_field: str  # the field of the object that must equal the URL's id
    max_id_length: int


@dataclass(frozen=True)
class OcpiModule:
    """An OCPI module of stored objects, as both its Sender and its Receiver interface see it."""

    id: ModuleID
    # Whose objects these are: the Sender interface is ours when we play this role.
    sender_role: Role
    # The internal service that stores the module's objects and answers the gateway for it.
    service: str
    levels: tuple[Level, ...]
    receiver_methods: frozenset[str]
    # Whether the Sender interface serves GET of one object (locations) or only the list (tariffs).
    sender_get: bool
    # The OCPI status of a request for an object we do not hold (always with HTTP 404).
    unknown_status: OcpiStatus = OcpiStatus.CLIENT_ERROR
    audience: Audience = Audience.EVERY_RECEIVER
    list_needs_date_from: bool = False

    @property
    def receiver_role(self) -> Role:
        """The role whose Receiver interface takes the module's objects."""
        return Role.EMSP if self.sender_role is Role.CPO else Role.CPO

    @property
    def name(self) -> str:
        """The module identifier as OCPI writes it ("locations")."""
        return self.id.value

    def level(self, depth: int) -> Level:
        """The level addressed by a path of `depth` ids (1 for the top level)."""
        return self.levels[depth - 1]


LOCATIONS = OcpiModule(
    id=ModuleID.LOCATIONS,
    sender_role=Role.CPO,
    service="locations",
    levels=(
        Level("location_id", Location, LocationPatch, "id", 39),
        Level("evse_uid", EVSE, EVSEPatch, "uid", 39),
        Level("connector_id", Connector, ConnectorPatch, "id", 36),
    ),
    receiver_methods=frozenset({"GET", "PUT", "PATCH"}),
    sender_get=True,
    unknown_status=OcpiStatus.UNKNOWN_LOCATION,
)

TARIFFS = OcpiModule(
    id=ModuleID.TARIFFS,
    sender_role=Role.CPO,
    service="tariffs",
    levels=(Level("tariff_id", Tariff, TariffPatch, "id", 36),),
    receiver_methods=frozenset({"GET", "PUT", "PATCH", "DELETE"}),
    sender_get=False,
)

TOKENS = OcpiModule(
    id=ModuleID.TOKENS,
    sender_role=Role.EMSP,
    service="tokens",
    levels=(Level("token_uid", Token, TokenPatch, "uid", 36),),
    # Tokens cannot be deleted (mod_tokens.md 2.1): a blocked card is valid=false.
    receiver_methods=frozenset({"GET", "PUT", "PATCH"}),
    sender_get=False,
)

SESSIONS = OcpiModule(
    id=ModuleID.SESSIONS,
    sender_role=Role.CPO,
    service="sessions",
    levels=(Level("session_id", Session, SessionPatch, "id", 36),),
    receiver_methods=frozenset({"GET", "PUT", "PATCH"}),
    sender_get=False,
    # A session goes to the eMSP of its token only, and a partner's list holds only its own.
    audience=Audience.TOKEN_OWNER,
    # mod_sessions.md 2.1.1: date_from is required on the CPO's GET.
    list_needs_date_from=True,
)

CDRS = OcpiModule(
    id=ModuleID.CDRS,
    sender_role=Role.CPO,
    service="cdrs",
    # CDRs are never changed (mod_cdrs.md 1): there is no patch; the level's patch type is unused.
    levels=(Level("cdr_id", CDR, CDR, "id", 36),),
    # The eMSP's interface: POST of a new CDR, GET at the URL its POST answered (mod_cdrs.md 2.2).
    receiver_methods=frozenset({"GET", "POST"}),
    sender_get=False,
    audience=Audience.TOKEN_OWNER,
)

MODULES: dict[ModuleID, OcpiModule] = {
    module.id: module for module in (LOCATIONS, TARIFFS, TOKENS, SESSIONS, CDRS)
}


def module_named(name: str) -> OcpiModule | None:
    """The module of an identifier as partners and messages spell it, if it is in the table."""
    try:
        return MODULES.get(ModuleID(name))
    except ValueError:
        return None
