"""ocpi-admin: no well-known token to fall back on (H3), and the parties named at registration (M3)."""

from __future__ import annotations

from typing import Any

import pytest

from services.admin.cli import AdminClient, AdminError, _parser, _parties, main, run


def test_without_a_token_the_cli_refuses_instead_of_using_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCPI_ADMIN_TOKEN", raising=False)
    with pytest.raises(AdminError, match="OCPI_ADMIN_TOKEN"):
        run(["partner", "list"])


def test_register_requires_the_partners_party() -> None:
    base = ["--token", "x" * 40, "partner", "register", "--versions-url", "https://p.example/v"]
    base += ["--token", "A"]
    with pytest.raises(SystemExit):
        _parser().parse_args(base)
    args = _parser().parse_args([*base, "--party", "DE/ACM", "--party", "DE/ACN", "--shared-party"])
    assert _parties(args.party) == [
        {"country_code": "DE", "party_id": "ACM"},
        {"country_code": "DE", "party_id": "ACN"},
    ]
    assert args.shared_party is True


def test_a_party_without_a_slash_is_refused() -> None:
    with pytest.raises(AdminError, match="COUNTRY_CODE/PARTY_ID"):
        _parties(["DEACM"])


def test_cdrs_disputes_asks_the_admin_api_and_prints_one_line_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cdrs disputes --limit 5` GETs /admin/cdrs/disputes?limit=5 and prints party, id, both totals."""
    asked: list[tuple[str, str]] = []
    line = {
        "country_code": "NL", "party_id": "CPA", "cdr_id": "CDR-1", "currency": "EUR", "theirs": "3.1",
        "ours": "2.50", "difference": "-0.60", "reason": "total_cost differs",
        "received_at": "2026-03-02T11:00:00Z",
    }  # fmt: skip

    def call(self: AdminClient, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        asked.append((method, path))
        return [line]

    monkeypatch.setattr(AdminClient, "call", call)
    main(["--token", "x" * 40, "cdrs", "disputes", "--limit", "5"])
    assert asked == [("GET", "/admin/cdrs/disputes?limit=5")]
    out = capsys.readouterr().out
    for shown in ("NL/CPA/CDR-1", "theirs=3.1 EUR", "ours=2.50", "difference=-0.60"):
        assert shown in out
    assert _parser().parse_args(["cdrs", "disputes"]).limit == 100


def test_partner_token_asks_for_a_new_token_a_and_prints_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`partner token NAME` POSTs /admin/partners/NAME/token and prints the TOKEN_A with its expiry."""
    asked: list[tuple[str, str]] = []
    partner = {
        "id": "p1", "name": "acme", "role": "EMSP", "country_code": "DE", "party_id": "ACM",
        "status": "PENDING", "sync_state": "IN_SYNC", "sync_detail": "", "endpoints": {},
        "token_a_expires_at": "2026-12-09T10:00:00Z", "token_a_expired": False,
    }  # fmt: skip

    def call(self: AdminClient, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        asked.append((method, path))
        return {
            "partner": partner,
            "token_a": "new-token-a",
            "versions_url": "https://us.example/ocpi/versions",
        }

    monkeypatch.setattr(AdminClient, "call", call)
    main(["--token", "x" * 40, "partner", "token", "acme"])
    assert asked == [("POST", "/admin/partners/acme/token")]
    out = capsys.readouterr().out
    assert "TOKEN_A:      new-token-a" in out and "TOKEN_A valid until 2026-12-09T10:00:00Z" in out


def test_partner_list_shows_an_expired_token_a(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator sees which partner's TOKEN_A expired, without reading JSON."""
    partner = {
        "id": "p1", "name": "late", "role": "CPO", "country_code": "NL", "party_id": "LAT",
        "status": "PENDING", "sync_state": "IN_SYNC", "sync_detail": "", "endpoints": {},
        "token_a_expires_at": "2026-11-01T10:00:00Z", "token_a_expired": True,
    }  # fmt: skip
    monkeypatch.setattr(AdminClient, "call", lambda *args, **kwargs: [partner])
    main(["--token", "x" * 40, "partner", "list"])
    assert "TOKEN_A EXPIRED since 2026-11-01T10:00:00Z" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["partner", "remove"], ("DELETE", "/admin/partners/{}")),
        (["partner", "rotate"], ("POST", "/admin/partners/{}/rotate")),
        (["partner", "token"], ("POST", "/admin/partners/{}/token")),
        (["partner", "sync", "--module", "tariffs"], ("POST", "/admin/partners/{}/sync?module=tariffs")),
    ],
)
def test_a_partner_name_is_quoted_in_the_path(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], path: tuple[str, str]
) -> None:
    """A name with '/', '?', '#', '%' or a space stays one path segment naming that partner (L11)."""
    asked: list[tuple[str, str]] = []

    def call(self: AdminClient, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        asked.append((method, path))
        return {}

    monkeypatch.setattr(AdminClient, "call", call)
    run(["--token", "x" * 40, *argv[:2], "hub/a b?c#d%e", *argv[2:]])
    method, template = path
    assert asked == [(method, template.format("hub%2Fa%20b%3Fc%23d%25e"))]
