"""GET /ocpi/versions and GET /ocpi/2.1.1 (version details)."""

from __future__ import annotations

from aiohttp import web

from services.gateway.access import principal_for_handshake
from services.gateway.endpoints import VERSION, endpoints_for, version_url
from services.gateway.responses import success
from services.gateway.state import gateway_of
from shared.ocpi.v2_1_1.versions import Version, VersionDetail, VersionNumber


async def get_versions(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    await principal_for_handshake(request)
    return success([Version(version=VERSION, url=version_url(gateway.settings))])


async def get_version_details(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    principal = await principal_for_handshake(request)
    detail = VersionDetail(
        version=VersionNumber.V2_1_1,
        endpoints=endpoints_for(gateway.settings, principal.partner.role),
    )
    return success(detail)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ocpi/versions", get_versions)
    app.router.add_get(f"/ocpi/{VERSION}", get_version_details)
