"""Schemathesis fuzzing of both gateways' OCPI listeners from docs/openapi.yaml, with every kind of token.

Per gateway, every documented route is fuzzed with valid and invalid input as: the shared
connection's registered partner (A: the eMSP B, B: the CPO A), a throwaway registered partner of the
same role with a party of its own, a TOKEN_A whose partner never registered, an unknown token and no
token. Checks: no 5xx and no dropped connection, every answer a 2.1.1 envelope, and the answer
conforms to the document (status documented, JSON, body schema with `data` typed per route).

The shared connection's token is never fuzzed on credentials POST, PUT or DELETE: a PUT rotates it
and a DELETE unregisters it, which would break every e2e test after this one. The throwaway partner
gets those, last (PUT, then DELETE), and its Receiver routes are pinned to its own party so that
bodies reach validation and the services instead of a 403; nothing else reads that party.

FUZZ_EXAMPLES (default 2) sets the examples per operation, mode and token: the suite's run takes
about 80 s with the pair's start; `FUZZ_EXAMPLES=10` is the long run (docs/security.md has its figures).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import schemathesis

from deploy.local_stack import Deployment
from docs.generate_openapi import AUTHORIZE_PATH
from tests.conftest import Connection
from tests.support.fake_partner import fake_partner, register_throwaway
from tests.support.fuzzing import OPENAPI, Caller, Route, Tally, fuzz
from tests.support.http import add_partner, request

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))
CREDENTIALS = "/ocpi/2.1.1/credentials"
DESTRUCTIVE: frozenset[Route] = frozenset(
    {("POST", CREDENTIALS), ("PUT", CREDENTIALS), ("DELETE", CREDENTIALS)}
)
ROTATE_THEN_UNREGISTER: tuple[Route, ...] = (("PUT", CREDENTIALS), ("DELETE", CREDENTIALS))


def _party() -> str:
    return uuid.uuid4().hex[:3].upper()


async def _callers(
    deployment: Deployment, shared_token: str, partner_role: str, versions_url: str
) -> list[Caller]:
    """The five kinds of token at one gateway; `partner_role` is the role its registered partners play."""
    base = deployment.public_url
    party = ("ZZ", _party())
    throwaway = await register_throwaway(deployment, versions_url, partner_role, *party)
    token_a = await add_partner(
        deployment, f"fuzz-pending-{uuid.uuid4().hex[:6]}", "ZY", _party(), partner_role
    )
    name = deployment.party_id
    return [
        Caller(f"{name} registered {partner_role}", base, f"Token {shared_token}", skip=DESTRUCTIVE),
        Caller(
            f"{name} throwaway {partner_role}", base, f"Token {throwaway}", party, last=ROTATE_THEN_UNREGISTER
        ),
        Caller(f"{name} TOKEN_A", base, f"Token {token_a}"),
        Caller(f"{name} unknown token", base, f"Token {uuid.uuid4().hex}"),
        Caller(f"{name} no token", base, None),
    ]


async def test_fuzz_both_gateways_with_every_kind_of_token(connection: Connection) -> None:
    """No 5xx, no dropped connection, every answer a conforming 2.1.1 envelope, on every route."""
    pair = connection.pair
    schema = schemathesis.openapi.from_path(OPENAPI)
    tally = Tally()
    started = time.monotonic()
    async with fake_partner() as versions_url:
        callers = [
            *await _callers(pair.cpo, connection.emsp_to_cpo_token, "EMSP", versions_url),
            *await _callers(pair.emsp, connection.cpo_to_emsp_token, "CPO", versions_url),
        ]
        for caller in callers:
            # In a thread: schemathesis calls are blocking, and the fake partner must keep answering.
            await asyncio.to_thread(fuzz, schema, caller, EXAMPLES, tally)
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {tally.requests} requests, {len(tally.operations)} operations, {len(callers)} callers, "
        f"{EXAMPLES} examples, {elapsed:.0f} s, statuses {dict(sorted(tally.statuses.items()))}, "
        f"{len(tally.failures)} failures"
    )
    assert not tally.failures, "\n".join(tally.failures[:40])
    # Every documented operation was tried (the authorization POST is a 404 until its route lands).
    assert len(tally.operations) == len(list(schema.get_all_operations())), tally.operations
    assert AUTHORIZE_PATH in {op.split(" ", 1)[1] for op in tally.operations}
    # The shared connection survived: its tokens still work both ways.
    for deployment, token in (
        (pair.cpo, connection.emsp_to_cpo_token),
        (pair.emsp, connection.cpo_to_emsp_token),
    ):
        assert (await request("GET", f"{deployment.public_url}/ocpi/2.1.1", token=token)).status_code == 1000
