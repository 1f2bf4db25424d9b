"""The state store: cursors only move forward, dedupe, quarantine kept with its reason, pending statuses."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vtdui.state import StateStore

EG = "350000022"


def test_cursor_absent_then_committed_and_never_moves_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.cursor(EG, "1") is None
    t1 = datetime(2026, 5, 10, 12, tzinfo=UTC)
    store.commit_cursor(EG, "1", t1)
    store.commit_cursor(EG, "1", t1 - timedelta(hours=1))
    cursor = store.cursor(EG, "1")
    assert cursor is not None and cursor.instant == t1
    assert store.cursor(EG, "5") is None


def test_state_survives_reopen_and_schema_is_versioned(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.mark_stored("dr-1", EG, "2026-05-10T14:02:11.000+02:00", "VT-1", "decision")
    store.close()
    again = StateStore(tmp_path)
    assert again.schema_version() == 1
    assert again.seen("dr-1", EG, "2026-05-10T14:02:11.000+02:00")
    assert not again.seen("dr-1", EG, "2026-05-11T00:00:00.000+02:00")  # a newer version is not seen
    assert not again.seen("dr-1", "350000030", "2026-05-10T14:02:11.000+02:00")
    assert again.known_decision("VT-1", EG)


def test_quarantine_keeps_raw_bytes_private_and_counts_attempts(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    item = store.quarantine(finess_eg=EG, flux="1", vt_id="dr-9", last_updated="t1", reason="dtd-forbidden",
                            message="DOCTYPE not allowed", raw=b"<!DOCTYPE x>")
    assert item.path is not None and Path(item.path).read_bytes() == b"<!DOCTYPE x>"
    assert stat.S_IMODE(Path(item.path).stat().st_mode) == 0o600
    again = store.quarantine(finess_eg=EG, flux="1", vt_id="dr-9", last_updated="t1", reason="dtd-forbidden",
                             message="DOCTYPE not allowed", raw=None)
    assert again.attempts == 2 and again.path == item.path
    assert [q.reason for q in store.quarantined()] == ["dtd-forbidden"]
    store.mark_stored("dr-9", EG, "t2", "VT-9", "decision")  # a corrected version landed
    assert store.quarantined() == []
    assert len(store.quarantined(include_resolved=True)) == 1


def test_pending_statuses_dedupe_and_apply(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    body = {"resourceType": "Task", "id": "tk-1"}
    assert store.keep_status(vt_task_id="tk-1", finess_eg=EG, id_nat_decision="VT-1", last_updated="t1", body=body)
    assert not store.keep_status(vt_task_id="tk-1", finess_eg=EG, id_nat_decision="VT-1", last_updated="t1",
                                 body=body)
    assert [p.body for p in store.pending_statuses("VT-1", EG)] == [body]
    store.mark_status_applied("tk-1", EG)
    assert store.pending_statuses("VT-1", EG) == []
    # a new version of the same ViaTrajectoire Task is pending again
    assert store.keep_status(vt_task_id="tk-1", finess_eg=EG, id_nat_decision="VT-1", last_updated="t2", body=body)
    assert len(store.pending_statuses(None, EG)) == 1


def test_evaluation_due_after_consent_until_fetched(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.mark_stored("dr-1", EG, "t1", "VT-1", "decision")
    assert store.evaluations_due(EG) == []
    store.record_consent("VT-1", EG)
    assert store.consent_accepted("VT-1", EG)
    assert store.evaluations_due(EG) == ["VT-1"]
    store.mark_evaluation_fetched("VT-1", EG, "1")
    assert store.evaluations_due(EG) == []
