"""The exchange log: every HTTP attempt towards ViaTrajectoire, kept for the referencing evidence and metrics.

The ViaTrajectoire client reports each attempt to an ``on_exchange`` callback
(:mod:`vtdui.viatrajectoire.trace`); :class:`ExchangeLog` is that callback for a vtdui process. It keeps:

* for an attempt made while delivering an outbox item (flux 2 and 4, see
  :data:`vtdui.emit.CURRENT_ITEM`): the full request and response, ``Authorization`` redacted by the
  client, so that ``vtdui evidence`` can export the exact payloads and their HTTP trace;
* for every other business call (flux 1, 3, 5 searches and reads): method, URL, status and duration,
  with only the size and SHA-256 of the bodies (they carry CDA documents: health data stays in HAPI);
* for token requests: method, URL, status and duration only (the form body carries the client secret).

Storage: ``exchanges.sqlite3`` in the state directory, owner-only permissions (bodies of flux 2 and 4
identify decisions); the ``exchanges`` table of the shared database with PostgreSQL
(:class:`vtdui.pg_exchanges.PostgresExchangeLog`). :meth:`ExchangeLog.prune` drops old entries.

Latency figures (count and total seconds per kind and status class) are kept in memory for ``/metrics``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vtdui.sqlite import connect
from vtdui.urls import redact_userinfo
from vtdui.viatrajectoire.trace import Exchange, redact_headers

__all__ = ["LATENCY_BUCKETS", "ExchangeLog", "LatencyStats", "StoredExchange"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER,
    idempotency_key TEXT,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    finess_eg TEXT,
    attempt INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    duration REAL NOT NULL,
    status INTEGER,
    request_headers TEXT NOT NULL,
    request_body TEXT,
    response_headers TEXT NOT NULL,
    response_body TEXT,
    body_digest TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS exchanges_by_item ON exchanges (item_id)
"""


