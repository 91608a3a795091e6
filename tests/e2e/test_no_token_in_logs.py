"""No token in any log line, broker message or stored document (review M5, "secrets kept secret"): a
handshake, rotations both ways, pushes and pulls, refused tokens and an unregistration between two
deployments of our own, with every line of every process of both, every message on their exchanges
and every document of their databases searched for every token involved."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from deploy.local_stack import Deployment, Stack
from shared.ocpi.v2_1_1.codec import to_builtins
from tests.conftest import NAMESPACES
from tests.support.deployments import new_deployment, running
from tests.support.http import add_partner, admin, partners, register_with, request, their_token
from tests.support.objects import location
from tests.support.waiting import eventually
from tests.support.wiretap import BrokerTap, stored_documents


def _deployment(amqp_url: str, mongo_url: str, country_code: str, party_id: str, role: str) -> Deployment:
    deployment = new_deployment(amqp_url, mongo_url, country_code, party_id, role)
    # Debug lines too: a token must not reach a log line at any level.
    deployment.extra_env.update(LOG_LEVEL="debug", PUSH_MAX_ATTEMPTS="3", PUSH_BACKOFF_MAX_SECONDS="1")
    NAMESPACES.add(deployment.namespace)
    return deployment


def _lines(*paths: Path) -> list[str]:
    return [line for path in paths for line in path.read_text(errors="replace").splitlines()]


def _events(lines: list[str], service: str) -> list[str]:
    """The structlog event names one service logged, in order (each line is `[label service] {json}`)."""
    found = []
    for line in lines:
        prefix, _, body = line.partition("] ")
        if prefix.endswith(f" {service}") and body.startswith("{"):
            found.append(str(json.loads(body).get("event")))
    return found


async def _until_logged(paths: tuple[Path, ...], service: str, event: str, count: int) -> None:
    def logged() -> bool:
        return _events(_lines(*paths), service).count(event) >= count

    await eventually(logged, 60, f"{count} times {event} from {service}", pause=0.2)


async def test_no_token_appears_in_any_log_line_message_or_document(
    amqp_url: str, mongo_url: str, tmp_path: Path
) -> None:
    """Every token a connection's life produces (TOKEN_A, each side's issued and rotated tokens, the
    admin tokens) is absent from every line both deployments log at debug level, from every message
    published on their exchanges, and from every document they store."""
    cpo = _deployment(amqp_url, mongo_url, "NL", "CPA", "CPO")
    emsp = _deployment(amqp_url, mongo_url, "DE", "EMB", "EMSP")
    logs = (tmp_path / "a.log", tmp_path / "b.log")
    secrets = {"admin token of A": cpo.admin_token, "admin token of B": emsp.admin_token}
    a_name, b_name = "cpo-logs", "emsp-logs"
    tap = BrokerTap()
    with (
        running(cpo, "A ", log_path=str(logs[0])) as a_stack,
        running(emsp, "B ", log_path=str(logs[1])) as b_stack,
    ):
        await tap.open(amqp_url, cpo, emsp)
        secrets["TOKEN_A"] = token_a = await add_partner(emsp, a_name, "NL", "CPA", "CPO")
        await register_with(cpo, emsp, token_a, b_name)
        secrets["A->B token"] = await their_token(mongo_url, cpo, b_name)
        secrets["B->A token"] = await their_token(mongo_url, emsp, a_name)

        # Pushes (A's dispatcher to B) and pulls (B's dispatcher from A) carry the tokens.
        made = to_builtins(location(f"LOC-{uuid.uuid4().hex[:8]}", ["E1"]))
        loaded = await admin(cpo, "POST", "/admin/locations", raw=json.dumps([made]).encode())
        assert loaded.status_code == 1000, loaded
        b_locations = f"{emsp.public_url}/ocpi/emsp/2.1.1/locations/NL/CPA/{made['id']}"

        async def pushed() -> bool:
            reply = await request("GET", b_locations, token=secrets["A->B token"])
            return reply.status_code == 1000

        await eventually(pushed, 60, "the location pushed to B", pause=0.2)
        await _until_logged(logs, "dispatcher", "partner_registered", 2)

        # Rotations: A's own (a credentials PUT B answers), then B's (a PUT A answers).
        for at, name, side in ((cpo, b_name, "A"), (emsp, a_name, "B")):
            rotated = await admin(at, "POST", f"/admin/partners/{name}/rotate")
            assert rotated.status_code == 1000, rotated
            secrets[f"A->B token after {side}'s rotation"] = await their_token(mongo_url, cpo, b_name)
            secrets[f"B->A token after {side}'s rotation"] = await their_token(mongo_url, emsp, a_name)
        # Each rotation: two announcements by the rotating side, one by the side that was asked.
        await _until_logged(logs, "dispatcher", "partner_registered", 8)
        connected = [*await stored_documents(mongo_url, cpo), *await stored_documents(mongo_url, emsp)]

        # Refused tokens are logged as requests, never with the token.
        secrets["unknown token"] = "not-a-token-" + uuid.uuid4().hex
        for token in (token_a, secrets["A->B token"], secrets["unknown token"]):
            assert (await request("GET", f"{emsp.public_url}/ocpi/versions", token=token)).status == 401

        # Failures log their cause: a registration with a TOKEN_A B never issued, and a rotation
        # while B's gateway is down.
        secrets["bogus TOKEN_A"] = "bogus-token-a-" + uuid.uuid4().hex
        refused = await admin(
            cpo,
            "POST",
            "/admin/registrations",
            {
                "versions_url": f"{emsp.public_url}/ocpi/versions",
                "token": secrets["bogus TOKEN_A"],
                "name": "never",
                "role": "EMSP",
                "parties": [{"country_code": "DE", "party_id": "EMB"}],
                "shared_party": True,
            },
        )
        assert refused.status_code == 3001, refused
        await asyncio.to_thread(b_stack.stop, ("gateway",))
        failed = await admin(cpo, "POST", f"/admin/partners/{b_name}/rotate")
        assert failed.status_code == 3001, failed
        b_stack.start_one("gateway")
        await asyncio.to_thread(b_stack.wait_ready, 60, ("gateway",))

        # Unregistration: A removes B, which DELETEs its credentials at B.
        removed = await admin(cpo, "DELETE", f"/admin/partners/{b_name}")
        assert removed.status_code == 1000, removed
        assert (await partners(emsp))[a_name]["status"] == "UNREGISTERED"
        await _until_logged(logs, "dispatcher", "partner_unregistered", 2)
        await _stop(a_stack, b_stack)
        await tap.close()
        documents = [*await stored_documents(mongo_url, cpo), *await stored_documents(mongo_url, emsp)]
        documents += connected

    assert len(set(secrets.values())) == len(secrets), "every token is a different one"
    lines = _lines(*logs)
    for service in ("gateway", "dispatcher", "locations"):
        assert _events(lines, service), f"no lines of {service} captured"
    assert "service_stopped" in _events(lines, "dispatcher")
    leaks = [(what, line) for line in lines for what, token in secrets.items() if token in line]
    assert not leaks, "\n".join(f"{what}: {line}" for what, line in leaks[:20])
    # On the broker: the registrations went out (each side's, and again after each rotation) with
    # no token in them; the dispatcher's token requests carry a partner id only.
    assert sum("credentials.partner.registered" in m for m in tap.messages) >= 4, tap.messages[:5]
    assert sum("credentials.partner.token" in m for m in tap.messages) >= 4
    sent = [(what, m) for m in tap.messages for what, token in secrets.items() if token in m]
    assert not sent, "\n".join(f"{what} on the broker: {m[:300]}" for what, m in sent[:10])
    # At rest, while connected and after: the partners' tokens are sealed in both databases, and
    # ours are hashes.
    assert sum('"their_token_sealed": "s1.' in d for d in connected) == 2, "the gateways' sealed tokens"
    assert sum('"token_sealed": "s1.' in d for d in connected) == 2, "the dispatchers' sealed tokens"
    stored = [(what, d) for d in documents for what, token in secrets.items() if token in d]
    assert not stored, "\n".join(f"{what} stored: {d[:300]}" for what, d in stored[:10])


async def _stop(*stacks: Stack) -> None:
    """Stop the processes and give the log pumps a moment, so their last lines are in the files."""
    for stack in stacks:
        await asyncio.to_thread(stack.stop)
    await asyncio.sleep(1.0)
