"""What the gateway's request handlers are wired with (the composition root fills it in)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from services.gateway.auth import TokenCache
from services.gateway.partner_client import PartnerClient
from services.gateway.partners import PartnerRepository
from services.gateway.ratelimit import TokenBuckets
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.sealing import Sealer
from shared.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    broker: Broker
    rpc: RpcClient
    partners: PartnerRepository
    cache: TokenCache
    client: PartnerClient
    # Seals the partner tokens the dispatcher asks for (token_requests.py); the registry has its own.
    sealer: Sealer
    # Per-token request budgets (INBOUND_RATE_PER_TOKEN); the default has the limit off.
    budgets: TokenBuckets = field(default_factory=lambda: TokenBuckets(0.0, 1))


GATEWAY = web.AppKey("gateway", Gateway)


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
