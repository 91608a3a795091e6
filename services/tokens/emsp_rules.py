"""Pure rules of our tokens (eMSP side): how the company's inputs change them, and their events.

A token is stored as an `IssuedToken`: the 2.1.1 Token partners see, plus why an invalid one is
refused (BLOCKED or EXPIRED: 2.1.1's Token has only `valid`, real-time answers need the reason).

- TokenUpsert: a token as new as the stored one or newer replaces it unless identical; an older one
  changes nothing. An invalid upserted token keeps the stored reason (a reload of an expired card
  must not turn it into a blocked one), else it is BLOCKED.
- TokenBlock / TokenExpire: valid=false, last_updated=`at`, unless `at` is older than the stored
  token; a token we never issued is not created. At the very instant a token became invalid, the
  first reason stays (so that every stored change changes a field of the Token).

TokenChanged.changed names the Token fields that differ from the previous stored version. Several
inputs of one batch make one version: states made by inputs and not stored yet are `unsaved`, and
the next input of the batch adds its changes to theirs (the store clears the mark when writing).
"""

from __future__ import annotations

import msgspec

from shared.contracts.base import Message, tag_of
from shared.contracts.tokens import TokenBlock, TokenChanged, TokenInput, TokenUpsert
from shared.modules.receiver import is_stale
from shared.modules.sender import OwnRecord, Removed
from shared.ocpi.v2_1_1.tokens import Allowed, Token
from shared.ocpi.v2_1_1.types import to_utc

#: Every field of a 2.1.1 Token, in the spec's order: what a new token's event lists as changed.
TOKEN_FIELDS: tuple[str, ...] = Token.__struct_fields__


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    """One of our tokens as the tokens service stores it (never sent to partners as such)."""

    token: Token
    # Why a token with valid=false is refused in real time: BLOCKED or EXPIRED; None while valid.
    invalid_as: Allowed | None = None
    # The Token fields this version changed from the previous one (all of them for a new token).
    changed: tuple[str, ...] = ()
    # Made by an input of the batch being applied, not stored yet (see the module docstring).
    unsaved: bool = False


def changed_fields(before: Token | None, after: Token) -> tuple[str, ...]:
    """The Token fields that differ, in the spec's order; every field for a new token."""
    if before is None:
        return TOKEN_FIELDS
    return tuple(name for name in TOKEN_FIELDS if getattr(before, name) != getattr(after, name))


def _next(before: IssuedToken | None, token: Token, invalid_as: Allowed | None) -> IssuedToken | None:
    """The new state, or None when nothing changes."""
    if before is not None and token == before.token and invalid_as == before.invalid_as:
        return None
    changed = changed_fields(None if before is None else before.token, token)
    if before is not None and before.unsaved:
        merged = set(changed) | set(before.changed)
        changed = tuple(name for name in TOKEN_FIELDS if name in merged)
    return IssuedToken(token=token, invalid_as=invalid_as, changed=changed, unsaved=True)


def apply_input(msg: TokenInput, stored: IssuedToken | Removed[IssuedToken] | None) -> IssuedToken | None:
    """The token after an input; None when the input changes nothing."""
    # Tokens are never removed (mod_tokens.md 2.1); a tombstone would only be its last state.
    before = stored.last if isinstance(stored, Removed) else stored
    if isinstance(msg, TokenUpsert):
        incoming = msg.token
        if before is not None and is_stale(incoming.last_updated, before.token.last_updated):
            return None
        invalid_as = None
        if not incoming.valid:
            invalid_as = (before.invalid_as if before is not None else None) or Allowed.BLOCKED
        return _next(before, incoming, invalid_as)
    if before is None or is_stale(msg.at, before.token.last_updated):
        return None
    at = to_utc(msg.at)
    if not before.token.valid and at == to_utc(before.token.last_updated):
        return None
    reason = Allowed.BLOCKED if isinstance(msg, TokenBlock) else Allowed.EXPIRED
    return _next(before, msgspec.structs.replace(before.token, valid=False, last_updated=at), reason)


class TokenInputs:
    """The input rules of our tokens, for the generic input loop (shared/modules/sender.py)."""

    def key_of(self, msg: TokenInput) -> str:
        """The uid of the token an input changes."""
        return msg.token.uid if isinstance(msg, TokenUpsert) else msg.token_uid

    def apply(self, msg: TokenInput, stored: IssuedToken | Removed[IssuedToken] | None) -> IssuedToken | None:
        """The token after an input (pure)."""
        return apply_input(msg, stored)

    def part_of(self, msg: TokenInput) -> str:
        """The kind of input (the changed fields come from the state itself)."""
        return tag_of(type(msg))

    def changed(self, record: OwnRecord[IssuedToken], parts: list[str]) -> Message:
        """TokenChanged with the plain 2.1.1 Token and the fields this version changed."""
        issued = record.value
        return TokenChanged(token=issued.token, version=record.version, changed=list(issued.changed))
