"""``vtdui status``: the per-establishment figures an operator needs, from the state directory alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_helpers import EG, EJ, _config
from click.testing import CliRunner

from vtdui.cli import cli
from vtdui.config import load_config
from vtdui.outbox import NewItem, Outbox
from vtdui.schedule import SQLitePollSchedule
from vtdui.simulator.pki import Pki
from vtdui.state import StateStore


def _item(n: int, key: str) -> NewItem:
    return NewItem(kind="task", idempotency_key=f"Task/{n}/_history/1", id_nat_decision=key, finess_eg=EG,
                   payload={"resourceType": "Task"}, sequence=f"2026-11-25T10:00:0{n}.000+00:00")


def test_status_reports_polls_quarantine_outbox_and_certificates(tmp_path: Path, pki: Pki) -> None:
    path = _config(tmp_path, pki)
    config = load_config(path)
    state = StateStore(config.state_dir)
    try:
        state.commit_cursor(EG, "1", datetime.now(UTC) - timedelta(minutes=5))
        state.quarantine(finess_eg=EG, flux="1", vt_id="DocumentReference/bad", last_updated=None,
                         reason="hostile-xml", message="entity declarations are refused", raw=b"<!DOCTYPE x>")
    finally:
        state.close()
    outbox = Outbox.open(config.state_dir, config.retry)
    try:
        outbox.enqueue(_item(1, "VT1"))
        failed, _ = outbox.enqueue(_item(2, "VT2"))
        outbox.mark_failed(failed, "refused: statut 45 needs a motif")
    finally:
        outbox.close()
    schedule = SQLitePollSchedule.open(config.state_dir)
    try:  # a poll that failed twice: retried with backoff, and the operator sees why
        now = datetime.now(UTC)
        schedule.ensure([(EG, EJ)], now, 3600, stagger=False)
        for _ in range(2):
            [claimed] = schedule.claim("host:1", now, 1800, 4, 2)
            assert schedule.finish(claimed.finess_eg, "host:1", now, ok=False, error="flux 1: HTTP 503",
                                   interval=3600, backoff=300)
            now += timedelta(seconds=900)
    finally:
        schedule.close()

    result = CliRunner().invoke(cli, ["status", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [row] = data["establishments"]
    assert row["finess_eg"] == EG and row["name"] == "ESAT Les Ateliers"
    assert row["flux1_last_success_age_seconds"] is not None and row["flux1_last_success_age_seconds"] < 60
    assert row["flux5_last_success_age_seconds"] is None  # never polled: shown as such, not as fresh
    assert row["quarantined"] == 1
    assert row["outbox_unsent"] == 1 and row["outbox_failed"] == 1
    assert row["outbox_oldest_unsent_age_seconds"] is not None
    assert row["poll_failures"] == 2 and row["poll_last_error"] == "flux 1: HTTP 503" and row["polling_by"] is None
    assert 1400 < row["next_poll_in_seconds"] <= 1500  # 2nd failure at +900 s waits 600 s (300 s doubled)
    [entity] = data["legal_entities"]
    assert entity["finess_ej"] == EJ and entity["certificate_days_left"] > 300 and entity["certificate_error"] is None

    table = CliRunner().invoke(cli, ["status", "--config", str(path)])
    assert table.exit_code == 0, table.output
    assert EG in table.output and "hostile-xml" in table.output and "certificate valid until" in table.output