@dataclass(frozen=True)
class StoredExchange:
    """One recorded attempt (bodies are ``None`` when they were not kept)."""

    id: int
    item_id: int | None
    idempotency_key: str | None
    kind: str
    method: str
    url: str
    finess_eg: str | None
    attempt: int
    started_at: str
    duration: float
    status: int | None
    request_headers: dict[str, str]
    request_body: str | None
    response_headers: dict[str, str]
    response_body: str | None
    body_digest: str | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON view (bodies parsed back to JSON when they are JSON)."""
        def body(text: str | None) -> Any:
            if text is None:
                return None
            try:
                return json.loads(text)
            except ValueError:
                return text

        return {"attempt": self.attempt, "started_at": self.started_at, "duration_seconds": round(self.duration, 4),
                "request": {"method": self.method, "url": self.url, "headers": self.request_headers,
                            "body": body(self.request_body)},
                "response": {"status": self.status, "headers": self.response_headers,
                             "body": body(self.response_body)},
                "error": self.error}


@dataclass
class LatencyStats:
    """Count, total duration and duration histogram of the attempts of one kind and status class."""

    count: int = 0
    seconds: float = 0.0
    #: attempts that took at most each bound of :data:`LATENCY_BUCKETS` (not cumulative; ``+Inf`` is ``count``)
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))

    def add(self, seconds: float) -> None:
        """Count one attempt of ``seconds``."""
        self.count += 1
        self.seconds += seconds
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if index < len(LATENCY_BUCKETS):
            self.buckets[index] += 1


#: upper bounds (seconds) of the ViaTrajectoire request-duration histogram of ``/metrics``
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


class ExchangeLog:
    """Records ViaTrajectoire exchanges; use :meth:`record` as the client's ``on_exchange``.

    Args:
        state_dir: where ``exchanges.sqlite3`` lives.
        current_item: returns the outbox item being delivered by this thread (``id`` and
            ``idempotency_key`` attributes), or ``None``.
    """

    def __init__(self, state_dir: Path, current_item: Callable[[], Any] | None = None) -> None:
        self.path = Path(state_dir) / "exchanges.sqlite3"
        self._lock = threading.Lock()
        self._db = connect(self.path)  # 0600 in a 0700 directory, WAL
        for statement in filter(str.strip, _SCHEMA.split(";")):
            self._db.execute(statement)
        self._current_item = current_item
        self.latency: dict[tuple[str, str], LatencyStats] = {}

    def record(self, exchange: Exchange) -> None:
        """Keep one attempt (never raises: a trace must not break a delivery)."""
        status_class = f"{exchange.status // 100}xx" if exchange.status is not None else "error"
        item = self._current_item() if self._current_item is not None else None
        with self._lock:
            self.latency.setdefault((exchange.kind, status_class), LatencyStats()).add(exchange.duration)
        keep_bodies = item is not None and exchange.kind == "fhir"
        digest = None
        if not keep_bodies and exchange.kind == "fhir":
            content = exchange.response_body or exchange.request_body
            digest = f"{len(content)} bytes sha256:{hashlib.sha256(content).hexdigest()}" if content else None
        row = (
            getattr(item, "id", None), getattr(item, "idempotency_key", None), exchange.kind, exchange.method,
            redact_userinfo(exchange.url), exchange.finess_eg, exchange.attempt,
            exchange.started_at.astimezone(UTC).isoformat(timespec="milliseconds"), exchange.duration,
            exchange.status, json.dumps(redact_headers(dict(exchange.request_headers))),
            _text(exchange.request_body) if keep_bodies else None,
            json.dumps(redact_headers(dict(exchange.response_headers))),
            _text(exchange.response_body) if keep_bodies else None, digest, exchange.error,
        )
        self._insert(row)

    def _insert(self, row: tuple[Any, ...]) -> None:
        """Store one attempt's row (columns in the order of :meth:`record`); never raises."""
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO exchanges (item_id, idempotency_key, kind, method, url, finess_eg, attempt, "
                    "started_at, duration, status, request_headers, request_body, response_headers, "
                    "response_body, body_digest, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row)
        except sqlite3.Error as exc:
            log.warning("could not record an exchange trace: %s", exc)

    def latency_snapshot(self) -> dict[tuple[str, str], tuple[int, float]]:
        """``(kind, status class) -> (count, total seconds)`` of the attempts recorded by this process."""
        with self._lock:
            return {key: (stats.count, stats.seconds) for key, stats in self.latency.items()}

    def latency_histograms(self) -> dict[tuple[str, str], LatencyStats]:
        """``(kind, status class) ->`` a copy of the attempts' :class:`LatencyStats` (histogram included)."""
        with self._lock:
            return {key: LatencyStats(stats.count, stats.seconds, list(stats.buckets))
                    for key, stats in self.latency.items()}

    def for_item(self, item_id: int) -> list[StoredExchange]:
        """The attempts made for one outbox item, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM exchanges WHERE item_id = ? ORDER BY id", (item_id,)).fetchall()
        return [_stored(r) for r in rows]

    def count(self) -> int:
        """Number of recorded attempts."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM exchanges").fetchone()[0])

    def prune(self, older_than: timedelta) -> int:
        """Delete the attempts older than ``older_than``; return how many."""
        limit = (datetime.now(UTC) - older_than).isoformat(timespec="milliseconds")
        with self._lock:
            return self._db.execute("DELETE FROM exchanges WHERE started_at < ?", (limit,)).rowcount

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _stored(row: sqlite3.Row) -> StoredExchange:
    return StoredExchange(
        id=int(row["id"]), item_id=row["item_id"], idempotency_key=row["idempotency_key"], kind=row["kind"],
        method=row["method"], url=row["url"], finess_eg=row["finess_eg"], attempt=int(row["attempt"]),
        started_at=row["started_at"], duration=float(row["duration"]), status=row["status"],
        request_headers=json.loads(row["request_headers"]), request_body=row["request_body"],
        response_headers=json.loads(row["response_headers"]), response_body=row["response_body"],
        body_digest=row["body_digest"], error=row["error"])
