"""docs/openapi.yaml stays what the generator writes, and describes exactly the routes the gateway serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web

from docs import generate_openapi as openapi
from services.gateway import credentials_routes, module_routes, versions_routes
from shared.ocpi.v2_1_1.modules import MODULES

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.build_document()


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def _served() -> set[tuple[str, str]]:
    """(method, path template) of every route on the OCPI listener, as app.py adds them."""
    app = web.Application()
    for routes in (versions_routes, credentials_routes, module_routes):
        routes.add_routes(app)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def test_committed_openapi_is_what_the_generator_writes() -> None:
    committed = (ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8")
    assert committed == openapi.render(), "docs/openapi.yaml is stale: run python -m docs.generate_openapi"


def test_every_served_route_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    """The authorization POST is documented ahead of its route (another branch adds it)."""
    authorize = ("POST", openapi.AUTHORIZE_PATH)
    assert _documented(document) - {authorize} == _served() - {authorize}


def test_path_ids_carry_the_module_tables_max_lengths(document: dict[str, Any]) -> None:
    for module in MODULES.values():
        for level in module.levels:
            for path, item in document["paths"].items():
                for op in (item[m] for m in item if m in METHODS):
                    for parameter in op.get("parameters", []):
                        if parameter["in"] == "path" and parameter["name"] == level.name:
                            assert parameter["schema"]["maxLength"] == level.max_id_length, path


def test_receiver_bodies_are_the_levels_types(document: dict[str, Any]) -> None:
    location = document["paths"]["/ocpi/emsp/2.1.1/locations/{country_code}/{party_id}/{location_id}"]
    assert location["put"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Location"
    }
    assert location["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LocationPatch"
    }
    last_updated = document["components"]["schemas"]["Location"]["properties"]["last_updated"]
    assert last_updated["format"] == "date-time"


def test_every_answer_is_the_envelope(document: dict[str, Any]) -> None:
    failure = document["components"]["responses"]["Failure"]["content"]["application/json"]["schema"]
    assert failure["required"] == ["status_code", "timestamp"] and "data" not in failure["properties"]
    for item in document["paths"].values():
        for method in METHODS & set(item):
            answers = item[method]["responses"]
            ok = answers["200"]["content"]["application/json"]["schema"]
            assert ok["required"] == ["status_code", "timestamp"] and "data" in ok["properties"]
            assert {"400", "401", "404", "500", "503"} <= set(answers)


def test_schemathesis_reads_every_operation() -> None:
    """The document is valid OpenAPI as the fuzzer reads it: no operation fails to load."""
    schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(_documented(openapi.build_document()))
