"""``vtdui quarantine``: list, show (with the raw bytes), retry and drop, from the state directory alone."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

from cli_helpers import EG, _config
from click.testing import CliRunner

from vtdui.cli import cli
from vtdui.config import load_config
from vtdui.simulator.pki import Pki
from vtdui.state import StateStore


def test_show_list_retry_drop(tmp_path: Path, pki: Pki) -> None:
    path = _config(tmp_path, pki, extra="[sync]\nquarantine_backoff_seconds = 600")
    state = StateStore(load_config(path).state_dir)
    try:
        kept = state.quarantine(finess_eg=EG, flux="1", vt_id="dec-1", last_updated="2026-11-25T10:00:00.000+00:00",
                                reason="malformed-resource", message="DocumentReference.meta is not an object",
                                raw=b'{"meta": "v1"}')
        other = state.quarantine(finess_eg=EG, flux="5", vt_id="task-1", last_updated=None, reason="malformed-task",
                                 message="Task.input is not a list", raw=None)
    finally:
        state.close()
    runner = CliRunner()

    listed = runner.invoke(cli, ["quarantine", "list", "--config", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["key"]: r for r in json.loads(listed.output)["items"]}
    assert set(rows) == {kept.key, other.key}
    due = datetime.fromisoformat(rows[kept.key]["next_try"]) - datetime.fromisoformat(kept.last_tried)
    assert 599 <= due.total_seconds() <= 601  # the configured backoff, first try
    table = runner.invoke(cli, ["quarantine", "list", "--config", str(path)])
    assert table.exit_code == 0 and "malformed-resource" in table.output

    raw = tmp_path / "raw.json"
    shown = runner.invoke(cli, ["quarantine", "show", kept.key, "--config", str(path), "--raw", str(raw), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["reason"] == "malformed-resource"
    assert raw.read_bytes() == b'{"meta": "v1"}' and stat.S_IMODE(raw.stat().st_mode) == 0o600
    none_kept = runner.invoke(cli, ["quarantine", "show", other.key, "--config", str(path), "--raw", str(raw)])
    assert none_kept.exit_code != 0 and "no raw bytes" in none_kept.output

    assert runner.invoke(cli, ["quarantine", "retry", kept.key, "--config", str(path)]).exit_code == 0
    rows = {r["key"]: r for r in json.loads(runner.invoke(cli, ["quarantine", "list", "--config", str(path),
                                                                "--json"]).output)["items"]}
    assert datetime.fromisoformat(rows[kept.key]["next_try"]) < datetime.now(UTC)  # due at the next cycle
    dropped = runner.invoke(cli, ["quarantine", "drop", other.key, "--config", str(path), "--json"])
    assert dropped.exit_code == 0 and json.loads(dropped.output)["action"] == "drop"
    left = json.loads(runner.invoke(cli, ["quarantine", "list", "--config", str(path), "--json"]).output)
    assert [r["key"] for r in left["items"]] == [kept.key]
    unknown = runner.invoke(cli, ["quarantine", "drop", other.key, "--config", str(path)])
    assert unknown.exit_code == 1 and "no quarantined item" in unknown.output and unknown.exception is not None
    assert isinstance(unknown.exception, SystemExit)
