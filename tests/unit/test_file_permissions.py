"""Every file vtdui writes that holds payloads or secrets is 0600 in a 0700 directory, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vtdui.config import Config
from vtdui.evidence import export_evidence
from vtdui.outbox import NewItem
from vtdui.storage import open_exchanges, open_outbox, open_poll_schedule, open_state
from vtdui.viatrajectoire.trace import Exchange

EG = "350000022"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask (files 0644, directories 0755) that the stores must not inherit."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_state_outbox_schedule_exchange_log_quarantine_and_evidence_are_private(
        tmp_path: Path, loose_umask: None) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o755)  # created beforehand by an operator: tightened, not trusted
    config = Config(state_dir=state_dir, hooks_dir=None)
    state, outbox = open_state(config), open_outbox(config)
    schedule, exchanges = open_poll_schedule(config), open_exchanges(config)
    try:
        state.commit_cursor(EG, "1", datetime.now(UTC))
        state.quarantine(finess_eg=EG, flux="1", vt_id="DocumentReference/x", last_updated=None,
                         reason="hostile-xml", message="refused", raw=b"<!DOCTYPE x>")
        outbox.enqueue(NewItem(kind="task", idempotency_key="Task/1/_history/1", id_nat_decision="VT1",
                               finess_eg=EG, payload={"resourceType": "Task"},
                               sequence="2026-11-25T10:00:00.000+00:00"))
        exchanges.record(Exchange(kind="fhir", method="POST", url="https://vt.example/fhir/Task", finess_eg=EG,
                                  attempt=1, started_at=datetime.now(UTC), duration=0.1, status=201,
                                  request_body=b"{}", response_body=b"{}"))
        # while the connections are open the -wal and -shm files exist: they hold the same rows
        open_modes = _modes(state_dir)
    finally:
        for store in (state, outbox, schedule, exchanges):
            store.close()
    names = {Path(name).name for name in open_modes}
    assert {"state.sqlite3", "outbox.sqlite3", "poll_schedule.sqlite3", "exchanges.sqlite3",
            "state.sqlite3-wal", "state.sqlite3-shm", "outbox.sqlite3-wal", "quarantine"} <= names, names
    evidence = tmp_path / "evidence"
    export_evidence(state_dir, evidence, include_unsent=True)
    for root, modes in ((state_dir, open_modes), (state_dir, _modes(state_dir)), (evidence, _modes(evidence))):
        for name, mode in modes.items():
            expected = 0o700 if (root.parent / name).is_dir() else 0o600
            assert mode == expected, f"{name} is {mode:o}, expected {expected:o}"
