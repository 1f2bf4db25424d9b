"""``vtdui sync --once``: one inbound cycle for every configured establishment, with progress and a summary."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from vtdui.config import load_config
from vtdui.logs import setup_logging
from vtdui.runtime import Runtime
from vtdui.sync import SyncReport


def print_report(report: SyncReport, console: Console) -> None:
    """Print a sync report as a table."""
    table = Table(title=f"sync cycle ({report.seconds:.1f} s)")
    for column in ("establishment", "decisions stored", "unchanged", "evaluations", "statuses in",
                   "applied", "waiting", "quarantined", "errors"):
        table.add_column(column, justify="right" if column != "establishment" else "left")
    for r in report.establishments:
        table.add_row(r.finess_eg, str(r.decisions_stored), str(r.decisions_unchanged), str(r.evaluations_stored),
                      str(r.statuses_received), str(r.statuses_applied), str(r.statuses_waiting), str(r.quarantined),
                      "; ".join(r.errors) or "-")
    console.print(table)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--once", is_flag=True, default=True, help="Run one cycle and exit (the default).")
@click.option("--establishment", "only", multiple=True, help="Only this FINESS EG (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sync(config_path: Path | None, once: bool, only: tuple[str, ...], as_json: bool) -> None:
    """Pull decisions, evaluations and statuses from ViaTrajectoire into HAPI (one cycle).

    Exit status: 0 when everything was stored, 2 when a flux was interrupted by a passing fault (its cursor
    stays; the next cycle covers the same window), 3 when items were kept aside in the quarantine during this
    cycle (`vtdui quarantine list`; they are retried with backoff).
    """
    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=as_json) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(finess_eg: str, done: int, total: int | None) -> None:
            if finess_eg not in tasks:
                tasks[finess_eg] = progress.add_task(f"flux 1 {finess_eg}", total=total)
            progress.update(tasks[finess_eg], completed=done, total=total)

        with Runtime(config, progress=on_progress) as runtime:
            report = runtime.sync.run_once(only or None)
            synced = {r.finess_eg for r in report.establishments}
            unresolved = sum(1 for q in runtime.state.quarantined() if q.finess_eg in synced)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "seconds": report.seconds, "quarantine_unresolved": unresolved,
                               "establishments": [vars(r) for r in report.establishments]}, indent=2))
    else:
        print_report(report, Console())
        quarantined = report.total("quarantined")
        if quarantined:
            Console().print(f"{quarantined} item(s) kept aside: `vtdui quarantine list` shows them with their reason "
                            "(retried with backoff until stored; `vtdui quarantine retry|drop KEY`)")
    if not report.ok:
        raise SystemExit(2)
    if report.total("quarantined"):
        raise SystemExit(3)
