"""``vtdui hapi``: run the local HAPI FHIR server (docker/hapi-launcher) without Docker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from vtdui import hapi_server

__all__ = ["default_data_dir", "hapi"]


def default_data_dir() -> Path:
    """Return where ``vtdui hapi start`` keeps its database by default (``~/.local/share/vtdui/hapi``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vtdui" / "hapi"


_STATE_DIR_OPTION = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the state file and the log go (default: $VTDUI_HAPI_STATE_DIR or ~/.local/state/vtdui/hapi).")


def _echo_progress(line: str) -> None:
    click.echo(line, err=True)


@click.group()
def hapi() -> None:
    """Build, start, inspect and stop the local HAPI FHIR server (FHIR R4; H2, or PostgreSQL)."""


@hapi.command()
def build() -> None:
    """Build the launcher jar now (done by `start` when needed); print its path."""
    click.echo(str(hapi_server.ensure_built(_echo_progress)))


@hapi.command()
@click.option("--port", type=click.IntRange(1, 65535), default=hapi_server.DEFAULT_PORT, show_default=True,
              help="TCP port on 127.0.0.1.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the database here (default: ~/.local/share/vtdui/hapi).")
@click.option("--in-memory", is_flag=True, help="Use an in-memory database: everything is lost on stop.")
@click.option("--database-url", envvar=hapi_server.ENV_DATABASE_URL, default=None, show_envvar=True,
              help="Run on this PostgreSQL database instead of H2: postgresql://user[:password]@host:port/db or "
                   "jdbc:postgresql://host:port/db (the database must exist; the password may also come from "
                   "$PGPASSWORD).")
@click.option("--memory", default="1g", show_default=True, help="Maximum Java heap, e.g. 1g or 768m.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds to wait for the server to answer.")
@click.option("--no-wait", is_flag=True, help="Return as soon as the JVM is started.")
@_STATE_DIR_OPTION
def start(port: int, data_dir: Path | None, in_memory: bool, database_url: str | None, memory: str,
          timeout: float, no_wait: bool, state_dir: Path | None) -> None:
    """Start the server in the background and print its FHIR base URL."""
    if in_memory and data_dir is not None:
        raise click.UsageError("--in-memory and --data-dir exclude each other")
    if database_url and (in_memory or data_dir is not None):
        raise click.UsageError("--database-url (PostgreSQL) excludes --in-memory and --data-dir (H2)")
    directory = None if in_memory or database_url else (data_dir or default_data_dir())
    info = hapi_server.start(port=port, data_dir=directory, memory=memory, wait=not no_wait, timeout=timeout,
                             state_dir=state_dir, progress=_echo_progress, database_url=database_url or None)
    click.echo(f"HAPI FHIR running (pid {info.pid}, database {info.storage}, log {info.log_file})", err=True)
    click.echo(info.base_url)


@hapi.command()
@_STATE_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help='Print {"running": ..., "base_url": ...} as JSON.')
def status(state_dir: Path | None, as_json: bool) -> None:
    """Print the base URL of the running server; exit 1 when none runs."""
    info = hapi_server.status(state_dir=state_dir)
    if info is None:
        if as_json:
            click.echo(json.dumps({"running": False}))
        else:
            click.echo("HAPI FHIR is not running", err=True)
        raise click.exceptions.Exit(1)
    if as_json:
        click.echo(json.dumps({"running": True, "ready": info.is_ready(), "pid": info.pid, "port": info.port,
                               "base_url": info.base_url, "database": info.database_kind,
                               "log_file": str(info.log_file), "started_at": info.started_at}, indent=2))
        return
    ready = "ready" if info.is_ready() else "starting (not answering yet)"
    click.echo(f"HAPI FHIR pid {info.pid}: {ready}; database {info.database_kind}; log {info.log_file}", err=True)
    click.echo(info.base_url)


@hapi.command()
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@_STATE_DIR_OPTION
def stop(grace: float, state_dir: Path | None) -> None:
    """Stop the running server (SIGTERM, then SIGKILL after the grace period)."""
    info = hapi_server.stop(state_dir=state_dir, grace=grace)
    if info is None:
        click.echo("HAPI FHIR was not running", err=True)
        return
    click.echo(f"stopped HAPI FHIR (pid {info.pid}) at {info.base_url}", err=True)
