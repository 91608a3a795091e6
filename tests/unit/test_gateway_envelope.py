"""Service replies forwarded by the gateway keep the 2.1.1 envelope the OpenAPI description promises."""

from __future__ import annotations

import json

import msgspec

from services.gateway.module_calls import forwarded_data
from services.gateway.responses import envelope
from shared.contracts.base import error, ok


def _body(raw: bytes | None) -> dict[str, object]:
    return dict(json.loads(envelope(raw, 2003, "Unknown location: 0", 404).body))


def test_a_service_error_is_forwarded_without_data() -> None:
    """Found by the fuzz run: a service's 2003/2000/2001 came out as `"data": null`, unlike the
    gateway's own errors (which omit it) and against the documented error envelope."""
    body = _body(forwarded_data(error(2003, "Unknown location: 0", http_status=404)))
    assert "data" not in body and body["status_code"] == 2003


def test_a_write_without_data_omits_it_and_real_data_passes_untouched() -> None:
    assert forwarded_data(ok(None)) is None
    assert forwarded_data(ok([])) == b"[]"
    assert forwarded_data(ok({"id": "LOC-1"})) == msgspec.json.encode({"id": "LOC-1"})
