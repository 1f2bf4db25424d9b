"""Evidence for the Ségur referencing (MS-DUI-Va2): the flux 2 and 4 payloads and their HTTP traces.

The referencing asks for (1) the ESMSConsent and ESMSTask the DUI produced, submitted to the ANS
validators (EVSClient: esms-consent, esms-task) until the reports are clean, and (2) technical traces of
the exchanges. :func:`export_evidence` writes, for each item of the outbox that was sent (or, with
``include_unsent``, attempted)::

    DIR/esms-task-000012.json          the resource exactly as sent (the body of the accepted POST)
    DIR/esms-task-000012.trace.json    the item (state, source version, ViaTrajectoire's answer) and
                                       every HTTP attempt: request line, headers, body, status, response
    DIR/index.json                     one line per item, and what was redacted

What never reaches the files: ``Authorization`` and cookies (``***``, redacted by the client before the
trace is kept), tokens, the client secret (token requests are not exported), and health data: free
texts that a DUI may fill with clinical words (``description``, ``note``, ``text.div``,
``outcomeDesc``, OperationOutcome ``diagnostics`` are kept but NIR-like numbers masked) and any
NIR/INS-like number anywhere (``[NIR]``). The flux 2 and 4 resources carry no name, birth date or
address by construction (identifiers of the decision and the establishment, codes, dates of status).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vtdui.exchanges import ExchangeLog, StoredExchange
from vtdui.logs import redact
from vtdui.outbox import ItemState, Outbox, OutboxItem
from vtdui.safe_io import private_dir

if TYPE_CHECKING:
    from vtdui.config import Config

__all__ = ["EvidenceReport", "export_evidence", "redact_health"]

#: Free-text elements replaced in exported resources (a DUI may type clinical details there).
_FREE_TEXT = frozenset({"description", "note", "div", "comment"})
_MASK = "[texte libre masqué]"


def redact_health(value: Any) -> Any:
    """Copy a FHIR JSON value with free texts masked and NIR-like numbers replaced by ``[NIR]``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _FREE_TEXT and isinstance(item, str):
                out[key] = _MASK
            elif key == "note" and isinstance(item, list):
                out[key] = [{**{k: v for k, v in n.items() if k != "text"}, "text": _MASK}
                            if isinstance(n, dict) else n for n in item]
            else:
                out[key] = redact_health(item)
        return out
    if isinstance(value, list):
        return [redact_health(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return copy.deepcopy(value)


@dataclass
class EvidenceReport:
    """What :func:`export_evidence` wrote."""

    directory: Path
    files: list[Path] = field(default_factory=list)
    items: int = 0
    without_trace: list[int] = field(default_factory=list)


def _write(path: Path, data: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _sent_body(exchanges: Iterable[StoredExchange], fallback: dict[str, Any]) -> dict[str, Any]:
    """The resource as it left: the body of the accepted attempt, else the last attempt, else the item."""
    def accepted(exchange: StoredExchange) -> bool:
        return exchange.status is not None and 200 <= exchange.status < 300

    chosen: StoredExchange | None = None
    for exchange in exchanges:
        if exchange.method == "POST" and exchange.request_body and (
                chosen is None or accepted(exchange) or not accepted(chosen)):
            chosen = exchange
    if chosen is not None and chosen.request_body:
        try:
            body = json.loads(chosen.request_body)
            if isinstance(body, dict):
                return body
        except ValueError:
            pass
    return fallback


def _trace(item: OutboxItem, exchanges: list[StoredExchange]) -> dict[str, Any]:
    trace: dict[str, Any] = redact_health({
        "outbox_item": {"id": item.id, "flux": item.flux, "state": item.state.value, "attempts": item.attempts,
                        "source": item.idempotency_key, "id_nat_decision": item.id_nat_decision,
                        "finess_eg": item.finess_eg, "struct_idnat": "1" + item.finess_eg,
                        "first_enqueued_at": item.first_enqueued_at.isoformat(timespec="milliseconds"),
                        "sent_at": item.sent_at.isoformat(timespec="milliseconds") if item.sent_at else None,
                        "response": item.response, "last_error": item.last_error, "outcome": item.outcome},
        "exchanges": [e.as_dict() for e in exchanges],
    })
    return trace


def export_evidence(state_dir: Path, directory: Path, *, include_unsent: bool = False,
                    outbox: Outbox | None = None, exchanges: ExchangeLog | None = None,
                    config: Config | None = None) -> EvidenceReport:
    """Write the evidence files of the outbox items into ``directory`` (created, files mode 0600).

    Args:
        state_dir: the state directory (outbox and exchange log).
        directory: where to write.
        include_unsent: also export failed and pending items that were attempted (their refusals are
            evidence of the error handling too).
        outbox: an open outbox (default: opened from ``state_dir`` and closed).
        exchanges: an open exchange log (default: opened from ``state_dir`` and closed).
        config: the configuration; with ``database.url`` set, the outbox and the log are opened from
            the PostgreSQL database instead of ``state_dir``.
    """
    own_outbox, own_log = outbox is None, exchanges is None
    if config is not None and config.database.is_postgres:
        from vtdui.storage import open_exchanges, open_outbox

        box = outbox if outbox is not None else open_outbox(config)
        trace_log = exchanges if exchanges is not None else open_exchanges(config)
    else:
        box = outbox if outbox is not None else Outbox.open(state_dir)
        trace_log = exchanges if exchanges is not None else ExchangeLog(state_dir)
    private_dir(directory)  # ESMSTask / ESMSConsent payloads as sent
    report = EvidenceReport(directory)
    index: list[dict[str, Any]] = []
    try:
        states = [ItemState.SENT] + ([ItemState.FAILED, ItemState.PENDING, ItemState.DROPPED]
                                     if include_unsent else [])
        for item in box.list(states=states):
            attempts = trace_log.for_item(item.id)
            if item.state is not ItemState.SENT and not attempts:
                continue
            name = f"esms-{'consent' if item.kind == 'consent' else 'task'}-{item.id:06d}"
            resource = redact_health(_sent_body(attempts, item.payload))
            _write(directory / f"{name}.json", resource)
            _write(directory / f"{name}.trace.json", _trace(item, attempts))
            report.files += [directory / f"{name}.json", directory / f"{name}.trace.json"]
            if not attempts:
                report.without_trace.append(item.id)
            report.items += 1
            index.append({"file": f"{name}.json", "trace": f"{name}.trace.json", "flux": item.flux,
                          "profile": (resource.get("meta") or {}).get("profile", [None])[0],
                          "state": item.state.value, "attempts": len(attempts),
                          "http_status": (item.response or {}).get("status"),
                          "sent_at": item.sent_at.isoformat(timespec="seconds") if item.sent_at else None})
        _write(directory / "index.json", {
            "items": index,
            "validators": "submit each esms-*.json (not the .trace.json) to EVSClient: validator esms-task for "
                          "ESMSTask, esms-consent for ESMSConsent",
            "redacted": ["Authorization and cookie headers", "token requests (not exported)",
                         "free texts (description, note, narrative)", "NIR/INS-like numbers"],
        })
        report.files.append(directory / "index.json")
    finally:
        if own_outbox:
            box.close()
        if own_log:
            trace_log.close()
    return report
