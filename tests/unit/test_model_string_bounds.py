"""Every string of a partner's object is within the spec's length (issue item 7).

The table below is written from the 2.1.1 spec (types.md, credentials.md, version_information_endpoint.md,
mod_locations.md, mod_tokens.md, mod_sessions.md, mod_cdrs.md, mod_tariffs.md, mod_commands.md): one
entry per string field, `URL` for the URL type (string(255)). The test walks the msgspec models the
gateway decodes partners' bodies with, nested types included, and checks each string field against it:
a field without a bound, with another bound, or missing from the table fails. DateTime fields must be
datetimes (msgspec parses them; a free string would let any text through).
"""

from __future__ import annotations

from typing import Any

import msgspec.inspect as mi

from services.cdrs.cpo_rules import NO_TARIFF
from shared.ocpi.v2_1_1 import (
    cdrs,
    commands,
    credentials,
    locations,
    sessions,
    tariffs,
    tokens,
    types,
    versions,
)
from shared.ocpi.v2_1_1.modules import MODULES
from shared.ocpi.v2_1_1.types import OcpiStruct

URL = "URL"
URL_PATTERN = types.URL.__metadata__[0].pattern  # type: ignore[attr-defined]

SPEC: dict[str, dict[str, int | str]] = {
    # types.md
    "DisplayText": {"language": 2, "text": 512},
    # mod_locations.md
    "BusinessDetails": {"name": 100, "website": URL},
    "Image": {"url": URL, "thumbnail": URL, "type": 4},
    "GeoLocation": {"latitude": 10, "longitude": 11},
    "AdditionalGeoLocation": {"latitude": 10, "longitude": 11},
    "EnergyMix": {"supplier_name": 64, "energy_product_name": 64},
    "RegularHours": {"period_begin": 5, "period_end": 5},
    "Connector": {"id": 36, "tariff_id": 36, "terms_and_conditions": URL},
    "EVSE": {"uid": 39, "evse_id": 48, "floor_level": 4, "physical_reference": 16},
    "Location": {
        "id": 39,
        "name": 255,
        "address": 45,
        "city": 45,
        "postal_code": 10,
        "country": 3,
        "time_zone": 255,
    },
    # mod_tokens.md
    "Token": {"uid": 36, "auth_id": 36, "visual_number": 64, "issuer": 64, "language": 2},
    "LocationReferences": {"location_id": 39, "evse_uids": 39, "connector_ids": 36},
    # mod_sessions.md
    "Session": {"id": 36, "auth_id": 36, "meter_id": 255, "currency": 3},
    # mod_cdrs.md
    "CDR": {"id": 36, "auth_id": 36, "meter_id": 255, "currency": 3, "remark": 255},
    # mod_tariffs.md
    "Tariff": {"id": 36, "currency": 3, "tariff_alt_url": URL},
    "TariffRestrictions": {"start_time": 5, "end_time": 5, "start_date": 10, "end_date": 10},
    # mod_commands.md
    "ReserveNow": {"response_url": URL, "location_id": 39, "evse_uid": 39},
    "StartSession": {"response_url": URL, "location_id": 39, "evse_uid": 39},
    "StopSession": {"response_url": URL, "session_id": 36},
    "UnlockConnector": {"response_url": URL, "location_id": 39, "evse_uid": 39, "connector_id": 36},
    # credentials.md
    "Credentials": {"token": 64, "url": URL, "party_id": 3, "country_code": 2},
    # version_information_endpoint.md (version and identifier are enums in the spec; we read any
    # value a partner lists, bounded)
    "Version": {"version": 10, "url": URL},
    "Endpoint": {"identifier": 255, "url": URL},
}
# A PATCH body has the fields of its object, with the same bounds.
PATCHES = {"LocationPatch": "Location", "EVSEPatch": "EVSE", "ConnectorPatch": "Connector",
           "TokenPatch": "Token", "SessionPatch": "Session", "TariffPatch": "Tariff"}  # fmt: skip

MODELS = (types, locations, tokens, sessions, cdrs, tariffs, commands, credentials, versions)


def _models() -> list[type[OcpiStruct]]:
    return [
        value
        for module in MODELS
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, OcpiStruct) and value is not OcpiStruct
    ]


def _leaves(info: Any) -> list[Any]:
    """The non-container types a field's type is made of (list items and union members)."""
    if isinstance(info, mi.ListType):
        return _leaves(info.item_type)
    if isinstance(info, mi.UnionType):
        return [leaf for member in info.types for leaf in _leaves(member)]
    return [info]


def _string_fields() -> dict[tuple[str, str], list[mi.StrType]]:
    found: dict[tuple[str, str], list[mi.StrType]] = {}
    for model in _models():
        info = mi.type_info(model)
        assert isinstance(info, mi.StructType)
        for field in info.fields:
            strings = [leaf for leaf in _leaves(field.type) if isinstance(leaf, mi.StrType)]
            if strings:
                found[(model.__name__, field.encode_name)] = strings
    return found


def _expected(model: str, field: str) -> int | str | None:
    return SPEC.get(PATCHES.get(model, model), {}).get(field)


def test_every_string_field_has_the_spec_length() -> None:
    """Each string field of every model (objects, PATCH bodies, nested classes) is bounded by the
    length the spec gives it, and URL fields are URLs of at most 255 characters."""
    found = _string_fields()
    wrong = []
    for (model, field), strings in sorted(found.items()):
        expected = _expected(model, field)
        for string in strings:
            if expected is None:
                wrong.append((model, field, "not in the spec table", string.max_length))
            elif expected == URL:
                if (string.max_length, string.pattern) != (255, URL_PATTERN):
                    wrong.append((model, field, "URL", string.max_length, string.pattern))
            elif string.max_length != expected:
                wrong.append((model, field, expected, string.max_length))
    assert not wrong, wrong


def test_every_spec_field_is_modelled() -> None:
    """No entry of the table is left unchecked (a renamed or dropped field would be)."""
    found = {(model, field) for model, field in _string_fields()}
    missing = [
        (model, field) for model, fields in SPEC.items() for field in fields if (model, field) not in found
    ]
    assert not missing, missing


def test_datetime_fields_are_datetimes() -> None:
    """The spec's DateTime fields are parsed as datetimes, never taken as free strings."""
    names = {"last_updated", "start_datetime", "end_datetime", "start_date_time", "stop_date_time",
             "period_begin", "period_end", "expiry_date"}  # fmt: skip
    for model in _models():
        info = mi.type_info(model)
        assert isinstance(info, mi.StructType)
        for field in info.fields:
            if field.encode_name in names and model.__name__ not in ("RegularHours",):
                leaves = [leaf for leaf in _leaves(field.type) if not isinstance(leaf, mi.NoneType)]
                assert leaves and all(isinstance(leaf, mi.DateTimeType) for leaf in leaves), (model, field)


def test_url_ids_of_the_module_table_match_the_object_ids() -> None:
    """The length a route allows for an id is the spec's length of the object's id field."""
    for module in MODULES.values():
        for level in module.levels:
            assert _expected(level.object_type.__name__, level.id_field) == level.max_id_length, level


def test_texts_we_write_into_objects_fit() -> None:
    """An object we emit stays valid: the remark of an unpriced CDR fits CDR.remark."""
    assert len(NO_TARIFF) <= 255
