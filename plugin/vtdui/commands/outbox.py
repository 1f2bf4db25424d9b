"""``vtdui outbox``: see, dry-run, deliver, requeue and drop the items waiting for ViaTrajectoire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vtdui.config import load_config
from vtdui.exitcodes import PARTIAL
from vtdui.logs import setup_logging
from vtdui.outbox import ItemState, OutboxItem
from vtdui.runtime import Runtime

__all__ = ["outbox"]

_CONFIG = click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
                       help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _summary(item: OutboxItem) -> dict[str, Any]:
    return {"id": item.id, "flux": item.flux, "state": item.state.value, "source": item.idempotency_key,
            "id_nat_decision": item.id_nat_decision, "finess_eg": item.finess_eg, "attempts": item.attempts,
            "next_attempt_at": item.next_attempt_at.isoformat(timespec="seconds"),
            "first_enqueued_at": item.first_enqueued_at.isoformat(timespec="seconds"),
            "sent_at": item.sent_at.isoformat(timespec="seconds") if item.sent_at else None,
            "last_error": item.last_error}


def _detail(item: OutboxItem) -> dict[str, Any]:
    return {**_summary(item), "sequence": item.sequence, "payload": item.payload, "origin": item.origin,
            "outcome": item.outcome, "response": item.response, "locked_by": item.locked_by,
            "locked_until": item.locked_until.isoformat(timespec="seconds") if item.locked_until else None}


def _runtime(config_path: Path | None, **options: Any) -> Runtime:
    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    return Runtime(config, **options)


@click.group()
def outbox() -> None:
    """The outbox: ESMSTask (flux 4) and ESMSConsent (flux 2) waiting for, refused by or sent to ViaTrajectoire."""


@outbox.command("list")
@_CONFIG
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in ItemState]),
              help="Only items in this state (repeatable).")
@click.option("--decision", default=None, help="Only the items of this idNat_Decision.")
@click.option("--establishment", default=None, help="Only the items of this FINESS EG.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@_JSON
def list_items(config_path: Path | None, states: tuple[str, ...], decision: str | None, establishment: str | None,
               limit: int, as_json: bool) -> None:
    """List items, oldest first, with their state and last error."""
    with _runtime(config_path) as runtime:
        items = runtime.outbox.list(states=states or None, id_nat_decision=decision, finess_eg=establishment,
                                    limit=limit)
        counts = runtime.outbox.counts()
    if as_json:
        click.echo(json.dumps({"counts": counts, "items": [_summary(i) for i in items]}, indent=2))
        return
    table = Table(title="outbox (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")
    for column in ("id", "flux", "state", "source", "establishment", "attempts", "next attempt", "last error"):
        table.add_column(column)
    for item in items:
        table.add_row(str(item.id), item.flux, item.state.value, item.idempotency_key, item.finess_eg,
                      str(item.attempts), item.next_attempt_at.isoformat(timespec="seconds"),
                      (item.last_error or "")[:120])
    Console().print(table)


@outbox.command()
@_CONFIG
@click.argument("item_id", type=int)
@click.option("--request", "as_request", is_flag=True, help="Print the exact HTTP request it would be sent as.")
@click.option("--audit", is_flag=True, help="Also list its AuditEvents from HAPI.")
@click.option("--json", "as_json", is_flag=True,
              help='JSON (the default for the item; with --request: {"request": "..."}).')
def show(config_path: Path | None, item_id: int, as_request: bool, audit: bool, as_json: bool) -> None:
    """Show one item as JSON: payload, state, ViaTrajectoire's OperationOutcome, what blocks it."""
    from vtdui.emit import format_request

    with _runtime(config_path) as runtime:
        item = runtime.outbox.show(item_id)
        if as_request:
            request = format_request(runtime.config.viatrajectoire.base_url, item)
            click.echo(json.dumps({"request": request}, indent=2, ensure_ascii=False) if as_json else request)
            return
        detail = _detail(item)
        detail["blocked_by"] = [i.id for i in runtime.outbox.blocked_by(item)]
        if audit and item.source_ref:
            detail["audit"] = [{"recorded": a.get("recorded"), "outcome": a.get("outcome"),
                                "description": a.get("outcomeDesc")}
                               for a in runtime.emitter.list_audit(item.source_ref)
                               if any(d.get("valueString") == str(item.id)
                                      for e in a.get("entity", []) for d in e.get("detail", [])
                                      if d.get("type") == "outbox-item")]
    click.echo(json.dumps(detail, indent=2, ensure_ascii=False))


