"""What the gateway's request handlers are wired with (the composition root fills it in)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.gateway.auth import TokenCache
from services.gateway.partner_client import PartnerClient
from services.gateway.partners import PartnerRepository
from shared.messaging.broker import Broker
from shared.messaging.rpc import RpcClient
from shared.settings import Settings


@dataclass
class Gateway:
    settings: Settings
    broker: Broker
    rpc: RpcClient
    partners: PartnerRepository
    cache: TokenCache
    client: PartnerClient


GATEWAY = web.AppKey("gateway", Gateway)


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
