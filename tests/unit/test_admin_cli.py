"""ocpi-admin: no well-known token to fall back on (H3), and the parties named at registration (M3)."""

from __future__ import annotations

import pytest

from services.admin.cli import AdminError, _parser, _parties, run


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
