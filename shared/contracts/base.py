"""Base classes of the message catalogue: the tag of a message is its routing key."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from shared.ocpi.v2_1_1.types import Int64, NonNegativeInt, NonNegativeInt64

HttpStatus = Annotated[int, msgspec.Meta(ge=100, le=599)]


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A broker message; subclasses set `tag="<module>.<object>.<verb>"`."""


def tag_of(message_type: type[Message]) -> str:
    """The routing key of a message class: its tag."""
    tag = message_type.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{message_type.__name__} has no string tag")
    return tag


def routing_key(message: Message) -> str:
    """The routing key of a message is its tag."""
    return tag_of(type(message))


class Outcome(msgspec.Struct, kw_only=True):
    """What a handler returns: an optional RPC reply and the events to publish after the commit."""

    reply: RpcReply | None = None
    events: list[Message] = msgspec.field(default_factory=list)


class RpcReply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A service's answer to the gateway; `data` is the OCPI JSON, forwarded without re-parsing."""

    status_code: Int64 = 1000
    status_message: str | None = None
    http_status: HttpStatus = 200
    data: msgspec.Raw = msgspec.Raw(b"null")
    total_count: NonNegativeInt64 | None = None
    limit: NonNegativeInt | None = None
    # Query parameters of the next page; the gateway turns them into the Link header.
    next_query: dict[str, str] | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)


def ok(data: Any = None, **kwargs: Any) -> RpcReply:
    """A 1000 reply carrying `data` (a Struct, a list of Structs, or builtins)."""
    from shared.ocpi.v2_1_1.codec import encode

    return RpcReply(data=msgspec.Raw(encode(data)), **kwargs)


def error(status_code: int, message: str, http_status: int = 200) -> RpcReply:
    return RpcReply(status_code=status_code, status_message=message, http_status=http_status)
