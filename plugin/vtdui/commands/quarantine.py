"""``vtdui quarantine``: list, show, retry now or drop the items kept aside by the inbound sync.

An item stays quarantined until a later try stores it (or a new version of it is stored); the sync tries it
again with a backoff (``sync.quarantine_backoff_seconds``, doubling up to
``sync.quarantine_max_backoff_seconds``) for as long as it is there. ``retry`` makes it due at the next cycle
(``vtdui sync --once`` or the next poll of ``vtdui run``); ``drop`` stops the retries when an operator decided
the item will never be stored (the entry is kept, marked dropped, for the record).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vtdui.config import Config, load_config
from vtdui.state import QuarantineItem, StateBackend
from vtdui.storage import open_state

__all__ = ["next_try", "quarantine", "quarantine_summary"]

_CONFIG = click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
                       help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_EG = click.option("--establishment", default=None, help="FINESS EG of the item (when a key is in several).")


def next_try(item: QuarantineItem, config: Config) -> datetime | None:
    """When the sync tries the item again (its backoff after the last try); ``None`` if unknown."""
    from vtdui.sync import quarantine_next_try  # the sync's own rule, so that both always agree

    return quarantine_next_try(item, config.sync.quarantine_backoff_seconds, config.sync.quarantine_max_backoff_seconds)


def quarantine_summary(item: QuarantineItem, config: Config) -> dict[str, Any]:
    """JSON view of one entry, with when it is tried next."""
    due = next_try(item, config)
    return {"key": item.key, "finess_eg": item.finess_eg, "flux": item.flux, "vt_id": item.vt_id,
            "last_updated": item.last_updated, "reason": item.reason, "message": item.message,
            "attempts": item.attempts, "first_seen": item.first_seen, "last_tried": item.last_tried,
            "next_try": due.isoformat(timespec="seconds") if due is not None and item.resolved_at is None else None,
            "resolved_at": item.resolved_at, "raw_kept": item.path is not None or None}


def _find(state: StateBackend, key: str, establishment: str | None) -> QuarantineItem:
    found = [q for q in state.quarantined() if q.key == key and establishment in (None, q.finess_eg)]
    if not found:
        raise click.ClickException(f"no quarantined item {key!r}"
                                   + (f" for establishment {establishment}" if establishment else "")
                                   + "; `vtdui quarantine list` shows the keys")
    if len(found) > 1:
        raise click.ClickException(f"{key!r} is quarantined for several establishments "
                                   f"({', '.join(q.finess_eg for q in found)}): add --establishment")
    return found[0]


@click.group()
def quarantine() -> None:
    """Items the inbound sync kept aside (bad document, refused read, malformed answer ...), retried with backoff."""


@quarantine.command("list")
@_CONFIG
@click.option("--establishment", default=None, help="Only the items of this FINESS EG.")
@click.option("--all", "include_resolved", is_flag=True, help="Also the resolved and dropped ones.")
@_JSON
def list_items(config_path: Path | None, establishment: str | None, include_resolved: bool, as_json: bool) -> None:
    """List quarantined items, oldest first, with their reason and next try."""
    config = load_config(config_path)
    state = open_state(config)
    try:
        items = [q for q in state.quarantined(include_resolved=include_resolved)
                 if establishment in (None, q.finess_eg)]
    finally:
        state.close()
    rows = [quarantine_summary(q, config) for q in items]
    if as_json:
        click.echo(json.dumps({"count": len(rows), "items": rows}, indent=2))
        return
    if not rows:
        Console().print("quarantine: empty")
        return
    table = Table(title=f"quarantine ({len(rows)}): retried with backoff until stored; retry/drop KEY to act")
    for column in ("establishment", "flux", "key", "reason", "attempts", "next try", "message"):
        table.add_column(column, no_wrap=column in ("establishment", "reason"))  # what an operator greps
    for row in rows:
        table.add_row(row["finess_eg"], row["flux"], row["key"], row["reason"], str(row["attempts"]),
                      row["next_try"] or ("resolved" if row["resolved_at"] else "-"), row["message"][:160])
    Console().print(table)


@quarantine.command()
@click.argument("key")
@_CONFIG
@_EG
@click.option("--raw", "raw_to", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the kept raw bytes (the document or answer as received) to this file.")
@_JSON
def show(key: str, config_path: Path | None, establishment: str | None, raw_to: Path | None, as_json: bool) -> None:
    """Show one item; --raw FILE saves what was received (health data: handle it as such)."""
    config = load_config(config_path)
    state = open_state(config)
    try:
        item = _find(state, key, establishment)
        raw = state.quarantine_raw(item.key, item.finess_eg) if raw_to is not None else None
    finally:
        state.close()
    data = quarantine_summary(item, config)
    if raw_to is not None:
        if raw is None:
            raise click.ClickException("no raw bytes were kept for this item")
        raw_to.touch(mode=0o600)
        raw_to.write_bytes(raw)
        data["raw_written_to"] = str(raw_to)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for name, value in data.items():
        Console().print(f"{name}: {'-' if value is None else value}", highlight=False)


def _act(key: str, config_path: Path | None, establishment: str | None, as_json: bool, action: str) -> None:
    config = load_config(config_path)
    state = open_state(config)
    try:
        item = _find(state, key, establishment)
        done = (state.retry_quarantine if action == "retry" else state.drop_quarantine)(item.key, item.finess_eg)
    finally:
        state.close()
    if not done:
        raise click.ClickException(f"{key!r} was resolved meanwhile")
    message = ("due at the next cycle (`vtdui sync --once`, or the next poll of `vtdui run`)" if action == "retry"
               else "dropped: no longer retried (a new version of the document is still synced)")
    if as_json:
        click.echo(json.dumps({"key": item.key, "finess_eg": item.finess_eg, "action": action, "message": message}))
    else:
        Console().print(f"{item.key} ({item.finess_eg}): {message}", highlight=False)


@quarantine.command()
@click.argument("key")
@_CONFIG
@_EG
@_JSON
def retry(key: str, config_path: Path | None, establishment: str | None, as_json: bool) -> None:
    """Try one item again at the next cycle, whatever its backoff."""
    _act(key, config_path, establishment, as_json, "retry")


@quarantine.command()
@click.argument("key")
@_CONFIG
@_EG
@_JSON
def drop(key: str, config_path: Path | None, establishment: str | None, as_json: bool) -> None:
    """Stop retrying one item (kept in the record as dropped)."""
    _act(key, config_path, establishment, as_json, "drop")
