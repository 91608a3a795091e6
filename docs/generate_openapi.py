"""Write docs/openapi.yaml: the gateway's partner-facing OCPI 2.1.1 interface as OpenAPI 3.1.

Run from the repository root after changing a route or an OCPI model: `python -m docs.generate_openapi`.
`tests/unit/test_openapi.py` fails when the committed document is not what this script writes, and
when its operations are not the routes the gateway registers.

The object modules' routes come from the module table (`shared/ocpi/v2_1_1/modules.py`) through the
gateway's own URL builders, the schemas from the msgspec Structs the gateway decodes with, so neither
can drift from the code. `tests/e2e/test_fuzz_gateway.py` fuzzes both deployments from this document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docs.generate_asyncapi import schemas
from docs.yaml_text import generator_main, yaml_text
from services.gateway.endpoints import VERSION
from services.gateway.module_calls import QUERY_INT_MAX
from services.gateway.module_routes import COLLECTION_METHODS, PARTY_ID_LENGTHS, receiver_url, sender_url
from shared.ocpi.v2_1_1.credentials import Credentials
from shared.ocpi.v2_1_1.modules import MODULES, TOKENS, Audience, OcpiModule
from shared.ocpi.v2_1_1.tokens import AuthorizationInfo, LocationReferences, TokenType
from shared.ocpi.v2_1_1.versions import Version, VersionDetail
from shared.settings import Role

OUTPUT = Path(__file__).resolve().parent / "openapi.yaml"
_REF = "#/components/schemas/{name}"
# The real-time authorization of a token (mod_tokens.md 3.2.2): not an object route of the table.
AUTHORIZE_PATH = f"/ocpi/emsp/{VERSION}/tokens/{{token_uid}}/authorize"
TOKEN_UID_MAX = TOKENS.levels[0].max_id_length
# Every failure the gateway renders (shared/errors.py's table, the middleware's 404/405/413, 5xx).
ERROR_STATUSES = ("400", "401", "403", "404", "405", "413", "429", "500", "503")


def ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def envelope(data: dict[str, Any] | None) -> dict[str, Any]:
    """The 2.1.1 response (transport_and_format.md 4.1.7): `data` as given, absent on errors."""
    properties: dict[str, Any] = {
        "status_code": {"type": "integer", "description": "1xxx success, 2xxx client, 3xxx server error"},
        "status_message": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
    }
    if data is not None:
        properties["data"] = data
    return {
        "type": "object",
        "required": ["status_code", "timestamp"],
        "properties": properties,
        "additionalProperties": False,
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def responses(
    data: dict[str, Any] | None, paged: bool = False, created: dict[str, Any] | None = None
) -> dict[str, Any]:
    """200 with `data` typed for the route, the error envelope for every other status; `created`
    adds a 201 with those headers and puts them on the 200 too (a repeated POST is answered 200)."""
    ok: dict[str, Any] = {
        # A 200 may carry a 2xxx/3xxx without data too (the handshake's 3001 does).
        "description": "OCPI envelope; `data` is present when status_code is 1000",
        "content": _json(envelope(data if data is not None else {"type": "null"})),
    }
    if paged:
        ok["headers"] = {
            "X-Total-Count": {"schema": {"type": "integer", "minimum": 0}},
            "X-Limit": {"schema": {"type": "integer", "minimum": 1}},
            "Link": {"description": 'The next page: `<url>; rel="next"`', "schema": {"type": "string"}},
        }
    failures = {status: {"$ref": "#/components/responses/Failure"} for status in ERROR_STATUSES}
    if created is None:
        return {"200": ok, **failures}
    ok["description"] = "The same object was posted before: nothing changed (status_code 1000)"
    ok["headers"] = created
    new = {
        "description": "Stored (status_code 1000, no data)",
        "headers": created,
        "content": _json(envelope({"type": "null"})),
    }
    return {"200": ok, "201": new, **failures}


def path_parameter(name: str, max_length: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": max_length},
    }


def query_parameter(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def page_parameters(module: OcpiModule) -> list[dict[str, Any]]:
    counted = {"type": "integer", "minimum": 0, "maximum": QUERY_INT_MAX}
    moment = {"type": "string", "format": "date-time"}
    return [
        query_parameter("offset", counted),
        query_parameter("limit", counted),
        query_parameter("date_from", moment, required=module.list_needs_date_from),
        query_parameter("date_to", moment),
        # Opaque; we hand it out in the Link header of a page.
        query_parameter("cursor", {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}),
    ]


def body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(ref(name))}


def operation(op_id: str, summary: str, tag: str, answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "tags": [tag], **extra, "responses": answer}


def _partners(role: Role) -> str:
    return f"for registered {role.value} partners"


def _own_tokens_only(module: OcpiModule) -> dict[str, str]:
    """The list of a module sent to the token's owner only holds the caller's own parties' objects."""
    if module.audience is not Audience.TOKEN_OWNER:
        return {}
    return {"description": f"Only the {module.name} of the caller's own parties' tokens."}


