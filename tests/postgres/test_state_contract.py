"""The state store behaves the same on SQLite and PostgreSQL (every test runs on both backends)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

EG = "350000022"
OTHER_EG = "350000030"

StateFactory = Callable[[], Any]


def test_cursor_absent_then_committed_and_never_moves_back(state_factory: StateFactory) -> None:
    store = state_factory()
    assert store.cursor(EG, "1") is None
    t1 = datetime(2026, 5, 10, 12, tzinfo=UTC)
    store.commit_cursor(EG, "1", t1)
    store.commit_cursor(EG, "1", t1 - timedelta(hours=1))
    cursor = store.cursor(EG, "1")
    assert cursor is not None and cursor.instant == t1
    assert cursor.last_success.tzinfo is not None
    assert store.cursor(EG, "5") is None
    store.commit_cursor(EG, "1", t1 + timedelta(minutes=5))
    store.commit_cursor(EG, "5", t1)
    assert [(c.flux, c.instant) for c in store.cursors()] == [("1", t1 + timedelta(minutes=5)), ("5", t1)]


def test_documents_survive_reopen(state_factory: StateFactory) -> None:
    store = state_factory()
    store.mark_stored("dr-1", EG, "2026-05-10T14:02:11.000+02:00", "VT-1", "decision")
    store.mark_stored("ev-1", EG, "2026-05-10T14:03:00.000+02:00", "VT-1", "evaluation")
    store.close()
    again = state_factory()
    assert again.schema_version() >= 1
    assert again.seen("dr-1", EG, "2026-05-10T14:02:11.000+02:00")
    assert not again.seen("dr-1", EG, "2026-05-11T00:00:00.000+02:00")  # a newer version is not seen
    assert not again.seen("dr-1", OTHER_EG, "2026-05-10T14:02:11.000+02:00")
    assert again.known_decision("VT-1", EG)
    assert not again.known_decision("VT-1", OTHER_EG)
    assert again.document_count() == 2 and again.document_count(EG) == 2 and again.document_count(OTHER_EG) == 0


def test_quarantine_keeps_raw_bytes_and_counts_attempts(state_factory: StateFactory) -> None:
    store = state_factory()
    item = store.quarantine(finess_eg=EG, flux="1", vt_id="dr-9", last_updated="t1", reason="dtd-forbidden",
                            message="DOCTYPE not allowed", raw=b"<!DOCTYPE x>\x00\xff")
    assert item.key == "dr-9@t1" and item.attempts == 1 and item.resolved_at is None
    assert datetime.fromisoformat(item.first_seen).tzinfo is not None
    assert store.quarantine_raw(item.key, EG) == b"<!DOCTYPE x>\x00\xff"
    again = store.quarantine(finess_eg=EG, flux="1", vt_id="dr-9", last_updated="t1", reason="dtd-forbidden",
                             message="DOCTYPE still there", raw=None)
    assert again.attempts == 2 and again.path == item.path and again.message == "DOCTYPE still there"
    assert store.quarantine_raw(item.key, EG) == b"<!DOCTYPE x>\x00\xff"  # kept when not given again
    assert [q.reason for q in store.quarantined()] == ["dtd-forbidden"]
    store.mark_stored("dr-9", EG, "t2", "VT-9", "decision")  # a corrected version landed
    assert store.quarantined() == []
    [resolved] = store.quarantined(include_resolved=True)
    assert resolved.resolved_at is not None
    store.quarantine(finess_eg=EG, flux="3", vt_id="evaluation:VT-9", last_updated=None, reason="absent",
                     message="no evaluation yet", raw=None)
    assert store.quarantine_raw("evaluation:VT-9@-", EG) is None
    store.resolve_quarantine("evaluation:VT-9", EG)
    assert store.quarantined() == []


def test_quarantine_retry_now_and_drop(state_factory: StateFactory) -> None:
    store = state_factory()
    item = store.quarantine(finess_eg=EG, flux="1", vt_id="dr-7", last_updated="t1", reason="read-forbidden",
                            message="HTTP 403", raw=None)
    other = store.quarantine(finess_eg=EG, flux="1", vt_id="dr-8", last_updated="t1", reason="too-large",
                             message="over the cap", raw=None)
    assert store.retry_quarantine(item.key, EG) is True
    [retried] = [q for q in store.quarantined() if q.key == item.key]
    assert datetime.fromisoformat(retried.last_tried) < datetime(1971, 1, 1, tzinfo=UTC)  # due at once
    assert retried.attempts == 1
    assert store.drop_quarantine(other.key, EG) is True
    assert [q.key for q in store.quarantined()] == [item.key]
    dropped = next(q for q in store.quarantined(include_resolved=True) if q.key == other.key)
    assert dropped.resolved_at and dropped.message == "dropped by an operator: over the cap"
    assert store.drop_quarantine(other.key, EG) is False and store.retry_quarantine("nope", EG) is False
    assert store.retry_quarantine(item.key, OTHER_EG) is False


def test_pending_statuses_dedupe_and_apply(state_factory: StateFactory) -> None:
    store = state_factory()
    body = {"resourceType": "Task", "id": "tk-1", "z": 1, "a": [1, 2]}
    assert store.keep_status(vt_task_id="tk-1", finess_eg=EG, id_nat_decision="VT-1", last_updated="t1", body=body)
    assert not store.keep_status(vt_task_id="tk-1", finess_eg=EG, id_nat_decision="VT-1", last_updated="t1",
                                 body=body)
    [pending] = store.pending_statuses("VT-1", EG)
    assert pending.body == body and list(pending.body) == list(body) and pending.applied_at is None
    assert store.waiting_status_count() == {EG: 1}
    store.mark_status_applied("tk-1", EG)
    assert store.pending_statuses("VT-1", EG) == []
    assert store.waiting_status_count() == {}
    # a new version of the same ViaTrajectoire Task is pending again
    assert store.keep_status(vt_task_id="tk-1", finess_eg=EG, id_nat_decision="VT-1", last_updated="t2", body=body)
    assert store.keep_status(vt_task_id="tk-2", finess_eg=EG, id_nat_decision="VT-2", last_updated="t0", body=body)
    assert [p.vt_task_id for p in store.pending_statuses(None, EG)] == ["tk-2", "tk-1"]  # oldest first
    assert store.pending_statuses(None, OTHER_EG) == []


def test_evaluation_due_after_consent_until_fetched(state_factory: StateFactory) -> None:
    store = state_factory()
    store.mark_stored("dr-1", EG, "t1", "VT-1", "decision")
    assert store.evaluations_due(EG) == []
    store.record_consent("VT-1", EG)
    store.record_consent("VT-1", EG)  # twice: no error
    assert store.consent_accepted("VT-1", EG)
    assert not store.consent_accepted("VT-1", OTHER_EG)
    assert store.evaluations_due(EG) == ["VT-1"]
    store.mark_evaluation_fetched("VT-1", EG, "1")
    assert store.evaluations_due(EG) == []
    time.sleep(0.01)  # SQLite keeps milliseconds
    store.mark_stored("dr-1", EG, "t2", "VT-1", "decision")  # the decision changed: fetch it again
    assert store.evaluations_due(EG) == ["VT-1"]
