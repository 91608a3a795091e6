"""Which parties a partner may write for is the operator's decision (finding M3).

A partner owns exactly the parties the operator named for it (`partner add`, `partner register
--party`), never what it claims itself; our own party is nobody's; and no two partners own one party
unless the operator says so (`shared_party`), because the owner of a party may overwrite its objects
in our copies.
"""

from __future__ import annotations

from services.gateway.party_store import PartiesTaken
from services.gateway.responses import invalid
from services.gateway.state import Gateway
from shared.contracts.partners import Party
from shared.errors import OcpiFailure


def label(party: Party) -> str:
    return f"{party.country_code}/{party.party_id}"


async def check_claims(gateway: Gateway, parties: list[Party], *, shared: bool) -> None:
    """Refuse (2001) our own party, and a party another live partner owns unless `shared`."""
    settings = gateway.settings
    own = Party(settings.country_code, settings.party_id)
    if own in parties:
        raise invalid(f"parties: {label(own)} is our own party; no partner may write for it")
    if shared:
        return
    by_owner = {
        (owner.id, owner.name): [label(p) for p in parties if owner.owns(p.country_code, p.party_id)]
        for owner in await gateway.partners.owners_of(parties)
    }
    if by_owner:
        raise taken_refusal(by_owner)


def storage_refusal(taken: PartiesTaken) -> OcpiFailure:
    """The same answer for what the storage refused: a concurrent call took a party since the check."""
    by_owner: dict[tuple[str, str], list[str]] = {}
    for party, owners in taken.taken.items():
        for owner in owners:
            by_owner.setdefault(owner, []).append(party)
    return taken_refusal(by_owner, list(taken.taken))


def taken_refusal(
    by_owner: dict[tuple[str, str], list[str]], unnamed: list[str] | None = None
) -> OcpiFailure:
    """2001 naming each owner (id, name) and the parties it holds (or parties taken meanwhile)."""
    conflicts = [
        f"{', '.join(taken)} belongs to partner {name!r} ({id_})" for (id_, name), taken in by_owner.items()
    ]
    held = "; ".join(conflicts) or f"{', '.join(unnamed or [])} taken meanwhile"
    return invalid(
        f"parties: {held}. Two partners may write for one party only when you say so: "
        "shared_party (ocpi-admin --shared-party)"
    )


def claimed_party_refusal(parties: list[Party], country_code: str, party_id: str) -> str | None:
    """Why a partner's own claim (its credentials answer) is refused, or None when it was named."""
    if Party(country_code, party_id) in parties:
        return None
    named = ", ".join(label(p) for p in parties)
    return (
        f"the partner answered as party {country_code}/{party_id}, but the parties named for it are {named}"
    )