def collection_paths(module: OcpiModule) -> dict[str, dict[str, Any]]:
    """The Receiver methods at the module's URL itself (a CDR's POST, mod_cdrs.md 2.2.2)."""
    methods: dict[str, Any] = {}
    level = module.levels[0]
    kind = level.object_type.__name__
    location = {
        "Location": {
            "description": (
                f"Where the partner can GET the {kind} again: this URL followed by "
                f"`/{{country_code}}/{{party_id}}/{{{level.name}}}` (the posting partner's party)"
            ),
            "schema": {"type": "string", "format": "uri"},
        }
    }
    for method in sorted(module.receiver_methods & COLLECTION_METHODS.keys()):
        methods[method.lower()] = operation(
            f"{module.name}Receiver{method.title()}{kind}",
            f"{method} a new {kind} of the caller's own party (Receiver interface, "
            f"{_partners(module.sender_role)})",
            module.name,
            responses(None, created=location),
            description=(
                f"The {kind} belongs to the posting partner's own party (2.1.1 names none in the URL). "
                f"It is stored once: posted again with the same content it is answered 200 with the "
                f"same Location, with other content 400 / 2001 ({kind}s never change)."
            ),
            requestBody=body(kind),
        )
    return {receiver_url(module): methods} if methods else {}


def module_paths(module: OcpiModule) -> dict[str, dict[str, Any]]:
    """The Sender and Receiver routes of one module, as module_routes.add_module_routes adds them."""
    name, top = module.name, module.levels[0].object_type.__name__
    readers = _partners(module.receiver_role)
    paths: dict[str, dict[str, Any]] = {
        sender_url(module): {
            "get": operation(
                f"{name}SenderList",
                f"List our {name} (Sender interface, {readers})",
                name,
                responses({"type": "array", "items": ref(top)}, paged=True),
                **_own_tokens_only(module),
                parameters=page_parameters(module),
            )
        },
        **collection_paths(module),
    }
    ids: list[dict[str, Any]] = []
    party = [path_parameter(key, length) for key, length in PARTY_ID_LENGTHS.items()]
    suffix = ""
    for level in module.levels:
        suffix += "/{" + level.name + "}"
        ids.append(path_parameter(level.name, level.max_id_length))
        kind = level.object_type.__name__
        if module.sender_get:
            paths[sender_url(module) + suffix] = {
                "get": operation(
                    f"{name}SenderGet{kind}",
                    f"One of our {kind} objects ({readers})",
                    name,
                    responses(ref(kind)),
                    parameters=list(ids),
                )
            }
        writers = _partners(module.sender_role)
        methods: dict[str, Any] = {}
        for method in sorted(module.receiver_methods - COLLECTION_METHODS.keys()):
            verb = method.lower()
            extra: dict[str, Any] = {"parameters": [*party, *ids]}
            data: dict[str, Any] | None = None
            if method == "GET":
                data = ref(kind)
            elif method == "PUT":
                extra["requestBody"] = body(kind)
            elif method == "PATCH":
                extra["requestBody"] = body(level.patch_type.__name__)
            methods[verb] = operation(
                f"{name}Receiver{method.title()}{kind}",
                f"{method} a {kind} of the caller's own party (Receiver interface, {writers})",
                name,
                responses(data),
                **extra,
            )
        paths[receiver_url(module) + "/{country_code}/{party_id}" + suffix] = methods
    return paths


