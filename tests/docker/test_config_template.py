"""docker/vtdui.example.toml, the template of the stack's configuration, is a valid vtdui configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from vtdui.config import load_config
from vtdui.simulator.pki import ensure_pki

TEMPLATE = Path(__file__).resolve().parents[2] / "docker" / "vtdui.example.toml"


def test_template_loads_once_its_certificate_and_secrets_exist(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    pki = ensure_pki(tmp_path / "pki", [("350000014", "Association Exemple")])
    creds = pki.clients["350000014"]
    # the container's paths, pointed at this test's files (what the operator's mounts provide)
    text = text.replace("/etc/vtdui/certs/350000014.p12", str(creds.p12))
    secret = tmp_path / "p12-password"
    secret.write_text(str(creds.p12_password), encoding="utf-8")
    text = text.replace("/run/secrets/p12-password", str(secret))
    text = text.replace('"/var/lib/vtdui"', f'"{tmp_path / "state"}"').replace('"/etc/vtdui/hooks"',
                                                                            f'"{tmp_path / "hooks"}"')
    copy = tmp_path / "vtdui.toml"
    copy.write_text(text, encoding="utf-8")
    for name in ("FHIR_BASE_URL", "VTDUI_RECEIVER_HOST", "VTDUI_RECEIVER_PUBLIC_URL", "VTDUI_STATE_DIR",
                 "VTDUI_HOOKS_DIR", "VTDUI_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VT_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("VTDUI_RECEIVER_SECRET", "a-long-random-value")
    config = load_config(copy)
    assert config.hapi.base_url == "http://hapi:8080/fhir"
    assert (config.receiver.host, config.receiver.port) == ("0.0.0.0", 8765)
    assert config.receiver.public_url == "http://vtdui:8765/vtdui/hook"
    assert config.receiver.secret == "a-long-random-value"
    assert not config.database.is_postgres
