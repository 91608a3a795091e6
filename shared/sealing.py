"""Sealing the partner tokens we keep (security review M5): AES-256-GCM under the deployment's keys.

A partner's token lets whoever holds it call that partner as us, so it is never stored or sent on the
broker in clear. PARTNER_TOKEN_KEYS lists one or more 32-byte keys (base64, comma-separated): the
first seals, every one of them opens, so a key is rotated by putting a new one first and removing the
old one once every stored token was sealed again (each process does that when it starts; see
docs/security.md). Only the gateway and the dispatcher hold the keys.

A sealed value is `s1.<key id>.<base64url(nonce | ciphertext | tag)>`. The key id (the first bytes of
the key's SHA-256) tells which key opens it without trying each, and names a missing key in errors
without revealing it. The context (the partner's id) is authenticated with the ciphertext, so a sealed
token copied into another partner's record does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.asynchronous.collection import AsyncCollection

from shared.settings import Settings, UnsafeSettings

SETTING = "PARTNER_TOKEN_KEYS"
_PREFIX = "s1"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value cannot be opened: not sealed, sealed under a key we do not hold, or altered."""


def key_id(key: bytes) -> str:
    """A short public name of a key: 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(setting: str) -> list[bytes]:
    """The keys of PARTNER_TOKEN_KEYS, first one first; ValueError naming the setting when unusable."""
    keys: list[bytes] = []
    for position, text in enumerate((part.strip() for part in setting.split(",")), start=1):
        if not text:
            continue
        # Standard (`openssl rand -base64 32`) and URL-safe base64 alike, padded or not.
        normal = text.replace("-", "+").replace("_", "/")
        try:
            key = base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{SETTING}: key {position} is not base64") from None
        if len(key) != _KEY_BYTES:
            raise ValueError(f"{SETTING}: key {position} has {len(key)} bytes, not {_KEY_BYTES}")
        keys.append(key)
    if not keys:
        raise ValueError(f"{SETTING} is not set")
    if len({key_id(key) for key in keys}) != len(keys):
        raise ValueError(f"{SETTING} names the same key twice")
    return keys


def new_key() -> str:
    """A fresh key as PARTNER_TOKEN_KEYS takes it (what `openssl rand -base64 32` prints)."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class Sealer:
    """Seals with the first key, opens with any; `context` binds a value to the record it is in."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_setting(cls, setting: str) -> Sealer:
        return cls(tuple(parse_keys(setting)))

    @property
    def current(self) -> str:
        """The id of the key that seals."""
        return key_id(self.keys[0])

    def seal(self, plain: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plain.encode("utf-8"), context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_PREFIX}.{self.current}.{body}"

    def open(self, sealed: str, context: str) -> str:
        prefix, _, rest = sealed.partition(".")
        kid, _, body = rest.partition(".")
        if prefix != _PREFIX or not body:
            raise SealError("not a sealed value")
        key = next((k for k in self.keys if key_id(k) == kid), None)
        if key is None:
            raise SealError(f"sealed with key {kid}, which {SETTING} does not hold")
        try:
            raw = base64.urlsafe_b64decode(body)
            plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
        except (binascii.Error, ValueError, InvalidTag):
            failure = f"a value sealed with key {kid} does not open: altered, or not for {context!r}"
            raise SealError(failure) from None
        return plain.decode("utf-8")

    def is_current(self, sealed: str) -> bool:
        """Sealed with the key that seals now (else it is sealed again when its process starts)."""
        return sealed.startswith(f"{_PREFIX}.{self.current}.")


def sealer_for(settings: Settings) -> Sealer:
    """The deployment's sealer; the process stops (naming the setting) when the keys are unusable."""
    try:
        return Sealer.from_setting(settings.partner_token_keys)
    except ValueError as exc:
        raise UnsafeSettings(
            f"refusing to start: {exc}; the gateway and the dispatcher keep partners' tokens sealed "
            "with it. Set it to `openssl rand -base64 32` (see docs/security.md)"
        ) from None


async def seal_stored(collection: AsyncCollection[Any], sealer: Sealer, clear: str, sealed: str) -> int:
    """Seal, in every document of `collection`, a token stored in clear under `clear` (by a version
    before sealing) or sealed under an older key in `sealed`; how many documents changed. The
    document's `_id` is the context. Run when a process starts, before it serves; a value no key
    opens raises SealError naming the missing key (the process must not run without it).
    """
    count = 0
    query = {"$or": [{clear: {"$type": "string"}}, {sealed: {"$type": "string"}}]}
    async for doc in collection.find(query, {clear: 1, sealed: 1}):
        stored = doc.get(sealed)
        if isinstance(stored, str) and sealer.is_current(stored) and clear not in doc:
            continue
        token = sealer.open(stored, doc["_id"]) if isinstance(stored, str) else doc[clear]
        # Compare-and-set on what was read: a write meanwhile stored its own, newer seal.
        result = await collection.update_one(
            {"_id": doc["_id"], sealed: stored, clear: doc.get(clear)},
            {"$set": {sealed: sealer.seal(token, doc["_id"])}, "$unset": {clear: ""}},
        )
        count += result.modified_count
    return count