def handshake_paths() -> dict[str, dict[str, Any]]:
    """Versions, version details and credentials (credentials.md): TOKEN_A until registered."""
    credentials = responses(ref("Credentials"))
    anyone = "for a partner's TOKEN_A or registered token"
    return {
        "/ocpi/versions": {
            "get": operation(
                "getVersions",
                f"The versions we speak ({anyone})",
                "versions",
                responses({"type": "array", "items": ref("Version")}),
            )
        },
        f"/ocpi/{VERSION}": {
            "get": operation(
                "getVersionDetails",
                f"Our {VERSION} endpoints for the caller's role ({anyone})",
                "versions",
                responses(ref("VersionDetail")),
            )
        },
        f"/ocpi/{VERSION}/credentials": {
            "get": operation("getCredentials", f"Our credentials ({anyone})", "credentials", credentials),
            "post": operation(
                "registerCredentials",
                "Register (only with the TOKEN_A, once): we fetch your endpoints and issue a token",
                "credentials",
                credentials,
                requestBody=body("Credentials"),
            ),
            "put": operation(
                "updateCredentials",
                "Update (registered partners): we fetch your endpoints again and rotate your token",
                "credentials",
                credentials,
                requestBody=body("Credentials"),
            ),
            "delete": operation(
                "deleteCredentials",
                "Unregister (registered partners): the token stops working everywhere",
                "credentials",
                responses(None),
            ),
        },
    }


def authorize_path() -> dict[str, dict[str, Any]]:
    """Real-time authorization of one of our tokens (mod_tokens.md 3.2.2), for CPO partners."""
    return {
        AUTHORIZE_PATH: {
            "post": operation(
                "tokensAuthorize",
                f"Real-time authorization of one of our tokens ({_partners(Role.CPO)})",
                "tokens",
                responses(ref("AuthorizationInfo")),
                parameters=[
                    path_parameter("token_uid", TOKEN_UID_MAX),
                    query_parameter("type", {**ref("TokenType"), "default": TokenType.RFID.value}),
                ],
                requestBody=body("LocationReferences", required=False),
            )
        }
    }


def component_types() -> tuple[type[Any], ...]:
    """Every Struct a route reads or answers with."""
    kinds: list[type[Any]] = [Version, VersionDetail, Credentials, LocationReferences, AuthorizationInfo]
    for module in MODULES.values():
        for level in module.levels:
            kinds += [level.object_type, level.patch_type]
    return tuple(dict.fromkeys(kinds))


DESCRIPTION = f"""\
The partner-facing HTTP interface of the OCPI {VERSION} platform (the gateway's OCPI listener,
`GATEWAY_PORT`). The operator's admin API is on another listener and is not described here.

Every request carries `Authorization: Token <token>`. Which token may do what:

| token | versions, version details, credentials GET | credentials POST | PUT, DELETE | module routes |
|---|---|---|---|---|
| none, unknown, unregistered | 401 | 401 | 401 / 405 | 401 |
| TOKEN_A (partner added, not registered) | 200 | the handshake, once | 405 | 401 |
| registered partner's token | 200 | 405 | update / unregister | its role's interface (*) |

(*) A CPO partner uses our eMSP routes, an eMSP partner our CPO routes (403 otherwise); Receiver
routes only for the caller's own parties (403 otherwise). The sessions and CDRs lists hold only the
objects of the caller's own parties' tokens; a CDR is POSTed to the module's URL itself and belongs
to the posting partner's own party.

Every answer, errors included, is the {VERSION} envelope: `status_code`, `timestamp`, and
`status_message` and `data` where they apply. Invalid input is HTTP 400 with status 2001 and a message
naming the field; a request over the caller's budget is HTTP 429 with `Retry-After`. Every answer
carries `X-Request-ID` (the caller's when it is 1-64 of `A-Za-z0-9._-`, else a fresh one).

Generated by `python -m docs.generate_openapi` from the module table and the msgspec models.
"""


def build_document() -> dict[str, Any]:
    """The OpenAPI document as builtins."""
    paths = handshake_paths()
    for module in MODULES.values():
        paths.update(module_paths(module))
    paths.update(authorize_path())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OCPI 2.1.1 platform: partner interface",
            "version": VERSION,
            "description": DESCRIPTION.strip(),
        },
        "servers": [
            {"url": "http://127.0.0.1:8080", "description": "make run (partners use your TLS ingress)"}
        ],
        "security": [{"OcpiToken": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "OcpiToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Token <token>`: a TOKEN_A, or the token issued in the handshake",
                }
            },
            "responses": {
                "Failure": {
                    "description": "OCPI envelope without data: status_code 2xxx or 3xxx and a message",
                    "content": _json(envelope(None)),
                }
            },
            "schemas": schemas(component_types()),
        },
    }


HEADER = (
    "# Generated by `python -m docs.generate_openapi` from the module table and OCPI models: do not edit.\n"
)


def render() -> str:
    """The text of docs/openapi.yaml."""
    return HEADER + yaml_text(build_document())


def main(argv: list[str] | None = None) -> int:
    return generator_main(OUTPUT, render, "docs.generate_openapi", argv)


if __name__ == "__main__":
    raise SystemExit(main())
