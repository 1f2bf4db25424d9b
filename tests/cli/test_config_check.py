"""``vtdui config check``: each kind of configuration mistake gives one message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import EJ, _config
from click.testing import CliRunner

from vtdui.cli import cli
from vtdui.simulator.pki import Pki


def _check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_a_valid_configuration_reports_the_certificate_validity(tmp_path: Path, pki: Pki) -> None:
    code, output = _check(_config(tmp_path, pki))
    assert code == 0, output
    assert "configuration OK" in output
    assert f"legal entity {EJ}" in output and "valid until" in output


def test_the_state_database_is_named_without_its_password(tmp_path: Path, pki: Pki,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, pki)
    code, output = _check(path)
    assert code == 0 and "SQLite files in the state directory" in output, output
    monkeypatch.setenv("VTDUI_DATABASE_URL", "postgresql://vtdui:s3cr3t-pw@db.example:5432/vtdui")
    code, output = _check(path)
    assert code == 0, output
    assert "PostgreSQL postgresql://vtdui:***@db.example:5432/vtdui" in output
    assert "s3cr3t-pw" not in output


@pytest.mark.parametrize(("case", "expected"), [
    ("missing file", "does not exist; create it"),
    ("bad FINESS", "legal_entities[0].establishments[0].finess_eg"),
    ("unreadable certificate", "legal_entities[0].p12_file"),
    ("wrong password", "wrong p12_password"),
    ("unknown key", "hapi_url"),
])
def test_each_mistake_is_named_with_what_to_fix(tmp_path: Path, pki: Pki, case: str, expected: str) -> None:
    if case == "missing file":
        path = tmp_path / "absent.toml"
    elif case == "bad FINESS":
        path = _config(tmp_path, pki, finess_eg="350000029")
    elif case == "unreadable certificate":
        path = _config(tmp_path, pki, p12_file=str(tmp_path / "nowhere.p12"))
    elif case == "wrong password":
        path = _config(tmp_path, pki, p12_password="not-the-password")
    else:
        path = _config(tmp_path, pki, extra='hapi_url = "http://127.0.0.1:8080/fhir"')
    code, output = _check(path)
    assert code != 0
    assert expected in output, output
    assert "Traceback" not in output
    # one paragraph: the message is short and never echoes a secret
    assert str(pki.clients[EJ].p12_password) not in output and "s3cret" not in output
    assert len(output.strip().splitlines()) <= 8, output
