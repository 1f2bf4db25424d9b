"""The exchange log (see :mod:`vtdui.exchanges`) in the shared PostgreSQL database.

Every worker records its attempts in the ``exchanges`` table with its name (``worker``), so that
``vtdui evidence`` run on any host exports the traces of every worker. What is kept is the same as with
SQLite: full bodies only for outbox deliveries (flux 2 and 4), size and digest otherwise, nothing of token
requests; ``Authorization`` is redacted before it gets here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from vtdui.errors import VtduiError
from vtdui.exchanges import ExchangeLog, LatencyStats, StoredExchange
from vtdui.migrations import open_current
from vtdui.postgres import Database, redact_url

__all__ = ["PostgresExchangeLog"]

log = logging.getLogger(__name__)

_COLUMNS = ("id, item_id, idempotency_key, kind, method, url, finess_eg, attempt, started_at, duration, status, "
            "request_headers, request_body, response_headers, response_body, body_digest, error")


class PostgresExchangeLog(ExchangeLog):
    """Records ViaTrajectoire exchanges in PostgreSQL; use :meth:`record` as the client's ``on_exchange``.

    Args:
        url: the database URL.
        current_item: returns the outbox item being delivered by this thread, or ``None``.
        pool_size: most connections this log opens at once.
        worker: this process's name in the ``worker`` column (default ``host:pid``).
        database: an open pool to use instead (not closed by :meth:`close`).

    Raises:
        ConfigError: the schema is not the one this vtdui needs (run ``vtdui db migrate``).
        DatabaseUnavailableError: the server cannot be reached.
    """

    def __init__(self, url: str, current_item: Callable[[], Any] | None = None, *, pool_size: int = 5,
                 worker: str | None = None, database: Database | None = None) -> None:
        # not ExchangeLog.__init__: no SQLite file
        self.pg, self._own, _ = open_current(url, pool_size, database)
        self._lock = threading.Lock()
        self._current_item = current_item
        self.latency: dict[tuple[str, str], LatencyStats] = {}
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"

    def __repr__(self) -> str:
        return f"PostgresExchangeLog({redact_url(self.pg.url)!r})"

    def _insert(self, row: tuple[Any, ...]) -> None:
        """Store one attempt (never raises: a trace must not break a delivery)."""
        try:
            with self.pg.transaction() as conn:
                conn.execute(
                    "INSERT INTO exchanges (item_id, idempotency_key, kind, method, url, finess_eg, attempt, "
                    "started_at, duration, status, request_headers, request_body, response_headers, "
                    "response_body, body_digest, error, worker) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (*row, self.worker))
        except (VtduiError, Exception) as exc:
            log.warning("could not record an exchange trace: %s", type(exc).__name__)

    def for_item(self, item_id: int) -> list[StoredExchange]:
        """The attempts made for one outbox item, oldest first."""
        with self.pg.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM exchanges WHERE item_id = %s ORDER BY id",  # noqa: S608
                                (item_id,)).fetchall()
        return [_stored(r) for r in rows]

    def count(self) -> int:
        """Number of recorded attempts."""
        with self.pg.transaction() as conn:
            row = conn.execute("SELECT count(*) FROM exchanges").fetchone()
        return int(row[0]) if row else 0

    def prune(self, older_than: timedelta) -> int:
        """Delete the attempts older than ``older_than``; return how many."""
        with self.pg.transaction() as conn:
            return conn.execute("DELETE FROM exchanges WHERE started_at < %s",
                                (datetime.now(UTC) - older_than,)).rowcount

    def close(self) -> None:
        """Close the connections (when this log opened them)."""
        if self._own:
            self.pg.close()


def _loads(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        loaded: dict[str, str] = json.loads(value)
        return loaded
    return dict(value or {})


def _stored(row: tuple[Any, ...]) -> StoredExchange:
    started: datetime = row[8]
    return StoredExchange(
        id=int(row[0]), item_id=row[1], idempotency_key=row[2], kind=row[3], method=row[4], url=row[5],
        finess_eg=row[6], attempt=int(row[7]), started_at=started.astimezone(UTC).isoformat(timespec="milliseconds"),
        duration=float(row[9]), status=row[10], request_headers=_loads(row[11]), request_body=row[12],
        response_headers=_loads(row[13]), response_body=row[14], body_digest=row[15], error=row[16])
