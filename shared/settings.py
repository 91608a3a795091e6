"""Deployment settings, read from environment variables by each process's entrypoint."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping

import msgspec


class UnsafeSettings(SystemExit):
    """A setting would leave the deployment open; the process stops before serving anything."""


class Role(enum.Enum):
    """The OCPI role a deployment plays towards its partners."""

    CPO = "CPO"
    EMSP = "EMSP"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a process needs to know about its deployment."""

    namespace: str = "ocpi"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str = "mongodb://127.0.0.1:27017"
    public_url: str = "http://127.0.0.1:8080"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    health_port: int = 0
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    country_code: str = "NL"
    party_id: str = "ABC"
    business_name: str = "OCPI Platform"
    roles: tuple[Role, ...] = (Role.CPO, Role.EMSP)
    # No default: every process refuses to start without a long random one (refuse_unsafe, H3).
    admin_token: str = ""
    rpc_timeout: float = 5.0
    page_limit_max: int = 100
    log_format: str = "auto"
    log_level: str = "info"
    push_timeout: float = 5.0
    push_max_attempts: int = 8
    push_backoff_base: float = 0.2
    push_backoff_max: float = 30.0
    push_workers: int = 16
    # Cap on a partner's answer, on the wire and once inflated; past it the call fails (finding H1).
    outbound_max_body_bytes: int = 4 * 1024 * 1024
    # Partner URLs may be http, and reach loopback/private/link-local addresses (finding M1). Both
    # off in production; `make run` and the tests turn both on so local deployments can connect.
    # Cap on a request body at the gateway (the admin API gets 8 times as much); 413 past it (L1).
    inbound_max_body_bytes: int = 2 * 1024 * 1024
    outbound_allow_http: bool = False
    outbound_allow_private: bool = False
    # Requests per second each partner token may send to one gateway replica, sustained, and the
    # burst it may send at once; beyond that HTTP 429 (M6/L7). 0 turns the limit off.
    inbound_rate_per_token: float = 500.0
    inbound_rate_burst: int = 1000
    # A TOKEN_A handed over by the operator works this long after it was issued (s); then it is
    # refused like an unknown token and the operator issues a new one (review L18).
    token_a_ttl: float = 7 * 24 * 3600.0
    # Keys sealing the tokens partners gave us (base64 of 32 bytes, comma-separated, the first seals):
    # gateway and dispatcher refuse to start without them (shared/sealing.py, review M5).
    partner_token_keys: str = ""
    # ---- tokens (mod_tokens.md); see services/tokens/README.md ----
    # eMSP side: the internal service (RPC routing key) that decides real-time authorizations; empty:
    # the platform decides from the token alone (valid, not blocked, not expired).
    tokens_authorize_delegate: str = ""
    tokens_authorize_deadline: float = 1.0
    # The `allowed` answered when the delegate does not answer within its deadline.
    tokens_authorize_fallback: str = "NOT_ALLOWED"
    # Answer 2002 to a real-time authorization without LocationReferences.
    tokens_authorize_requires_location: bool = False
    # CPO side: how long a charger's authorization waits for the token's eMSP (real-time).
    tokens_realtime_deadline: float = 2.0
    # Ask the eMSP in real time for ALLOWED tokens too (when it answers in time; else the local answer).
    tokens_realtime_for_allowed: bool = False
    # The connection (partner id, usually a hub) asked about tokens we do not hold; empty: refused.
    tokens_unknown_via: str = ""
    # Upper bound on how long a cached partner token may answer without the database (s).
    tokens_cache_ttl: float = 30.0
    # CPO side: a running session's meter values reach its eMSP at most this often (s, per session);
    # a start and a stop always go at once.
    sessions_push_interval: float = 30.0
    # The currency of a session whose connector has no tariff (ISO 4217).
    sessions_currency: str = "EUR"
    # eMSP side of CDRs: a received CDR whose total_cost differs from ours by more is DISPUTED.
    cdrs_price_tolerance: float = 0.01

    @property
    def database_prefix(self) -> str:
        """Prefix of every MongoDB database this deployment owns."""
        return self.namespace.replace(".", "_")

    def has_role(self, role: Role) -> bool:
        return role in self.roles


