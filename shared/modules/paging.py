"""Pure paging rules of a Sender list: the opaque keyset cursor and the next page's query.

Pages are ordered by creation (`created_seq`, which never changes), so updating an object during a
crawl cannot move it. The cursor carries the `created_seq` of the last object of a page: the next
page starts right after it, whatever was updated or dropped out of the date window meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from shared.ocpi.v2_1_1.types import format_datetime

_PREFIX = "s1:"


def encode_cursor(created_seq: int) -> str:
    """An opaque, URL-safe token for the position right after `created_seq`."""
    raw = f"{_PREFIX}{created_seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The `created_seq` inside a cursor we issued; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    digits = raw.removeprefix(_PREFIX)
    if digits == raw or not digits.isdigit() or not digits.isascii():
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(digits)


def next_page_query(
    *,
    offset: int,
    limit: int,
    returned: int,
    last_seq: int,
    date_from: datetime | None,
    date_to: datetime | None,
) -> dict[str, str]:
    """Query parameters of the page after this one; they keep the caller's filters."""
    query = {"offset": str(offset + returned), "limit": str(limit)}
    if date_from is not None:
        query["date_from"] = format_datetime(date_from)
    if date_to is not None:
        query["date_to"] = format_datetime(date_to)
    query["cursor"] = encode_cursor(last_seq)
    return query
