"""Sealing partners' tokens (shared/sealing.py, review M5): what opens, what does not, key rotation,
and the processes that refuse to start without keys."""

from __future__ import annotations

import base64
import os

import pytest

from shared.sealing import Sealer, SealError, key_id, new_key, parse_keys, sealer_for
from shared.settings import UnsafeSettings, load_settings
from tests.support.refusals import refused_start

OLD, NEW = new_key(), new_key()


def test_a_sealed_token_opens_for_its_partner_and_does_not_show_the_token() -> None:
    sealer = Sealer.from_setting(NEW)
    sealed = sealer.seal("their-secret-token", "partner-1")
    assert "their-secret-token" not in sealed
    assert sealer.open(sealed, "partner-1") == "their-secret-token"
    # Random nonces: the same token sealed twice gives two different values.
    assert sealer.seal("their-secret-token", "partner-1") != sealed


def test_a_sealed_token_copied_to_another_partner_does_not_open() -> None:
    sealer = Sealer.from_setting(NEW)
    with pytest.raises(SealError, match="partner-2"):
        sealer.open(sealer.seal("t", "partner-1"), "partner-2")


@pytest.mark.parametrize("position", [4, 20, -1])
def test_an_altered_sealed_value_does_not_open(position: int) -> None:
    sealer = Sealer.from_setting(NEW)
    sealed = sealer.seal("their-secret-token", "p")
    prefix, body = sealed[:12], sealed[12:]
    index = position % len(body)
    swapped = "A" if body[index] != "A" else "B"
    with pytest.raises(SealError):
        sealer.open(prefix + body[:index] + swapped + body[index + 1 :], "p")


@pytest.mark.parametrize("value", ["their-secret-token", "", "s1.", "s2.abcdef12.AAAA", "s1.abcdef12."])
def test_what_is_not_a_sealed_value_does_not_open(value: str) -> None:
    with pytest.raises(SealError):
        Sealer.from_setting(NEW).open(value, "p")


def test_a_rotation_seals_with_the_new_key_and_still_opens_the_old_ones() -> None:
    before = Sealer.from_setting(OLD)
    sealed_before = before.seal("t", "p")
    during = Sealer.from_setting(f"{NEW},{OLD}")
    assert during.open(sealed_before, "p") == "t"
    assert not during.is_current(sealed_before)
    resealed = during.seal("t", "p")
    assert during.is_current(resealed) and resealed.split(".")[1] == key_id(base64.b64decode(NEW))
    after = Sealer.from_setting(NEW)
    assert after.open(resealed, "p") == "t"
    with pytest.raises(SealError, match=f"key {before.current}.*PARTNER_TOKEN_KEYS"):
        after.open(sealed_before, "p")


def test_keys_are_taken_in_standard_or_url_safe_base64_padded_or_not() -> None:
    raw = bytes(range(251, 256)) + os.urandom(27)
    standard = base64.b64encode(raw).decode()
    url_safe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert parse_keys(standard) == parse_keys(url_safe) == [raw]
    assert parse_keys(f" {NEW} , {OLD} ,") == [base64.b64decode(NEW), base64.b64decode(OLD)]


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("", "is not set"),
        (" , ", "is not set"),
        ("not base64!", "key 1 is not base64"),
        (base64.b64encode(b"short").decode(), "key 1 has 5 bytes, not 32"),
        (f"{NEW},{base64.b64encode(os.urandom(16)).decode()}", "key 2 has 16 bytes"),
        (f"{NEW},{NEW}", "the same key twice"),
    ],
)
def test_unusable_keys_are_refused_naming_the_setting(setting: str, problem: str) -> None:
    with pytest.raises(UnsafeSettings) as refused:
        sealer_for(load_settings(environ={"PARTNER_TOKEN_KEYS": setting}))
    assert "PARTNER_TOKEN_KEYS" in str(refused.value) and problem in str(refused.value)


@pytest.mark.parametrize("service", ["gateway", "dispatcher"])
def test_the_processes_that_call_partners_do_not_start_without_keys(service: str) -> None:
    """They stop before connecting to anything, naming the setting."""
    admin_token = base64.b16encode(os.urandom(24)).decode()
    stderr = refused_start(service, OCPI_ADMIN_TOKEN=admin_token, PARTNER_TOKEN_KEYS="")
    assert b"PARTNER_TOKEN_KEYS is not set" in stderr, stderr[-2000:]