@outbox.command()
@_CONFIG
@click.argument("item_ids", type=int, nargs=-1, required=True)
@click.option("--rebuild", is_flag=True, help="Rebuild the resource from the local record with today's "
                                              "configuration and hooks first (after a fix).")
@_JSON
def retry(config_path: Path | None, item_ids: tuple[int, ...], rebuild: bool, as_json: bool) -> None:
    """Queue failed or dropped items again, due now (the running service sends them)."""
    done: list[OutboxItem] = []
    with _runtime(config_path) as runtime:
        for item_id in item_ids:
            item = runtime.emitter.rebuild(item_id) if rebuild else runtime.outbox.retry(item_id)
            done.append(item)
            if not as_json:
                click.echo(f"item {item.id}: {item.state.value}" + (f" ({item.last_error})"
                                                                    if item.state is ItemState.FAILED else ""))
    if as_json:
        click.echo(json.dumps({"items": [_summary(i) for i in done]}, indent=2, ensure_ascii=False))


@outbox.command()
@_CONFIG
@click.argument("item_ids", type=int, nargs=-1, required=True)
@click.option("--reason", default="dropped by the operator", show_default=True)
@_JSON
def drop(config_path: Path | None, item_ids: tuple[int, ...], reason: str, as_json: bool) -> None:
    """Give up on unsent items; the later items of their decision flow again."""
    done: list[OutboxItem] = []
    with _runtime(config_path) as runtime:
        for item_id in item_ids:
            item = runtime.outbox.drop(item_id, reason)
            done.append(item)
            if not as_json:
                click.echo(f"item {item.id}: {item.state.value}")
    if as_json:
        click.echo(json.dumps({"items": [_summary(i) for i in done]}, indent=2, ensure_ascii=False))


@outbox.command("run")
@_CONFIG
@click.option("--dry-run", is_flag=True, help="Print the exact HTTP requests (Authorization hidden) instead of "
                                              "sending; the items stay pending.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@_JSON
def run_items(config_path: Path | None, dry_run: bool, limit: int, as_json: bool) -> None:
    """Deliver the due items now (each decision in order), or show what would be sent."""
    printed: list[str] = []
    with _runtime(config_path, dry_run=dry_run, out=printed.append) as runtime:
        total_sent: list[int] = []
        total_failed: list[int] = []
        total_retry: list[int] = []
        while True:
            report = runtime.emitter.run_pending(limit - len(total_sent) - len(total_failed) - len(total_retry))
            total_sent += report.sent
            total_failed += report.failed
            total_retry += report.rescheduled
            if dry_run or report.attempted == 0 or len(total_sent) + len(total_failed) + len(total_retry) >= limit:
                break
        counts = runtime.outbox.counts()
    if as_json:
        click.echo(json.dumps({"dry_run": printed if dry_run else None, "sent": total_sent, "failed": total_failed,
                               "rescheduled": total_retry, "counts": counts}, indent=2, ensure_ascii=False))
        return
    for request in printed:
        click.echo(request)
        click.echo("")
    if dry_run:
        click.echo(f"dry run: {len(printed)} request(s) shown, nothing sent")
    else:
        click.echo(f"sent {len(total_sent)}, refused {len(total_failed)}, to retry {len(total_retry)}; "
                   f"outbox now: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if total_failed:
        raise SystemExit(PARTIAL)
