"""MongoDB connection helpers: one client per process, one database per service and namespace."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]
# MongoDB's error code for a write that would duplicate a unique key (also inside bulk write errors).
DUPLICATE_KEY = 11000


def connect_mongo(url: str) -> AsyncMongoClient[Document]:
    """A client that fails fast when the server is away instead of hanging a request.

    The server is monitored by polling (one `hello` per heartbeat, 10 s) rather than streaming (a
    second monitoring connection whose awaitable `hello`s the server counts as commands): half the
    idle load of every process on the database. A primary change is still noticed at once through
    the errors of the operations that meet it (the driver re-checks the server on such an error).
    """
    return AsyncMongoClient(
        url,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=3000,
        serverMonitoringMode="poll",
        tz_aware=True,
    )


def service_database(
    client: AsyncMongoClient[Document], namespace: str, service: str
) -> AsyncDatabase[Document]:
    """The database a service owns; no other service reads it."""
    return client[f"{namespace.replace('.', '_')}_{service}"]


# Readiness must answer before its prober gives up, also while the database is away.
PING_TIMEOUT = 2.0


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """Whether the server answers within PING_TIMEOUT."""
    try:
        await asyncio.wait_for(client.admin.command("ping"), PING_TIMEOUT)
    except Exception:
        return False
    return True
