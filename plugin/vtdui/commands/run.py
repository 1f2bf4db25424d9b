"""``vtdui run``: the long-running service (see :mod:`vtdui.service`), or one round of it with ``--once``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vtdui.commands.sync import print_report
from vtdui.config import load_config
from vtdui.logs import register_secret, setup_logging
from vtdui.runtime import Runtime
from vtdui.service import CycleReport, Service

__all__ = ["run"]


def _print_cycle(cycle: CycleReport, console: Console) -> None:
    if cycle.sync is not None:
        print_report(cycle.sync, console)
    if cycle.sync_error:
        console.print(f"[red]inbound cycle failed:[/red] {cycle.sync_error}")
    if cycle.reconcile is not None:
        console.print(f"reconciliation: {cycle.reconcile.versions_seen} local version(s) looked at, "
                      f"{len(cycle.reconcile.items)} outbox item(s) concerned")
    if cycle.reconcile_error:
        console.print(f"[red]reconciliation failed:[/red] {cycle.reconcile_error}")
    table = Table(title="outbox")
    for column in ("sent now", "refused now", "to retry", *cycle.outbox):
        table.add_column(column, justify="right")
    table.add_row(str(len(cycle.delivery.sent)), str(len(cycle.delivery.failed)),
                  str(len(cycle.delivery.rescheduled)), *(str(v) for v in cycle.outbox.values()))
    console.print(table)
    if cycle.delivery.failed:
        console.print("refused items: `vtdui outbox show ID` says why; fix, then `vtdui outbox retry ID`")


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--once", is_flag=True, help="Run one inbound cycle, one reconciliation pass and deliver every due "
                                           "outbox item, then exit (no listener).")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the summary as JSON.")
@click.option("--host", default=None, help="Listener address (default: receiver.host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Listener port (default: receiver.port).")
@click.option("--no-sync", is_flag=True, help="Do not run the inbound sync (outbound side only).")
@click.option("--poll-now", is_flag=True, help="Make every establishment due now instead of at its own place in "
                                               "sync.interval_seconds (then each goes back to its place).")
def run(config_path: Path | None, once: bool, as_json: bool, host: str | None, port: int | None,
        no_sync: bool, poll_now: bool) -> None:
    """Run vtdui: inbound sync, webhook receiver, outbox worker, reconciliation, /metrics and /health.

    The inbound sync polls each establishment once per sync.interval_seconds at its own place in the interval
    (several workers may share a PostgreSQL database: each establishment is polled by one at a time).
    With --once, every establishment is polled now.

    Stops cleanly on SIGTERM or Ctrl+C (the item being sent finishes, claimed ones are parked).
    """
    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    for secret in (config.receiver.secret, config.viatrajectoire.client_secret,
                   *(e.p12_password or "" for e in config.legal_entities)):
        register_secret(secret)
    with Runtime(config) as runtime:
        service = Service(runtime, host=host, port=port, sync_interval=0 if no_sync else None, poll_now=poll_now)
        try:
            if not once:
                service.serve_forever()
                return
            cycle = service.run_once(inbound=not no_sync)
        finally:
            service.close()
    if as_json:
        click.echo(json.dumps(cycle.as_dict(), indent=2))
    else:
        _print_cycle(cycle, Console())
    if not cycle.ok:
        raise SystemExit(2)
    if cycle.sync is not None and cycle.sync.total("quarantined"):
        raise SystemExit(3)  # as `vtdui sync`: items were kept aside in this cycle (`vtdui quarantine list`)
