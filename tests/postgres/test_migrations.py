"""Versioned migrations: fresh database, idempotent re-run, status, concurrent runs, no silent schema change."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from vtdui.cli import cli
from vtdui.config import Config, DatabaseSettings
from vtdui.errors import ConfigError
from vtdui.migrations import available, migrate, schema_status
from vtdui.pg_exchanges import PostgresExchangeLog
from vtdui.pg_outbox import PostgresOutboxBackend
from vtdui.pg_state import PostgresStateStore
from vtdui.postgres import Database, DatabaseUnavailableError, redact_url
from vtdui.storage import describe, open_state


def test_fresh_database_then_idempotent_rerun(pg_url: str) -> None:
    shipped = available()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert shipped[0].name == "initial"
    before = schema_status(pg_url)
    assert before.current == 0 and [m.version for m in before.pending] == [m.version for m in shipped]
    applied = migrate(pg_url)
    assert [m.version for m in applied] == [m.version for m in shipped]
    assert migrate(pg_url) == []
    after = schema_status(pg_url)
    assert after.up_to_date and after.current == after.latest == shipped[-1].version
    assert after.mismatched == [] and after.unknown == []
    assert [a.checksum for a in after.applied] == [m.checksum for m in shipped]
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"cursors", "documents", "quarantine", "pending_statuses", "consents", "outbox", "exchanges",
            "schema_migrations"} <= tables


def test_checksum_mismatch_and_newer_database_are_reported(migrated_url: str) -> None:
    with psycopg.connect(migrated_url) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    state = schema_status(migrated_url)
    assert state.mismatched == [1] and state.unknown == [9999] and not state.up_to_date
    with pytest.raises(ConfigError, match="newer than this vtdui"):
        PostgresStateStore(migrated_url)
    with pytest.raises(ConfigError, match="newer than this vtdui"):
        migrate(migrated_url)


def test_opening_a_store_never_creates_the_schema(pg_url: str) -> None:
    latest = available()[-1].version
    message = f"database schema is at version 0, this vtdui needs {latest}: run `vtdui db migrate`"
    for opener in (PostgresStateStore, PostgresOutboxBackend, PostgresExchangeLog):
        with pytest.raises(ConfigError) as caught:
            opener(pg_url)
        assert str(caught.value) == message
    assert schema_status(pg_url).current == 0
    config = Config(database=DatabaseSettings(url=pg_url))
    with pytest.raises(ConfigError, match="run `vtdui db migrate`"):
        open_state(config)


def _migrate_in_child(url: str) -> list[int]:
    return [m.version for m in migrate(url)]


def test_concurrent_migrate_from_two_processes(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_migrate_in_child, [pg_url, pg_url])
    shipped = [m.version for m in available()]
    assert sorted(results, key=len) == [[], shipped]  # one applied everything, the other found nothing to do
    assert schema_status(pg_url).up_to_date


def test_redaction_and_unreachable_server() -> None:
    assert redact_url("postgresql://vtdui:s3cr%40t@db.example:5432/vtdui") == \
        "postgresql://vtdui:***@db.example:5432/vtdui"
    assert redact_url("postgresql://db.example/vtdui?user=u&password=hunter2&sslmode=require") == \
        "postgresql://db.example/vtdui?user=u&password=***&sslmode=require"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    url = "postgresql://vtdui:hunter2@127.0.0.1:1/vtdui"
    with pytest.raises(DatabaseUnavailableError) as caught:
        Database(url)
    assert "hunter2" not in str(caught.value)
    assert "cannot connect to the PostgreSQL database postgresql://vtdui:***@127.0.0.1:1/vtdui" in str(caught.value)
    assert "hunter2" not in repr(DatabaseSettings(url=url))
    assert describe(Config(database=DatabaseSettings(url=url))) == "PostgreSQL postgresql://vtdui:***@127.0.0.1:1/vtdui"


def _config(tmp_path: Path, url: str | None) -> Path:
    path = tmp_path / "vtdui.toml"
    text = 'state_dir = "state"\n'
    if url is not None:
        text += f'[database]\nurl = "{url}"\n'
    path.write_text(text, encoding="utf-8")
    return path


def test_db_commands(pg_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    path = _config(tmp_path, pg_url)
    status = runner.invoke(cli, ["db", "status", "--config", str(path)])
    assert status.exit_code == 1, status.output
    assert "schema version: 0" in status.output and "0001_initial" in status.output
    done = runner.invoke(cli, ["db", "migrate", "--config", str(path)])
    assert done.exit_code == 0, done.output
    assert "applied 0001_initial" in done.output
    again = runner.invoke(cli, ["db", "migrate", "--config", str(path)])
    assert again.exit_code == 0 and "already up to date" in again.output
    status = runner.invoke(cli, ["db", "status", "--config", str(path), "--json"])
    assert status.exit_code == 0, status.output
    assert '"up_to_date": true' in status.output and '"pending": []' in status.output
    sqlite = runner.invoke(cli, ["db", "migrate", "--config", str(_config(tmp_path, None))])
    assert sqlite.exit_code == 0 and "SQLite" in sqlite.output and "nothing to migrate" in sqlite.output


def test_db_command_with_unreachable_server_says_so_without_the_password(tmp_path: Path) -> None:
    path = _config(tmp_path, "postgresql://vtdui:hunter2@127.0.0.1:1/vtdui")
    result = CliRunner().invoke(cli, ["db", "status", "--config", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, DatabaseUnavailableError)
    assert "hunter2" not in str(result.exception) and "hunter2" not in result.output


def test_a_failing_migration_is_rolled_back_with_a_clear_error(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import vtdui.migrations as migrations

    shipped = available()
    broken = migrations.Migration(shipped[-1].version + 1, "broken", "CREATE TABLE half_done (x int); SELEC 1;")
    monkeypatch.setattr(migrations, "available", lambda: [*shipped, broken])
    with pytest.raises(migrations.MigrationError, match=r"_broken failed and was rolled back \(SyntaxError") as caught:
        migrate(pg_url)
    assert "applied before it: 0001_initial" in str(caught.value)
    state = schema_status(pg_url)
    assert state.current == shipped[-1].version and [m.name for m in state.pending] == ["broken"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
