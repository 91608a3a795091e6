"""Common OCPI 2.1.1 types (types.md) and the base Struct every OCPI object derives from.

DateTime handling
-----------------
OCPI DateTime fields are plain ``datetime.datetime`` attributes. msgspec parses the ISO 8601 text
(``Z``, ``+02:00``, fractional seconds, or no zone designator at all), and ``OcpiStruct`` then
normalises every DateTime field to an *aware UTC datetime truncated to whole seconds*:

* a value without a zone designator (a naive datetime) means UTC (types.md 1.2);
* a value with an offset is converted to UTC;
* fractional seconds are dropped, because OCPI timestamps are written to the second.

The normalisation runs in ``__post_init__``, which msgspec calls for every Struct it builds - nested
ones included - whether by ``decode``, ``convert`` or a constructor call, and in ``__setattr__`` for
later assignments. msgspec writes an aware UTC datetime without microseconds as
``YYYY-MM-DDThh:mm:ssZ``, so encoding needs no hook for Structs (see ``codec`` for plain dicts).

Numbers
-------
OCPI ``number``/``decimal`` fields (prices, kWh, hours, percentages) are ``float``: msgspec writes
the shortest text that reads back to the same float, so values round-trip exactly through JSON.

Every ``int`` field is bounded (``NonNegativeInt``, ``Int64``, ...): Python ints are unbounded and
msgspec would decode ``9223372036854775808`` happily, but BSON stores signed 64-bit integers at most
and raises ``OverflowError`` on anything larger. Decoding refuses such values with a
``ValidationError`` that names the field, so no value the database cannot store gets in.
"""

from __future__ import annotations

import datetime as _dt
import enum
import types as _types
from typing import Annotated, Any, TypeAlias, TypeVar, Union, get_args, get_origin

import msgspec

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "URL",
    "BusinessDetails",
    "CiString36",
    "CountryCode",
    "CurrencyCode",
    "DateTime",
    "DisplayText",
    "Image",
    "ImageCategory",
    "Int64",
    "LanguageCode",
    "NonNegativeInt",
    "NonNegativeInt64",
    "OcpiStruct",
    "PartyId",
    "String2",
    "String3",
    "String4",
    "String5",
    "String10",
    "String16",
    "String36",
    "String39",
    "String45",
    "String48",
    "String64",
    "String100",
    "String255",
    "String512",
    "TimeOfDay",
    "apply_patch",
    "format_datetime",
    "patch_changes",
    "to_utc",
    "utc_now",
]

# --- integers ------------------------------------------------------------------------------------
# BSON (so MongoDB) stores signed 64-bit integers at most; a larger Python int makes every write of
# the document fail with OverflowError. Every int of a model or message contract takes one of these.

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

#: Any integer the database can store (e.g. a partner's status code, which we only read).
Int64: TypeAlias = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
#: A count or measure that is never negative: volts, amperes, seconds, Wh, ids, offsets; 0..2^31-1.
#: The spec gives no maximum for these; 2^31-1 is far above any real value and fits every store.
NonNegativeInt: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
#: A number that grows without end in our own records (versions, totals): 0..2^63-1.
NonNegativeInt64: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]

# --- strings -------------------------------------------------------------------------------------
# string(n) in the spec is a case sensitive string of at most n characters; CiString(n) is the same
# but compared case-insensitively (comparison is the caller's business, the wire format is a string).

String2: TypeAlias = Annotated[str, msgspec.Meta(max_length=2)]
String3: TypeAlias = Annotated[str, msgspec.Meta(max_length=3)]
String4: TypeAlias = Annotated[str, msgspec.Meta(max_length=4)]
String5: TypeAlias = Annotated[str, msgspec.Meta(max_length=5)]
String10: TypeAlias = Annotated[str, msgspec.Meta(max_length=10)]
String16: TypeAlias = Annotated[str, msgspec.Meta(max_length=16)]
String36: TypeAlias = Annotated[str, msgspec.Meta(max_length=36)]
String39: TypeAlias = Annotated[str, msgspec.Meta(max_length=39)]
String45: TypeAlias = Annotated[str, msgspec.Meta(max_length=45)]
String48: TypeAlias = Annotated[str, msgspec.Meta(max_length=48)]
String64: TypeAlias = Annotated[str, msgspec.Meta(max_length=64)]
String100: TypeAlias = Annotated[str, msgspec.Meta(max_length=100)]
String255: TypeAlias = Annotated[str, msgspec.Meta(max_length=255)]
String512: TypeAlias = Annotated[str, msgspec.Meta(max_length=512)]
CiString36: TypeAlias = Annotated[str, msgspec.Meta(max_length=36)]

