"""Which failures are the world's fault (a dependency is away) and which are the message's.

A consumer treats the two differently. A transient failure (the database or the broker cannot be
reached) says nothing about the message: it is held, unacked and uncounted, and tried again once the
dependency answers, so an outage of any length costs no message. Any other failure may be the
message's own; it is tried a few times and then dead-lettered on its own, with its reason.
"""

from __future__ import annotations

import asyncio

import aiormq.exceptions
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WaitQueueTimeoutError

# ConnectionFailure covers AutoReconnect, NetworkTimeout, NotPrimaryError and
# ServerSelectionTimeoutError: the server is away or changing primary.
_DATABASE_AWAY = (ConnectionFailure, WaitQueueTimeoutError, ExecutionTimeout)
# AMQPConnectionError is also a ConnectionError; a channel of a dropped connection is invalid.
_BROKER_AWAY = (ConnectionError, aiormq.exceptions.ChannelInvalidStateError)


class DependencyAway(Exception):
    """Another service of the platform that the work needs did not answer (a timed-out RPC, or its
    "try again later" reply): like the database being away, it says nothing about the message."""


def is_transient(exc: BaseException) -> bool:
    """True when `exc` means a dependency is unreachable rather than the message being at fault."""
    if isinstance(exc, (*_DATABASE_AWAY, *_BROKER_AWAY, DependencyAway)):
        return True
    # A publish that got no confirm in time: the broker is blocked, partitioned or reconnecting.
    return isinstance(exc, TimeoutError | asyncio.TimeoutError)


class Backoff:
    """Pauses that grow from `first` to `cap` seconds while a dependency stays away."""

    def __init__(self, first: float = 0.5, cap: float = 2.0) -> None:
        self._first = first
        self._cap = cap
        self._next = first

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self._cap)
        return pause

    def reset(self) -> None:
        self._next = self._first
