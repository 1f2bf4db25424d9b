"""The storage factory picks PostgreSQL from ``database.url``; exchange log and evidence work on it; claim skips a
decision another worker is claiming; ``vtdui`` prints database errors without traceback nor password."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from vtdui.config import Config, DatabaseSettings
from vtdui.emit import CURRENT_ITEM
from vtdui.evidence import export_evidence
from vtdui.outbox import ItemState, NewItem, normalize_instant
from vtdui.pg_exchanges import PostgresExchangeLog
from vtdui.pg_outbox import PostgresOutboxBackend
from vtdui.pg_state import PostgresStateStore
from vtdui.state import StateStore
from vtdui.storage import describe, open_exchanges, open_outbox, open_state
from vtdui.viatrajectoire.trace import Exchange, redact_headers

EG = "750000028"


def _item(decision: str, version: int) -> NewItem:
    return NewItem(kind="task", idempotency_key=f"Task/wl-{decision}/_history/{version}", id_nat_decision=decision,
                   finess_eg=EG, payload={"resourceType": "Task", "status": "completed", "v": version},
                   sequence=normalize_instant(f"2026-05-12T08:{version:02d}:00+02:00"),
                   source_ref=f"Task/wl-{decision}")


def _exchange(kind: str, method: str, body: bytes, status: int = 201) -> Exchange:
    return Exchange(kind=kind, method=method, url="https://vt/fhir/Task", finess_eg=EG, attempt=1,
                    started_at=datetime.now(UTC), duration=0.1, status=status,
                    request_headers=redact_headers({"Authorization": "Bearer SECRET-TOKEN"}),
                    request_body=body, response_body=body)


def test_factory_opens_sqlite_by_default_and_postgres_with_a_url(clean_url: str, tmp_path: Path) -> None:
    sqlite = Config(state_dir=tmp_path)
    state = open_state(sqlite)
    assert isinstance(state, StateStore)
    state.close()
    assert describe(sqlite) == f"SQLite files in {tmp_path}"
    pg = Config(state_dir=tmp_path / "unused", database=DatabaseSettings(url=clean_url, pool_size=2))
    state = open_state(pg)
    outbox = open_outbox(pg, lease_seconds=5)
    log = open_exchanges(pg, current_item=CURRENT_ITEM.get)
    try:
        assert isinstance(state, PostgresStateStore)
        assert isinstance(outbox.backend, PostgresOutboxBackend) and outbox.lease == timedelta(seconds=5)
        assert isinstance(log, PostgresExchangeLog)
    finally:
        state.close()
        outbox.close()
        log.close()
    assert not (tmp_path / "unused").exists()  # nothing written next to the process


def test_exchange_log_and_evidence_on_postgres(clean_url: str, tmp_path: Path) -> None:
    config = Config(state_dir=tmp_path / "state", database=DatabaseSettings(url=clean_url, pool_size=2))
    outbox = open_outbox(config)
    log = open_exchanges(config, current_item=CURRENT_ITEM.get)
    try:
        item, _ = outbox.enqueue(_item("D1", 1))
        log.record(_exchange("fhir", "GET", b'{"resourceType": "Bundle", "name": "Dupont"}', 200))
        log.record(_exchange("token", "POST", b"client_secret=s3cret"))
        token = CURRENT_ITEM.set(item)
        try:
            log.record(_exchange("fhir", "POST", json.dumps(item.payload).encode(), 503))
            log.record(_exchange("fhir", "POST", json.dumps(item.payload).encode(), 201))
        finally:
            CURRENT_ITEM.reset(token)
        outbox.mark_sent(outbox.claim("w")[0], {"status": 201})
        kept = log.for_item(item.id)
        assert [k.status for k in kept] == [503, 201] and kept[0].request_headers["Authorization"] == "***"
        assert log.count() == 4 and log.latency_snapshot()[("fhir", "2xx")][0] == 2
        with psycopg.connect(clean_url) as conn:
            dump = json.dumps(conn.execute("SELECT * FROM exchanges").fetchall(), default=str)
        assert "Dupont" not in dump and "s3cret" not in dump and "SECRET-TOKEN" not in dump
        assert log.prune(timedelta(days=1)) == 0 and log.prune(timedelta(seconds=-60)) == 4
    finally:
        log.close()
        outbox.close()
    report = export_evidence(config.state_dir, tmp_path / "out", config=config)
    assert report.items == 1  # the trace was pruned, the payload is still exported
    assert json.loads((tmp_path / "out" / f"esms-task-{item.id:06d}.json").read_text()) == item.payload


def test_claim_skips_a_decision_another_worker_is_claiming(clean_url: str) -> None:
    backend = PostgresOutboxBackend(clean_url, pool_size=1)
    now = datetime.now(UTC)
    try:
        for decision in ("D1", "D2"):
            backend.insert(_item(decision, 1), state=ItemState.PENDING, now=now)
        with psycopg.connect(clean_url) as other:  # a claim of D1 in progress elsewhere
            other.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", ("D1", EG))
            claimed = backend.claim("w", 10, timedelta(seconds=30), now)
            assert [i.id_nat_decision for i in claimed] == ["D2"]
        [later] = backend.claim("w", 10, timedelta(seconds=30), now)
        assert later.id_nat_decision == "D1"
    finally:
        backend.close()


def test_cli_error_without_traceback_nor_password(tmp_path: Path) -> None:
    path = tmp_path / "vtdui.toml"
    path.write_text('state_dir = "state"\n[database]\nurl = "postgresql://vtdui:hunter2@127.0.0.1:1/vtdui"\n',
                    encoding="utf-8")
    command = [sys.executable, "-c", "from vtdui.cli import main; main()", "db", "status", "--config", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert result.returncode == 1
    assert "Error: cannot connect to the PostgreSQL database postgresql://vtdui:***@127.0.0.1:1/vtdui" in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr + result.stdout


def test_status_command_reads_the_postgres_state(clean_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vtdui.cli import cli

    state = PostgresStateStore(clean_url, pool_size=1)
    state.commit_cursor(EG, "1", datetime(2026, 5, 10, tzinfo=UTC))
    state.quarantine(finess_eg=EG, flux="1", vt_id="dr-1", last_updated="t1", reason="bad-cda", message="m", raw=b"x")
    state.close()
    backend = PostgresOutboxBackend(clean_url, pool_size=1)
    backend.insert(_item("D1", 1), state=ItemState.PENDING, now=datetime.now(UTC))
    backend.close()
    path = tmp_path / "vtdui.toml"
    path.write_text(f'state_dir = "state"\n[database]\nurl = "{clean_url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["status", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["outbox"]["pending"] == 1 and data["cursors"][0]["finess_eg"] == EG
    assert data["quarantined"][0]["path"] is None and data["establishments"][0]["outbox_unsent"] == 1
    assert not (tmp_path / "state").exists()
