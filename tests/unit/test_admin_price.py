"""ocpi-admin price: a CDR priced offline from two files, one JSON object out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.admin.cli import main

TARIFF = {
    "id": "11",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "FLAT", "price": 0.50, "step_size": 1}]},
        {
            "price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}],
            "restrictions": {"start_time": "18:00", "end_time": "07:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]},
    ],
    "last_updated": "2026-11-01T00:00:00Z",
}
# 17:30Z is 18:30 in Amsterdam (night rate 0.20) but 17:30 in UTC (day rate 0.30).
CDR = {
    "id": "CDR-1",
    "start_date_time": "2026-12-01T17:30:00Z",
    "stop_date_time": "2026-12-01T19:30:00Z",
    "auth_id": "DE-EMB-1",
    "auth_method": "WHITELIST",
    "location": {"id": "LOC-1", "time_zone": "Europe/Amsterdam"},
    "currency": "EUR",
    "charging_periods": [
        {"start_date_time": "2026-12-01T17:30:00Z", "dimensions": [{"type": "ENERGY", "volume": 10}]}
    ],
    "total_cost": 2.5,
    "total_energy": 10,
    "total_time": 2,
    "last_updated": "2026-12-01T19:31:00Z",
}


def _files(tmp_path: Path, tariff: Any = TARIFF, cdr: Any = CDR) -> list[str]:
    paths = []
    for name, body in (("tariff.json", tariff), ("cdr.json", cdr)):
        path = tmp_path / name
        path.write_text(body if isinstance(body, str) else json.dumps(body))
        paths.append(str(path))
    return ["price", "--tariff", paths[0], "--cdr", paths[1]]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    out, err = capsys.readouterr()
    return int(stopped.value.code or 0), out, err


def test_prices_in_the_cdrs_location_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token, no URL: the CDR is priced in its location's zone and printed as one JSON object."""
    monkeypatch.delenv("OCPI_ADMIN_TOKEN", raising=False)
    code, out, err = _run(_files(tmp_path), capsys)
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["total_cost"] == 2.5  # 0.50 + 10 kWh * 0.20
    assert (body["total_energy"], body["total_time"], body["currency"]) == (10.0, 2.0, "EUR")
    assert body["periods"][0]["dimensions"][1]["tariff_element"] == 1


def test_time_zone_option_overrides_the_cdr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--time-zone UTC reads 17:30 as daytime: 0.50 + 10 kWh * 0.30."""
    code, out, _ = _run([*_files(tmp_path), "--time-zone", "UTC"], capsys)
    assert (code, json.loads(out)["total_cost"]) == (0, 3.5)


def test_a_bare_session_object_defaults_to_utc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Any object with start_date_time, stop_date_time and charging_periods will do; no location: UTC."""
    bare = {k: CDR[k] for k in ("start_date_time", "stop_date_time", "charging_periods")}
    code, out, _ = _run(_files(tmp_path, cdr=bare), capsys)
    assert (code, json.loads(out)["total_cost"]) == (0, 3.5)


def test_a_list_of_tariffs_prices_with_the_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A list (a CDR's `tariffs`) is accepted; with more than one, stderr says which one was used."""
    other = {
        **TARIFF,
        "id": "12",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 9, "step_size": 1}]}],
    }
    code, out, err = _run(_files(tmp_path, tariff=[TARIFF, other]), capsys)
    assert (code, json.loads(out)["total_cost"]) == (0, 2.5)
    assert "first, id 11" in err


@pytest.mark.parametrize(
    ("tariff", "cdr", "message"),
    [
        ("{not json", CDR, "tariff.json: JSON is malformed"),
        ([], CDR, "empty list"),
        ({**TARIFF, "currency": None}, CDR, "`$.currency`"),
        (
            TARIFF,
            {
                **CDR,
                "charging_periods": [
                    {
                        "start_date_time": "2026-12-01T17:30:00Z",
                        "dimensions": [{"type": "ENERGY", "volume": "ten"}],
                    }
                ],
            },
            "`$.charging_periods[0].dimensions[0].volume`",
        ),
        (TARIFF, {**CDR, "stop_date_time": "2026-12-01T17:00:00Z"}, "cannot price"),
        (
            TARIFF,
            {**CDR, "location": {"time_zone": "Nowhere/Atlantis"}},
            "unknown time zone 'Nowhere/Atlantis'",
        ),
    ],
)
def test_invalid_input_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tariff: Any, cdr: Any, message: str
) -> None:
    """Bad JSON, a bad field (named with its path) or an unpriceable session: exit 1, one line on stderr."""
    code, out, err = _run(_files(tmp_path, tariff, cdr), capsys)
    assert (code, out) == (1, "")
    assert err.startswith("ocpi-admin price: ") and message in err
    assert err.count("\n") == 1


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that does not exist: exit 1, its path in the message."""
    argv = _files(tmp_path)
    argv[2] = str(tmp_path / "nope.json")
    code, _, err = _run(argv, capsys)
    assert code == 1 and f"cannot read {tmp_path / 'nope.json'}: No such file or directory" in err


def test_missing_options_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--tariff and --cdr are required (argparse exits 2)."""
    code, _, err = _run(["price", "--cdr", "x.json"], capsys)
    assert code == 2 and "--tariff" in err
