"""Remove what a test session declared on the shared RabbitMQ: durable queues outlive the tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

import aio_pika

SUFFIXES = (".rpc", ".input", ".events", ".partner-states", ".dead-letters")
EXCHANGES = ("rpc", "events", "internal", "dead-letter")


def _listed_queues() -> list[str]:
    if shutil.which("rabbitmqctl") is None:
        return []
    try:
        out = subprocess.run(
            ["rabbitmqctl", "list_queues", "name", "--no-table-headers", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


async def delete_namespaces(amqp_url: str, namespaces: set[str]) -> None:
    """Delete every queue and exchange whose name starts with one of `namespaces`."""
    if not namespaces:
        return
    prefixes = tuple(f"{ns}." for ns in namespaces)
    queues = [name for name in _listed_queues() if name.startswith(prefixes)]
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        for name in queues:
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
        for ns in namespaces:
            for exchange in EXCHANGES:
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.exchange_delete(f"{ns}.{exchange}")
    finally:
        await connection.close()
