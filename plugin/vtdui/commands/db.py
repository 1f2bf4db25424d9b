"""``vtdui db``: create and upgrade the schema of the PostgreSQL database (``database.url``), or see where it stands.

A running vtdui never changes the schema by itself: after an upgrade of vtdui, run ``vtdui db migrate``
once (from any host; concurrent runs queue on a lock), then restart the workers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vtdui.config import Config, load_config

__all__ = ["db"]

_CONFIG = click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
                       help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")


def _postgres_url(cfg: Config) -> str | None:
    if cfg.database.is_postgres and cfg.database.url:
        from vtdui.postgres import require_driver

        require_driver()
        return cfg.database.url
    click.echo(f"database.url is not set: the state is kept in SQLite files in {cfg.state_dir}, "
               "created and upgraded by vtdui itself; nothing to migrate.")
    return None


@click.group()
def db() -> None:
    """The PostgreSQL database shared by several `vtdui run` workers: schema version and migrations."""


@db.command("migrate")
@_CONFIG
def migrate(config_path: Path | None) -> None:
    """Apply the pending schema migrations, in order (safe to run from several hosts at once)."""
    from vtdui.migrations import migrate as run_migrations
    from vtdui.postgres import redact_url

    cfg = load_config(config_path)
    url = _postgres_url(cfg)
    if url is None:
        return
    applied = run_migrations(url)
    if not applied:
        click.echo(f"{redact_url(url)}: schema already up to date, nothing to apply.")
        return
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"{redact_url(url)}: schema now at version {applied[-1].version}.")


@db.command("status")
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Show the schema version, the pending migrations and any changed one; exit 1 when not up to date."""
    from vtdui.migrations import schema_status
    from vtdui.postgres import redact_url

    cfg = load_config(config_path)
    url = _postgres_url(cfg)
    if url is None:
        return
    state = schema_status(url)
    data: dict[str, Any] = {
        "database": redact_url(url), "current": state.current, "latest": state.latest,
        "applied": [{"version": a.version, "name": a.name, "applied_at": a.applied_at.isoformat(timespec="seconds"),
                     "checksum": a.checksum} for a in state.applied],
        "pending": [f"{m.version:04d}_{m.name}" for m in state.pending],
        "checksum_mismatch": state.mismatched, "unknown": state.unknown, "up_to_date": state.up_to_date}
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"database: {data['database']}")
        click.echo(f"schema version: {state.current} (this vtdui needs {state.latest})")
        for applied in state.applied:
            click.echo(f"  applied {applied.version:04d}_{applied.name} at {applied.applied_at:%Y-%m-%d %H:%M:%S%z}")
        if state.pending:
            click.echo("pending: " + ", ".join(data["pending"]) + " (run `vtdui db migrate`)")
        else:
            click.echo("pending: none")
        if state.mismatched:
            click.echo("warning: migration file(s) changed since they were applied (checksum differs): "
                       + ", ".join(str(v) for v in state.mismatched))
        if state.unknown:
            click.echo("database migrated by a newer vtdui (unknown versions: "
                       + ", ".join(str(v) for v in state.unknown) + "): upgrade vtdui on this host")
    if not state.up_to_date:
        raise SystemExit(1)