_ENV: dict[str, str] = {
    "namespace": "OCPI_NAMESPACE",
    "amqp_url": "AMQP_URL",
    "mongo_url": "MONGO_URL",
    "public_url": "OCPI_PUBLIC_URL",
    "gateway_host": "GATEWAY_HOST",
    "gateway_port": "GATEWAY_PORT",
    "health_port": "HEALTH_PORT",
    "admin_host": "ADMIN_HOST",
    "admin_port": "ADMIN_PORT",
    "country_code": "OCPI_COUNTRY_CODE",
    "party_id": "OCPI_PARTY_ID",
    "business_name": "OCPI_BUSINESS_NAME",
    "roles": "OCPI_ROLES",
    "admin_token": "OCPI_ADMIN_TOKEN",
    "rpc_timeout": "RPC_TIMEOUT_SECONDS",
    "page_limit_max": "PAGE_LIMIT_MAX",
    "log_format": "LOG_FORMAT",
    "log_level": "LOG_LEVEL",
    "push_timeout": "PUSH_TIMEOUT_SECONDS",
    "push_max_attempts": "PUSH_MAX_ATTEMPTS",
    "push_backoff_base": "PUSH_BACKOFF_BASE_SECONDS",
    "push_backoff_max": "PUSH_BACKOFF_MAX_SECONDS",
    "push_workers": "PUSH_WORKERS",
    "outbound_max_body_bytes": "OUTBOUND_MAX_BODY_BYTES",
    "inbound_max_body_bytes": "INBOUND_MAX_BODY_BYTES",
    "outbound_allow_http": "OUTBOUND_ALLOW_HTTP",
    "outbound_allow_private": "OUTBOUND_ALLOW_PRIVATE",
    "inbound_rate_per_token": "INBOUND_RATE_PER_TOKEN",
    "inbound_rate_burst": "INBOUND_RATE_BURST",
    "token_a_ttl": "TOKEN_A_TTL_SECONDS",
    "partner_token_keys": "PARTNER_TOKEN_KEYS",
    "tokens_authorize_delegate": "TOKENS_AUTHORIZE_DELEGATE",
    "tokens_authorize_deadline": "TOKENS_AUTHORIZE_DEADLINE_SECONDS",
    "tokens_authorize_fallback": "TOKENS_AUTHORIZE_FALLBACK",
    "tokens_authorize_requires_location": "TOKENS_AUTHORIZE_REQUIRES_LOCATION",
    "tokens_realtime_deadline": "TOKENS_REALTIME_DEADLINE_SECONDS",
    "tokens_realtime_for_allowed": "TOKENS_REALTIME_FOR_ALLOWED",
    "tokens_unknown_via": "TOKENS_UNKNOWN_VIA",
    "tokens_cache_ttl": "TOKENS_CACHE_TTL_SECONDS",
    "sessions_push_interval": "SESSIONS_PUSH_INTERVAL_SECONDS",
    "sessions_currency": "SESSIONS_CURRENCY",
    "cdrs_price_tolerance": "CDRS_PRICE_TOLERANCE",
}


def env_names() -> Mapping[str, str]:
    """Field name -> environment variable, for documentation and tests."""
    return dict(_ENV)


# The values of mod_tokens.md's `Allowed` (not imported: settings sit below the OCPI models).
_ALLOWED_VALUES = frozenset({"ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"})


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; overrides win (tests use them)."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field, var in _ENV.items():
        if var in env and env[var] != "":
            value: object = env[var]
            if field == "roles":
                value = [r.strip().upper() for r in str(value).split(",") if r.strip()]
            raw[field] = value
    raw.update(overrides)
    settings = msgspec.convert(raw, Settings, strict=False)
    if not settings.roles:
        raise ValueError("OCPI_ROLES must name at least one of CPO, EMSP")
    if settings.push_workers < 1:
        raise ValueError("PUSH_WORKERS must be at least 1")
    if settings.outbound_max_body_bytes < 1024:
        raise ValueError("OUTBOUND_MAX_BODY_BYTES must be at least 1024")
    if settings.inbound_max_body_bytes < 1024:
        raise ValueError("INBOUND_MAX_BODY_BYTES must be at least 1024")
    if settings.inbound_rate_per_token < 0 or settings.inbound_rate_burst < 1:
        raise ValueError("INBOUND_RATE_PER_TOKEN must not be negative and INBOUND_RATE_BURST at least 1")
    if settings.token_a_ttl <= 0:
        raise ValueError("TOKEN_A_TTL_SECONDS must be positive")
    if settings.tokens_authorize_fallback not in _ALLOWED_VALUES:
        raise ValueError(f"TOKENS_AUTHORIZE_FALLBACK must be one of {', '.join(sorted(_ALLOWED_VALUES))}")
    if len(settings.country_code) != 2 or not 1 <= len(settings.party_id) <= 3:
        raise ValueError("OCPI_COUNTRY_CODE must have 2 characters and OCPI_PARTY_ID 1 to 3")
    return msgspec.structs.replace(settings, public_url=settings.public_url.rstrip("/"))


# Tokens that appeared in our own files or are typical placeholders: anyone may know them.
_KNOWN_ADMIN_TOKENS = frozenset(
    {"change-me-admin-token", "local-admin-token", "replace-with-a-long-random-token"}
)
_PLACEHOLDER_WORDS = ("change-me", "changeme", "replace", "placeholder", "example", "admin-token")
ADMIN_TOKEN_MIN_LENGTH = 32


def admin_token_problem(token: str) -> str | None:
    """Why this admin token is unsafe, or None: it must be long, random-looking and no placeholder."""
    if not token:
        return "is not set"
    lowered = token.lower()
    if lowered in _KNOWN_ADMIN_TOKENS or any(word in lowered for word in _PLACEHOLDER_WORDS):
        return "is a default or placeholder value"
    if len(token) < ADMIN_TOKEN_MIN_LENGTH:
        return f"is shorter than {ADMIN_TOKEN_MIN_LENGTH} characters"
    if len(set(token)) < 10:
        return "is not random (too few distinct characters)"
    return None


def refuse_unsafe(settings: Settings) -> None:
    """Stop the process (before it connects or listens) when a setting would leave it open."""
    problem = admin_token_problem(settings.admin_token)
    if problem is not None:
        raise UnsafeSettings(
            f"refusing to start: OCPI_ADMIN_TOKEN {problem}; set it to a long random value, "
            "e.g. `openssl rand -hex 32` (see docs/security.md)"
        )