#: URL type (types.md 1.6): string(255).
URL: TypeAlias = Annotated[
    str, msgspec.Meta(max_length=255, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*$")
]
#: credentials.md: country_code string(2), ISO 3166 alpha-2.
CountryCode: TypeAlias = Annotated[str, msgspec.Meta(max_length=2)]
#: credentials.md: party_id string(3).
PartyId: TypeAlias = Annotated[str, msgspec.Meta(max_length=3)]
#: ISO 639-1 language code, string(2).
LanguageCode: TypeAlias = Annotated[str, msgspec.Meta(max_length=2)]
#: ISO 4217 currency code, string(3).
CurrencyCode: TypeAlias = Annotated[str, msgspec.Meta(max_length=3)]
#: "hh:mm", 24h with leading zeros: regex ([0-1][0-9]|2[0-3]):[0-5][0-9] (RegularHours, TariffRestrictions).
TimeOfDay: TypeAlias = Annotated[str, msgspec.Meta(max_length=5, pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]

# --- DateTime ------------------------------------------------------------------------------------

#: OCPI DateTime: a ``datetime.datetime``; inside an ``OcpiStruct`` always aware UTC, whole seconds.
DateTime: TypeAlias = _dt.datetime


def to_utc(value: _dt.datetime) -> _dt.datetime:
    """Normalise an OCPI DateTime: naive means UTC, offsets are converted, fractions dropped."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=_dt.UTC)
    elif value.tzinfo is not _dt.UTC:
        try:
            value = value.astimezone(_dt.UTC)
        except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
            raise ValueError(f"DateTime out of range: {value.isoformat()}") from exc
    if value.microsecond:
        value = value.replace(microsecond=0)
    return value


def format_datetime(value: _dt.datetime) -> str:
    """The OCPI wire form of a DateTime: exactly ``YYYY-MM-DDThh:mm:ssZ``."""
    return to_utc(value).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def utc_now() -> _dt.datetime:
    """The current time as an OCPI DateTime (aware UTC, whole seconds)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


def _is_datetime_type(tp: Any) -> bool:
    if tp is _dt.datetime:
        return True
    origin = get_origin(tp)
    if origin is Annotated:
        return _is_datetime_type(get_args(tp)[0])
    if origin is Union or origin is _types.UnionType:
        return any(_is_datetime_type(arg) for arg in get_args(tp))
    return False


_DATETIME_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _datetime_fields(cls: type[OcpiStruct]) -> tuple[str, ...]:
    names = _DATETIME_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in msgspec.structs.fields(cls) if _is_datetime_type(f.type))
        _DATETIME_FIELDS[cls] = names
    return names


class OcpiStruct(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """Base of all OCPI objects.

    * keyword-only construction (subclasses repeat ``kw_only=True`` because type checkers do not
      inherit the class keyword and would reject required fields after optional ones);
    * optional fields default to ``None`` (``UNSET`` in patches) and, being defaults, are omitted
      when encoding;
    * unknown fields sent by partners are ignored;
    * DateTime fields are normalised to aware UTC whole seconds (see the module docstring).
    """

    def __post_init__(self) -> None:
        for name in _datetime_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, _dt.datetime):
                normalised = to_utc(value)
                if normalised is not value:
                    msgspec.structs.force_setattr(self, name, normalised)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _dt.datetime):
            value = to_utc(value)
        super().__setattr__(name, value)


# --- PATCH support -------------------------------------------------------------------------------

S = TypeVar("S", bound=OcpiStruct)


def patch_changes(patch: OcpiStruct) -> dict[str, Any]:
    """The fields present in a PATCH body (every field whose value is not ``msgspec.UNSET``).

    A field present with JSON ``null`` is reported with the value ``None``.
    """
    return {
        name: value
        for name in patch.__struct_fields__
        if (value := getattr(patch, name)) is not msgspec.UNSET
    }


def apply_patch(target: S, patch: OcpiStruct) -> S:
    """A copy of ``target`` with the fields present in ``patch`` replaced (transport_and_format.md PATCH).

    Raises ``ValueError`` if the patch sets a field the target does not have.
    """
    changes = patch_changes(patch)
    unknown = set(changes) - set(target.__struct_fields__)
    if unknown:
        raise ValueError(f"{type(target).__name__} has no field(s): {', '.join(sorted(unknown))}")
    return msgspec.structs.replace(target, **changes)


# --- common classes ------------------------------------------------------------------------------


class DisplayText(OcpiStruct, kw_only=True):
    """types.md 1.3."""

    language: LanguageCode
    text: String512


class ImageCategory(enum.StrEnum):
    """mod_locations.md 4.15."""

    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class Image(OcpiStruct, kw_only=True):
    """mod_locations.md 4.14."""

    url: URL
    thumbnail: URL | None = None
    category: ImageCategory
    type: String4
    # int(5): at most five digits.
    width: Annotated[int, msgspec.Meta(ge=0, le=99999)] | None = None
    height: Annotated[int, msgspec.Meta(ge=0, le=99999)] | None = None


class BusinessDetails(OcpiStruct, kw_only=True):
    """mod_locations.md 4.1 (also used by credentials)."""

    name: String100
    website: URL | None = None
    logo: Image | None = None
