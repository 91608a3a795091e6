"""The RabbitMQ restart runs in a stage of its own (`make test` runs it after the rest of the suite):
the machine's broker is shared by every test, so nothing else may run while it is down."""

from __future__ import annotations

from tests.faults.conftest import connection, pair, pair_mongo_url

__all__ = ["connection", "pair", "pair_mongo_url"]
