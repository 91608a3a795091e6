"""JSON and builtins conversion for OCPI 2.1.1 objects; everything goes through these functions.

* ``decode(data, type_)``: JSON text -> typed objects (``Location``, ``list[Token]``,
  ``OcpiResponse[list[Tariff]]``, ...). Raises ``msgspec.ValidationError`` (its message names the
  offending field and its JSON path, e.g. "Object missing required field `uid` - at `$[0]`") or
  ``msgspec.DecodeError`` for malformed JSON; ``ValidationError`` is a subclass of ``DecodeError``.
  JSON nested deeper than ``MAX_DEPTH`` is refused first with ``TooDeep`` (also a ``DecodeError``).
* ``check_depth(data)``: that refusal on its own, for code that decodes partner input with a
  decoder of its own (``msgspec.Raw`` fields and ignored unknown fields are parsed recursively too,
  and msgspec raises ``RecursionError``, not ``DecodeError``, at about 1000 levels).
* ``convert(obj, type_)``: already-parsed Python objects (dicts from MongoDB, ``datetime`` or ISO
  strings for DateTime fields) -> typed objects, with the same validation.
* ``encode(obj)``: typed objects and/or builtins -> JSON bytes; DateTimes are written as
  ``YYYY-MM-DDThh:mm:ssZ``, optional fields that are ``None``/absent are omitted.
* ``to_builtins(obj)``: typed objects -> dicts/lists/str/... (DateTimes as the same strings, or kept
  as aware UTC ``datetime`` objects with ``keep_datetimes=True``, e.g. for MongoDB range queries).

DateTime fields inside OCPI Structs are normalised on construction (see types.py), so Structs encode
natively. Datetimes found in plain dicts/lists passed to ``encode``/``to_builtins`` are normalised
here by a walk over those containers (Structs inside them are not walked).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, TypeVar

import msgspec

from shared.ocpi.v2_1_1.types import format_datetime, to_utc

__all__ = ["MAX_DEPTH", "TooDeep", "check_depth", "convert", "decode", "encode", "to_builtins"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(type_)
    if dec is None:
        dec = msgspec.json.Decoder(type_)
        _decoders[type_] = dec
    return dec


def _normalise(obj: Any, keep_datetimes: bool) -> Any:
    """Walk plain containers, putting every datetime in OCPI form. Structs are left alone."""
    if isinstance(obj, _dt.datetime):
        return to_utc(obj) if keep_datetimes else format_datetime(obj)
    if isinstance(obj, dict):
        return {k: _normalise(v, keep_datetimes) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v, keep_datetimes) for v in obj]
    return obj


def encode(obj: Any) -> bytes:
    """Serialise an OCPI object (or list/dict of them, or builtins) to JSON bytes."""
    if not isinstance(obj, msgspec.Struct):
        obj = _normalise(obj, keep_datetimes=False)
    return _encoder.encode(obj)


# --- nesting depth -------------------------------------------------------------------------------

#: The deepest nesting of arrays and objects we read from anyone. OCPI objects nest about 6 levels
#: (an envelope, a list, a location, an EVSE, a connector); MongoDB stores 100 at most.
MAX_DEPTH = 64


class TooDeep(msgspec.DecodeError):
    """JSON nested deeper than ``MAX_DEPTH``: refused before msgspec walks it."""


# Brackets and quotes are kept, brackets as "(" and ")"; every other byte is deleted.
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_OTHER_BYTES = bytes(b for b in range(256) if b not in b'[{]}"')


def check_depth(data: bytes | str, limit: int = MAX_DEPTH) -> None:
    """Raise ``TooDeep`` when JSON arrays/objects nest more than ``limit`` levels.

    Fast on any input, with C-speed bytes operations only: escaped backslashes and quotes are
    dropped, the text inside strings (every other piece between quotes) is cut out, the brackets
    are kept, and then the innermost pairs "()" are removed one level per pass, ``limit`` passes
    at most. Strings are read left to right as a JSON parser does, so malformed JSON is never
    found shallower than the parser would go before it gives up.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    if b"\\" in raw:
        # Pairs first ("\\\\" is one escaped backslash), then escaped quotes, as a parser reads them.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(raw.translate(_BRACKETS, _OTHER_BYTES).split(b'"')[::2])
    depth = 0
    while brackets:
        reduced = brackets.replace(b"()", b"")
        if len(reduced) == len(brackets):
            break  # unbalanced: what is left is ")...)(...(" and nests no further
        depth += 1
        brackets = reduced
        if depth > limit:
            break
    # Brackets left unclosed enclose everything after them.
    depth += brackets.count(b"(")
    if depth > limit:
        raise TooDeep(f"JSON nested deeper than {limit} levels")


def decode(data: bytes | str, type_: type[T]) -> T:
    """Check the nesting depth, then parse and validate JSON into ``type_``."""
    check_depth(data)
    result: T = _decoder(type_).decode(data)
    return result


def to_builtins(obj: Any, *, keep_datetimes: bool = False) -> Any:
    """Convert OCPI objects to builtin types (the JSON shape, with optional fields omitted)."""
    if keep_datetimes:
        return _normalise(msgspec.to_builtins(obj, builtin_types=(_dt.datetime,)), keep_datetimes=True)
    return _normalise(msgspec.to_builtins(obj), keep_datetimes=False)


def convert(obj: Any, type_: type[T]) -> T:
    """Validate already-parsed Python objects (e.g. a MongoDB document) into ``type_``.

    Unknown keys (such as MongoDB's ``_id``) are ignored.
    """
    return msgspec.convert(obj, type_)
