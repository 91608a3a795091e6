"""Schemathesis against a running gateway: one caller (a token kind) at a time, failures collected.

Failures are collected rather than raised, so that one run reports every finding with its request
instead of stopping (and shrinking) at the first one; the test asserts the list is empty.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
ENVELOPE_KEYS = {"status_code", "status_message", "timestamp", "data"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
Route = tuple[str, str]  # (method, path template)


@dataclass(frozen=True)
class Caller:
    """A kind of token at one gateway, and what it must not be fuzzed with."""

    label: str
    base_url: str
    authorization: str | None
    # Pinned country_code/party_id of Receiver routes: the caller's own party, to get past 403.
    party: tuple[str, str] | None = None
    skip: frozenset[Route] = frozenset()
    # Fuzzed after every other route, in this order (credentials PUT, then DELETE).
    last: tuple[Route, ...] = ()


@dataclass
class Tally:
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def envelope_problem(status: int, content: bytes) -> str | None:
    """What makes `content` not a 2.1.1 response envelope (transport_and_format.md 4.1.7), if anything."""
    try:
        body = json.loads(content)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict):
        return "body is not an object"
    if set(body) - ENVELOPE_KEYS:
        return f"unknown keys {sorted(set(body) - ENVELOPE_KEYS)}"
    code = body.get("status_code")
    if not isinstance(code, int) or isinstance(code, bool) or not 1000 <= code <= 3999:
        return f"status_code {code!r} is not an OCPI status code"
    if not isinstance(body.get("timestamp"), str) or not TIMESTAMP.fullmatch(body["timestamp"]):
        return f"timestamp {body.get('timestamp')!r}"
    if "status_message" in body and not isinstance(body["status_message"], str):
        return "status_message is not a string"
    if status >= 400 and code < 2000:
        return f"HTTP {status} with status_code {code}"
    return None


def _ordered(schema: BaseSchema, caller: Caller) -> list[APIOperation]:
    operations = [result.ok() for result in schema.get_all_operations()]
    chosen = [op for op in operations if (op.method.upper(), op.path) not in caller.skip]
    rank = {route: index for index, route in enumerate(caller.last)}
    return sorted(chosen, key=lambda op: rank.get((op.method.upper(), op.path), -1))


def _strategy(op: APIOperation, caller: Caller, mode: GenerationMode) -> st.SearchStrategy[Case]:
    names = {p.name for p in op.path_parameters}
    pinned: dict[str, Any] = {}
    if caller.party and {"country_code", "party_id"} <= names:
        pinned = dict(zip(("country_code", "party_id"), caller.party, strict=True))
    headers = {"Authorization": caller.authorization} if caller.authorization else {}
    return op.as_strategy(generation_mode=mode, path_parameters=pinned or None, headers=headers or None)


def _check(case: Case, caller: Caller, tally: Tally, seconds: float) -> None:
    label = f"{caller.label}: {case.operation.method.upper()} {case.operation.path}"
    try:
        response = case.call(base_url=caller.base_url, timeout=seconds)
    except Exception as exc:  # a dropped connection or a timeout is a finding too
        tally.failures.append(f"{label}: no answer ({type(exc).__name__}: {exc})")
        return
    tally.requests += 1
    tally.operations.add(f"{case.operation.method.upper()} {case.operation.path}")
    tally.statuses[response.status_code] += 1
    problems: list[str] = []
    if response.status_code >= 500:
        problems.append(f"HTTP {response.status_code}")
    envelope = envelope_problem(response.status_code, response.content)
    if envelope:
        problems.append(f"not an envelope: {envelope}")
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        problems += [f"schema: {failure.title}: {failure.message[:200]}" for failure in group.exceptions]
    except Failure as failure:
        problems.append(f"schema: {failure.title}: {failure.message[:200]}")
    if problems:
        sent = f"{case.path_parameters or ''} {case.query or ''} {str(case.body)[:200] if case.body else ''}"
        answer = response.content[:300].decode(errors="replace")
        tally.failures.append(f"{label} [{'; '.join(problems)}] sent {sent.strip()} -> {answer}")


def fuzz(schema: BaseSchema, caller: Caller, examples: int, tally: Tally, seconds: float = 30.0) -> None:
    """Every operation of `schema` (but the caller's skips), valid and invalid input, `examples` each."""
    settings = hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    for op in _ordered(schema, caller):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings
            @given(case=_strategy(op, caller, mode))
            def run(case: Case) -> None:
                _check(case, caller, tally, seconds)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing in this operation can be made invalid (no parameters, no body)
