"""``vtdui status``: per establishment, how fresh the inbound side is and what waits on the outbound side.

Read from the state directory only (cursors, quarantine, outbox) plus the certificate files, so it works
whether ``vtdui run`` is running or not. The same figures are on ``/metrics`` of ``vtdui run``, which adds
the live ones (access-token expiry, counters, latencies).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vtdui.config import Config, load_config
from vtdui.outbox import ItemState, Outbox
from vtdui.state import QuarantineItem, StateBackend, StateStore
from vtdui.storage import open_outbox, open_poll_schedule, open_state

__all__ = ["collect_status", "status"]

_UNSENT = (ItemState.PENDING, ItemState.SENDING)


def _age(moment: datetime | None, now: datetime) -> int | None:
    return None if moment is None else round((now - moment).total_seconds())


def _outbox_by_establishment(outbox: Outbox, now: datetime) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in outbox.list(states=(*_UNSENT, ItemState.FAILED)):
        entry = found.setdefault(item.finess_eg, {"unsent": 0, "failed": 0, "oldest_unsent_age_seconds": None})
        if item.state is ItemState.FAILED:
            entry["failed"] += 1
            continue
        entry["unsent"] += 1
        age = _age(item.first_enqueued_at, now)
        if entry["oldest_unsent_age_seconds"] is None or (age or 0) > entry["oldest_unsent_age_seconds"]:
            entry["oldest_unsent_age_seconds"] = age
    return found


def collect_status(state: StateBackend, config: Config | None = None, *, certificates: bool = True) -> dict[str, Any]:
    """Gather the figures shown by ``vtdui status`` (JSON-ready).

    Args:
        state: the state store.
        config: the configuration; gives the establishments (also those never synced yet) and the
            certificates; without it only what the state holds is reported.
        certificates: open the client certificates to report their expiry.
    """
    now = datetime.now(UTC)
    cursors: list[dict[str, Any]] = [{"finess_eg": c.finess_eg, "flux": c.flux, "cursor": c.instant.isoformat(),
                "last_success": c.last_success.isoformat(),
                "last_success_age_seconds": _age(c.last_success, now)}
               for c in state.cursors()]
    quarantined: list[dict[str, Any]] = [{"key": q.key, "finess_eg": q.finess_eg, "flux": q.flux, "reason": q.reason,
                    "message": q.message, "attempts": q.attempts, "first_seen": q.first_seen, "path": q.path,
                    "next_try": _next_try(q, config)}
                   for q in state.quarantined()]
    waiting: dict[str, int] = state.waiting_status_count()
    if isinstance(state, StateStore):
        outbox = Outbox.open(state.state_dir)
    elif config is not None:
        outbox = open_outbox(config)
    else:
        raise ValueError("collect_status needs the configuration to open a PostgreSQL outbox")
    try:
        counts = outbox.counts()
        oldest = outbox.oldest_pending_age()
        per_eg_outbox = _outbox_by_establishment(outbox, now)
    finally:
        outbox.close()

    polls: dict[str, Any] = {}
    if config is not None:
        schedule = open_poll_schedule(config)
        try:
            polls = {row.finess_eg: row for row in schedule.snapshot()}
        finally:
            schedule.close()

    names: dict[str, str] = {}
    legal_entities: list[dict[str, Any]] = []
    if config is not None:
        for _entity, establishment in config.establishments():
            names[establishment.finess_eg] = establishment.name
        checks = {}
        if certificates:
            from vtdui.viatrajectoire.tls import check_certificates

            checks = {c.finess_ej: c for c in check_certificates(config.legal_entities, config.viatrajectoire.ca_file)}
        for entity in config.legal_entities:
            check = checks.get(entity.finess_ej)
            legal_entities.append({
                "finess_ej": entity.finess_ej, "name": entity.name,
                "certificate_not_after": check.not_after.isoformat() if check and check.not_after else None,
                "certificate_days_left": check.days_left if check else None,
                "certificate_error": check.error if check else None,
            })
    egs: list[str] = sorted(set(names) | {c["finess_eg"] for c in cursors if c["finess_eg"].isdigit()}
                 | {q["finess_eg"] for q in quarantined} | set(per_eg_outbox))
    establishments = []
    for eg in egs:
        by_flux = {c["flux"]: c for c in cursors if c["finess_eg"] == eg}
        box = per_eg_outbox.get(eg, {"unsent": 0, "failed": 0, "oldest_unsent_age_seconds": None})
        poll = polls.get(eg)
        live_lease = poll is not None and poll.locked_until is not None and poll.locked_until > now
        establishments.append({
            "next_poll_in_seconds": None if poll is None else round((poll.next_due_at - now).total_seconds()),
            "polling_by": poll.locked_by if poll is not None and live_lease else None,
            "poll_failures": 0 if poll is None else poll.consecutive_failures,
            "poll_last_error": None if poll is None else poll.last_error,
            "finess_eg": eg, "name": names.get(eg, ""),
            "flux1_last_success_age_seconds": by_flux.get("1", {}).get("last_success_age_seconds"),
            "flux5_last_success_age_seconds": by_flux.get("5", {}).get("last_success_age_seconds"),
            "quarantined": sum(1 for q in quarantined if q["finess_eg"] == eg),
            "statuses_waiting": waiting.get(eg, 0),
            "outbox_unsent": box["unsent"], "outbox_failed": box["failed"],
            "outbox_oldest_unsent_age_seconds": box["oldest_unsent_age_seconds"],
        })
    return {"establishments": establishments, "legal_entities": legal_entities, "cursors": cursors,
            "quarantined": quarantined, "documents_stored": state.document_count(), "statuses_waiting": waiting,
            "outbox": counts, "outbox_oldest_unsent_age_seconds": None if oldest is None else round(oldest)}


def _next_try(item: QuarantineItem, config: Config | None) -> str | None:
    from vtdui.commands.quarantine import next_try

    due = next_try(item, config if config is not None else Config())
    return due.isoformat(timespec="seconds") if due is not None else None


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: Path | None, as_json: bool) -> None:
    """Per establishment: last successful polls, quarantined documents, outbox depth and age; certificates."""
    cfg = load_config(config_path)
    state = open_state(cfg)
    try:
        data = collect_status(state, cfg)
    finally:
        state.close()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    table = Table(title="establishments: seconds since the last poll (flux 1, 5), until the next, kept aside, outbox",
                  caption="fails: failed polls in a row; kept: documents in quarantine; wait: flux-5 statuses waiting "
                          "for their decision; oldest: age of the oldest unsent item (s)")
    table.add_column("FINESS EG", no_wrap=True, min_width=9)
    for column in ("flux 1", "flux 5", "next", "fails", "kept", "wait", "unsent", "failed", "oldest"):
        table.add_column(column, justify="right")  # headers wrap on a narrow terminal, the FINESS never
    for e in data["establishments"]:
        next_poll = "now" if e["polling_by"] else _dash(e["next_poll_in_seconds"])
        table.add_row(e["finess_eg"], _dash(e["flux1_last_success_age_seconds"]),
                      _dash(e["flux5_last_success_age_seconds"]), next_poll, str(e["poll_failures"]),
                      str(e["quarantined"]), str(e["statuses_waiting"]),
                      str(e["outbox_unsent"]), str(e["outbox_failed"]), _dash(e["outbox_oldest_unsent_age_seconds"]))
    console.print(table)
    for entity in data["legal_entities"]:
        if entity["certificate_error"] and entity["certificate_error"] != "expired":
            console.print(f"legal entity {entity['finess_ej']}: certificate unusable: {entity['certificate_error']}")
        else:
            console.print(f"legal entity {entity['finess_ej']}: certificate valid until "
                          f"{_dash(entity['certificate_not_after'])} ({entity['certificate_days_left']} days)")
    outbox = ", ".join(f"{state} {n}" for state, n in data["outbox"].items())
    console.print(f"outbox: {outbox}; oldest unsent: {_dash(data['outbox_oldest_unsent_age_seconds'])} s")
    console.print(f"documents stored: {data['documents_stored']}")
    if data["quarantined"]:
        q_table = Table(title="quarantined items (vtdui retries them with backoff until stored; "
                              "`vtdui quarantine retry|drop KEY`)")
        for column in ("establishment", "flux", "document", "reason", "attempts", "next try", "message"):
            q_table.add_column(column, no_wrap=column == "reason")  # the reason is what an operator greps
        for q in data["quarantined"]:
            q_table.add_row(q["finess_eg"], q["flux"], q["key"], q["reason"], str(q["attempts"]),
                            _dash(q["next_try"]), q["message"])
        console.print(q_table)
    else:
        console.print("quarantined documents: none")
