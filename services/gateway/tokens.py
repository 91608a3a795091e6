"""Credentials tokens: generated with enough entropy, stored only as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    """A fresh credentials token (43 URL-safe characters; OCPI allows 64)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What we store instead of a token we issued: the token has 256 bits of entropy, so no salt."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def parse_authorization(header: str | None) -> str | None:
    """The token of an `Authorization: Token <token>` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "token" or not token or any(c.isspace() for c in token):
        return None
    return token
