"""No well-known admin token (H3): every process refuses to start with a default, placeholder or short one."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from shared.settings import UnsafeSettings, load_settings, refuse_unsafe
from tests.support.refusals import refused_start

WEAK = [
    "",
    "change-me-admin-token",
    "local-admin-token",
    "replace-with-a-long-random-token",
    "REPLACE-WITH-A-LONG-RANDOM-TOKEN-PLEASE-0123456789",
    "changeme-changeme-changeme-changeme-changeme",
    "a" * 64,
    secrets.token_hex(15),  # 30 characters: short
]


@pytest.mark.parametrize("token", WEAK)
def test_a_default_placeholder_or_short_admin_token_is_refused(token: str) -> None:
    """The refusal names the setting, so an operator knows what to fix."""
    settings = load_settings(environ={"OCPI_ADMIN_TOKEN": token} if token else {})
    with pytest.raises(UnsafeSettings, match="OCPI_ADMIN_TOKEN"):
        refuse_unsafe(settings)


def test_a_long_random_admin_token_is_accepted() -> None:
    """What `openssl rand -hex 32` or `secrets.token_urlsafe(32)` gives passes."""
    for token in (secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_hex(16)):
        refuse_unsafe(load_settings(environ={"OCPI_ADMIN_TOKEN": token}))


def test_the_default_settings_carry_no_usable_admin_token() -> None:
    """Without OCPI_ADMIN_TOKEN there is no token at all, never a well-known one."""
    assert load_settings(environ={}).admin_token == ""


@pytest.mark.parametrize("service", ["gateway", "locations", "dispatcher"])
def test_a_process_started_with_a_placeholder_admin_token_exits_naming_the_setting(service: str) -> None:
    """The gateway and the services alike stop before connecting to anything."""
    stderr = refused_start(service, OCPI_ADMIN_TOKEN="replace-with-a-long-random-token")
    assert b"OCPI_ADMIN_TOKEN" in stderr, stderr[-2000:]


ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_deploy_files_carry_no_usable_admin_token() -> None:
    """Compose requires the token from the operator, k8s applies no Secret, the image has none."""
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "OCPI_ADMIN_TOKEN: ${OCPI_ADMIN_TOKEN:?" in compose
    kustomization = (ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text(encoding="utf-8")
    resources = re.findall(r"^  - (\S+\.yaml)$", kustomization, flags=re.MULTILINE)
    for name in resources:
        assert "kind: Secret" not in (ROOT / "deploy" / "k8s" / name).read_text(encoding="utf-8"), name
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "OCPI_ADMIN_TOKEN=" not in dockerfile


def test_the_image_keeps_the_admin_port_on_loopback_and_k8s_restricts_it() -> None:
    """ADMIN_HOST=0.0.0.0 only where a deployment says so; k8s pairs it with a NetworkPolicy on 8081."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"^\s*ADMIN_HOST=", dockerfile, flags=re.MULTILINE)
    kustomization = (ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text(encoding="utf-8")
    assert "network-policy.yaml" in kustomization
    policy = (ROOT / "deploy" / "k8s" / "network-policy.yaml").read_text(encoding="utf-8")
    assert "kind: NetworkPolicy" in policy and "port: 8081" in policy and "from:" in policy
