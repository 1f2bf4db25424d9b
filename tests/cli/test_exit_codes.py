"""Exit statuses of the real ``vtdui`` executable (README, "Exit codes"), and ``--json`` where it reports.

Run as subprocesses: ``CliRunner`` would hide what ``main()`` does with click's statuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import EG, EJ

from vtdui import exitcodes
from vtdui.simulator.pki import Pki

VTDUI = str(Path(sys.executable).with_name("vtdui"))


def _vtdui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTDUI_", "FHIR_BASE_URL"))}
    return subprocess.run([VTDUI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def unreachable(tmp_path: Path) -> Path:
    """A valid configuration whose ViaTrajectoire does not answer (one attempt, no delay)."""
    path = tmp_path / "vtdui.toml"
    path.write_text('state_dir = "state"\n[viatrajectoire]\nbase_url = "https://127.0.0.1:9/fhir"\n'
                    'token_url = "https://127.0.0.1:9/token"\nclient_id = "generic"\n'
                    'client_secret = "a-client-secret"\n[retry]\nattempts = 1\nbase_delay = 0\nmax_delay = 0\n',
                    encoding="utf-8")
    return path


def test_the_codes_do_not_collide() -> None:
    codes = [exitcodes.OK, exitcodes.ERROR, exitcodes.USAGE, exitcodes.PARTIAL, exitcodes.INTERRUPTED]
    assert len(set(codes)) == len(codes) and exitcodes.USAGE == 2  # click's own usage status


def test_ok_usage_and_error(tmp_path: Path, unreachable: Path) -> None:
    assert _vtdui("--version", cwd=tmp_path).returncode == exitcodes.OK
    unknown = _vtdui("no-such-command", cwd=tmp_path)
    assert unknown.returncode == exitcodes.USAGE and "No such command" in unknown.stderr
    bad_option = _vtdui("outbox", "list", "--limit", "0", cwd=tmp_path)
    assert bad_option.returncode == exitcodes.USAGE
    missing = _vtdui("config", "check", "--config", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert missing.returncode == exitcodes.ERROR and missing.stderr.startswith("Error: ")
    unknown_item = _vtdui("outbox", "show", "999", "--config", str(unreachable), cwd=tmp_path)
    assert unknown_item.returncode == exitcodes.ERROR and "does not exist" in unknown_item.stderr


def test_hapi_status_exits_1_when_hapi_is_not_running(tmp_path: Path) -> None:
    text = _vtdui("hapi", "status", "--state-dir", str(tmp_path), cwd=tmp_path)
    assert text.returncode == exitcodes.ERROR and "not running" in text.stderr and "Traceback" not in text.stderr
    as_json = _vtdui("hapi", "status", "--state-dir", str(tmp_path), "--json", cwd=tmp_path)
    assert as_json.returncode == exitcodes.ERROR and json.loads(as_json.stdout) == {"running": False}


def test_a_failed_establishment_exits_partial_not_usage(tmp_path: Path, pki: Pki) -> None:
    creds = pki.clients[EJ]
    config = tmp_path / "vtdui.toml"
    config.write_text(
        'state_dir = "state"\n[viatrajectoire]\nbase_url = "https://127.0.0.1:9/fhir"\n'
        'token_url = "https://127.0.0.1:9/token"\nclient_id = "generic"\nclient_secret = "a-client-secret"\n'
        f'ca_file = "{pki.ca_cert}"\n[retry]\nattempts = 1\nbase_delay = 0\nmax_delay = 0\n'
        f'[[legal_entities]]\nfiness_ej = "{EJ}"\np12_file = "{creds.p12}"\np12_password = "{creds.p12_password}"\n'
        f'[[legal_entities.establishments]]\nfiness_eg = "{EG}"\nname = "ESAT"\n', encoding="utf-8")
    done = _vtdui("sync", "--json", "--config", str(config), cwd=tmp_path)
    assert done.returncode == exitcodes.PARTIAL, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is False and "Traceback" not in done.stderr


def test_json_on_the_commands_that_report(tmp_path: Path, unreachable: Path) -> None:
    config = str(unreachable)
    listed = _vtdui("outbox", "list", "--json", "--config", config, cwd=tmp_path)
    assert listed.returncode == 0 and json.loads(listed.stdout)["items"] == []
    exported = _vtdui("evidence", str(tmp_path / "evidence"), "--json", "--config", config, cwd=tmp_path)
    assert exported.returncode == 0 and json.loads(exported.stdout)["items"] == 0
    checked = _vtdui("config", "check", "--json", "--config", config, cwd=tmp_path)
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True
    for command in ("retry", "drop"):
        refused = _vtdui("outbox", command, "7", "--json", "--config", config, cwd=tmp_path)
        assert refused.returncode == exitcodes.ERROR and "does not exist" in refused.stderr


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge", "huge-base64"])
def test_cda_on_odd_inputs_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    if kind == "dev-zero":
        target = Path("/dev/zero")
    elif kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)  # no writer: reading it would block for ever
    elif kind == "directory":
        target = tmp_path
    else:
        target = tmp_path / "huge.xml"
        with target.open("wb") as handle:
            handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of zeros without writing them
    args = ["cda", "--base64", str(target)] if kind == "huge-base64" else ["cda", str(target)]
    done = _vtdui(*args, cwd=tmp_path)  # the timeout turns a hang into a failure
    assert done.returncode == exitcodes.ERROR, done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    expected = "too-large" if kind.startswith("huge") else "not-a-file"
    assert done.stderr.startswith(f"Error: document refused ({expected})"), done.stderr


def test_the_readme_documents_every_code_in_one_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    documented = {int(line.split("|")[1]) for line in section.splitlines() if line.startswith("| ") and
                  line.split("|")[1].strip().isdigit()}
    assert documented == {exitcodes.OK, exitcodes.ERROR, exitcodes.USAGE, exitcodes.PARTIAL, exitcodes.INTERRUPTED}
