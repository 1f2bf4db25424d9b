"""``vtdui status``: cursors, last successes, quarantined documents (and the outbox when present)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vtdui.config import load_config
from vtdui.outbox import Outbox
from vtdui.state import StateStore


def collect_status(state: StateStore) -> dict[str, Any]:
    """Gather the figures shown by ``vtdui status`` (also used by the metrics endpoint)."""
    now = datetime.now(UTC)
    cursors = [{"finess_eg": c.finess_eg, "flux": c.flux, "cursor": c.instant.isoformat(),
                "last_success": c.last_success.isoformat(),
                "last_success_age_seconds": round((now - c.last_success).total_seconds())}
               for c in state.cursors()]
    quarantined = [{"key": q.key, "finess_eg": q.finess_eg, "flux": q.flux, "reason": q.reason,
                    "message": q.message, "attempts": q.attempts, "first_seen": q.first_seen, "path": q.path}
                   for q in state.quarantined()]
    result: dict[str, Any] = {"cursors": cursors, "quarantined": quarantined,
                              "documents_stored": state.document_count(),
                              "statuses_waiting": state.waiting_status_count()}
    outbox = Outbox.open(state.state_dir)
    try:
        result["outbox"] = outbox.counts()
    finally:
        outbox.close()
    return result


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Show cursors and last success per establishment, quarantined documents and the outbox."""
    cfg = load_config(config_path)
    state = StateStore(cfg.state_dir)
    try:
        data = collect_status(state)
    finally:
        state.close()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    table = Table(title="inbound cursors")
    for column in ("establishment", "flux", "cursor", "last success", "age (s)"):
        table.add_column(column)
    for c in data["cursors"]:
        table.add_row(c["finess_eg"], c["flux"], c["cursor"], c["last_success"], str(c["last_success_age_seconds"]))
    console.print(table)
    console.print(f"documents stored: {data['documents_stored']}")
    waiting = data["statuses_waiting"]
    console.print("flux-5 statuses waiting for their decision: "
                  + (", ".join(f"{eg}: {n}" for eg, n in waiting.items()) if waiting else "none"))
    if data["quarantined"]:
        q_table = Table(title="quarantined documents")
        for column in ("establishment", "flux", "document", "reason", "attempts", "message"):
            q_table.add_column(column)
        for q in data["quarantined"]:
            q_table.add_row(q["finess_eg"], q["flux"], q["key"], q["reason"], str(q["attempts"]), q["message"])
        console.print(q_table)
    else:
        console.print("quarantined documents: none")
    if "outbox" in data:
        console.print_json(json.dumps(data["outbox"]))
