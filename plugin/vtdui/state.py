"""The plugin's own durable state: cursors, seen documents, quarantine, statuses waiting for their decision.

SQLite by default (one file in the state directory, WAL journal so a reader never blocks the writer);
:class:`vtdui.pg_state.PostgresStateStore` when ``database.url`` is set. Both implement
:class:`StateBackend`, the interface the runtime and the sync engine type against.
Health data never goes in here except inside quarantined raw documents, which are saved as files with
owner-only permissions next to the database, and in pending flux-5 statuses (the ESMSTask as received).

Cursors follow the rule "a cursor only moves after the data is in HAPI": the sync engine calls
:meth:`StateStore.commit_cursor` after the transaction of the last item of a window succeeded.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from vtdui.sqlite import connect, transaction

__all__ = ["Cursor", "PendingStatus", "QuarantineItem", "StateBackend", "StateStore"]

_MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE cursors (
        finess_eg TEXT NOT NULL,
        flux TEXT NOT NULL,
        instant TEXT NOT NULL,
        last_success TEXT NOT NULL,
        PRIMARY KEY (finess_eg, flux)
    );
    CREATE TABLE documents (
        vt_id TEXT NOT NULL,
        finess_eg TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        id_nat_decision TEXT,
        kind TEXT NOT NULL,
        stored_at TEXT NOT NULL,
        PRIMARY KEY (vt_id, finess_eg)
    );
    CREATE TABLE quarantine (
        key TEXT NOT NULL,
        finess_eg TEXT NOT NULL,
        flux TEXT NOT NULL,
        vt_id TEXT NOT NULL,
        last_updated TEXT,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        path TEXT,
        first_seen TEXT NOT NULL,
        last_tried TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        resolved_at TEXT,
        PRIMARY KEY (key, finess_eg)
    );
    CREATE TABLE pending_statuses (
        vt_task_id TEXT NOT NULL,
        finess_eg TEXT NOT NULL,
        id_nat_decision TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        body TEXT NOT NULL,
        received_at TEXT NOT NULL,
        applied_at TEXT,
        PRIMARY KEY (vt_task_id, finess_eg)
    );
    CREATE INDEX pending_by_decision ON pending_statuses (id_nat_decision, finess_eg, applied_at);
    CREATE TABLE consents (
        id_nat_decision TEXT NOT NULL,
        finess_eg TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        evaluation_version TEXT,
        evaluation_fetched_at TEXT,
        PRIMARY KEY (id_nat_decision, finess_eg)
    );
    """,
)


#: ``last_tried`` of an entry an operator asked to retry: due at once whatever its backoff.
_EPOCH = "1970-01-01T00:00:00.000+00:00"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Cursor:
    """Where the next search of one flux for one establishment starts."""

    finess_eg: str
    flux: str
    instant: datetime
    last_success: datetime


@dataclass(frozen=True)
class QuarantineItem:
    """A document kept aside, with why."""

    key: str
    finess_eg: str
    flux: str
    vt_id: str
    last_updated: str | None
    reason: str
    message: str
    path: str | None
    first_seen: str
    last_tried: str
    attempts: int
    resolved_at: str | None


@dataclass(frozen=True)
class PendingStatus:
    """A flux-5 status kept until (or after) it was applied to the work list."""

    vt_task_id: str
    finess_eg: str
    id_nat_decision: str
    last_updated: str
    body: dict[str, Any]
    applied_at: str | None


class StateBackend(Protocol):
    """The durable state's operations, whatever the storage (see :class:`StateStore` for their meaning)."""

    def schema_version(self) -> int: ...  # noqa: D102
    def close(self) -> None: ...  # noqa: D102
    def cursor(self, finess_eg: str, flux: str) -> Cursor | None: ...  # noqa: D102
    def commit_cursor(self, finess_eg: str, flux: str, instant: datetime) -> None: ...  # noqa: D102
    def cursors(self) -> list[Cursor]: ...  # noqa: D102
    def seen(self, vt_id: str, finess_eg: str, last_updated: str) -> bool: ...  # noqa: D102
    def mark_stored(self, vt_id: str, finess_eg: str, last_updated: str,  # noqa: D102
                    id_nat_decision: str | None, kind: str) -> None: ...
    def known_decision(self, id_nat_decision: str, finess_eg: str) -> bool: ...  # noqa: D102
    def document_count(self, finess_eg: str | None = None) -> int: ...  # noqa: D102
    def quarantine(self, *, finess_eg: str, flux: str, vt_id: str, last_updated: str | None,  # noqa: D102
                   reason: str, message: str, raw: bytes | None) -> QuarantineItem: ...
    def quarantined(self, *, include_resolved: bool = False) -> list[QuarantineItem]: ...  # noqa: D102
    def quarantine_raw(self, key: str, finess_eg: str) -> bytes | None: ...  # noqa: D102
    def resolve_quarantine(self, vt_id: str, finess_eg: str) -> None: ...  # noqa: D102
    def retry_quarantine(self, key: str, finess_eg: str) -> bool: ...  # noqa: D102
    def drop_quarantine(self, key: str, finess_eg: str) -> bool: ...  # noqa: D102
    def keep_status(self, *, vt_task_id: str, finess_eg: str, id_nat_decision: str,  # noqa: D102
                    last_updated: str, body: dict[str, Any]) -> bool: ...
    def pending_statuses(self, id_nat_decision: str | None, finess_eg: str) -> list[PendingStatus]: ...  # noqa: D102
    def waiting_status_count(self) -> dict[str, int]: ...  # noqa: D102
    def mark_status_applied(self, vt_task_id: str, finess_eg: str) -> None: ...  # noqa: D102
    def record_consent(self, id_nat_decision: str, finess_eg: str) -> None: ...  # noqa: D102
    def consent_accepted(self, id_nat_decision: str, finess_eg: str) -> bool: ...  # noqa: D102
    def evaluations_due(self, finess_eg: str) -> list[str]: ...  # noqa: D102
    def mark_evaluation_fetched(self, id_nat_decision: str, finess_eg: str,  # noqa: D102
                                version: str | None) -> None: ...


class StateStore:
    """SQLite-backed state of the plugin; safe to share between threads of one process."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir = self.state_dir / "quarantine"
        self.path = self.state_dir / "state.sqlite3"
        self._lock = threading.RLock()
        self._db = connect(self.path)
        self._migrate()

    # -- plumbing -----------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, script in enumerate(_MIGRATIONS, start=1):
                if version > current:
                    for statement in filter(str.strip, script.split(";")):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    def schema_version(self) -> int:
        """Return the applied schema version."""
        with self._lock:
            return int(self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- cursors -------------------------------------------------------------------------------------

    def cursor(self, finess_eg: str, flux: str) -> Cursor | None:
        """Return the committed cursor of one flux for one establishment, or ``None`` (first connection)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM cursors WHERE finess_eg=? AND flux=?",
                                   (finess_eg, flux)).fetchone()
        if row is None:
            return None
        return Cursor(row["finess_eg"], row["flux"], datetime.fromisoformat(row["instant"]),
                      datetime.fromisoformat(row["last_success"]))

    def commit_cursor(self, finess_eg: str, flux: str, instant: datetime) -> None:
        """Move a cursor forward (never backward) after the data up to ``instant`` is in HAPI."""
        value = instant.isoformat(timespec="milliseconds")
        with self._tx() as db:
            row = db.execute("SELECT instant FROM cursors WHERE finess_eg=? AND flux=?", (finess_eg, flux)).fetchone()
            if row is not None and datetime.fromisoformat(row["instant"]) > instant:
                value = row["instant"]
            db.execute(
                "INSERT INTO cursors (finess_eg, flux, instant, last_success) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (finess_eg, flux) DO UPDATE SET instant=excluded.instant, "
                "last_success=excluded.last_success",
                (finess_eg, flux, value, _now()))

    def cursors(self) -> list[Cursor]:
        """Every cursor, for ``vtdui status``."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM cursors ORDER BY finess_eg, flux").fetchall()
        return [Cursor(r["finess_eg"], r["flux"], datetime.fromisoformat(r["instant"]),
                       datetime.fromisoformat(r["last_success"])) for r in rows]

    # -- documents seen ------------------------------------------------------------------------------

    def seen(self, vt_id: str, finess_eg: str, last_updated: str) -> bool:
        """Tell whether this version of a ViaTrajectoire document is already stored for this establishment."""
        with self._lock:
            row = self._db.execute("SELECT last_updated FROM documents WHERE vt_id=? AND finess_eg=?",
                                   (vt_id, finess_eg)).fetchone()
        return row is not None and row["last_updated"] == last_updated

    def mark_stored(self, vt_id: str, finess_eg: str, last_updated: str, id_nat_decision: str | None,
                    kind: str) -> None:
        """Record that a document version is in HAPI, and resolve its quarantine entry if any."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO documents (vt_id, finess_eg, last_updated, id_nat_decision, kind, stored_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (vt_id, finess_eg) DO UPDATE SET "
                "last_updated=excluded.last_updated, id_nat_decision=excluded.id_nat_decision, "
                "stored_at=excluded.stored_at",
                (vt_id, finess_eg, last_updated, id_nat_decision, kind, _now()))
            db.execute("UPDATE quarantine SET resolved_at=? WHERE vt_id=? AND finess_eg=? AND resolved_at IS NULL",
                       (_now(), vt_id, finess_eg))

    def known_decision(self, id_nat_decision: str, finess_eg: str) -> bool:
        """Tell whether a decision was stored for this establishment."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM documents WHERE id_nat_decision=? AND finess_eg=? AND kind='decision'",
                (id_nat_decision, finess_eg)).fetchone()
        return row is not None

    def document_count(self, finess_eg: str | None = None) -> int:
        """Number of documents stored (for one establishment, or all)."""
        sql, args = "SELECT count(*) FROM documents", ()
        if finess_eg:
            sql, args = sql + " WHERE finess_eg=?", (finess_eg,)  # type: ignore[assignment]
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    # -- quarantine ----------------------------------------------------------------------------------

    def quarantine(self, *, finess_eg: str, flux: str, vt_id: str, last_updated: str | None, reason: str,
                   message: str, raw: bytes | None) -> QuarantineItem:
        """Keep a bad document aside with its reason; the raw bytes go to an owner-only file."""
        key = f"{vt_id}@{last_updated or '-'}"
        path: str | None = None
        if raw is not None:
            self.quarantine_dir.mkdir(mode=0o700, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{finess_eg}-{key}")
            file = self.quarantine_dir / f"{safe}.bin"
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
            path = str(file)
        now = _now()
        with self._tx() as db:
            db.execute(
                "INSERT INTO quarantine (key, finess_eg, flux, vt_id, last_updated, reason, message, path, "
                "first_seen, last_tried) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key, finess_eg) DO UPDATE SET reason=excluded.reason, message=excluded.message, "
                "path=coalesce(excluded.path, quarantine.path), last_tried=excluded.last_tried, "
                "attempts=quarantine.attempts + 1, resolved_at=NULL",
                (key, finess_eg, flux, vt_id, last_updated, reason, message, path, now, now))
            row = db.execute("SELECT * FROM quarantine WHERE key=? AND finess_eg=?", (key, finess_eg)).fetchone()
        return _quarantine_item(row)

    def quarantined(self, *, include_resolved: bool = False) -> list[QuarantineItem]:
        """List quarantined documents (unresolved only by default)."""
        sql = "SELECT * FROM quarantine"
        if not include_resolved:
            sql += " WHERE resolved_at IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY first_seen").fetchall()
        return [_quarantine_item(r) for r in rows]

    def quarantine_raw(self, key: str, finess_eg: str) -> bytes | None:
        """The raw bytes kept with a quarantine entry (``None``: none kept, or the file is gone)."""
        with self._lock:
            row = self._db.execute("SELECT path FROM quarantine WHERE key=? AND finess_eg=?",
                                   (key, finess_eg)).fetchone()
        if row is None or not row["path"]:
            return None
        try:
            return Path(row["path"]).read_bytes()
        except OSError:
            return None

    def resolve_quarantine(self, vt_id: str, finess_eg: str) -> None:
        """Mark the quarantine entries of one ViaTrajectoire resource resolved (it was stored since)."""
        with self._tx() as db:
            db.execute("UPDATE quarantine SET resolved_at=? WHERE vt_id=? AND finess_eg=? AND resolved_at IS NULL",
                       (_now(), vt_id, finess_eg))

    def retry_quarantine(self, key: str, finess_eg: str) -> bool:
        """Make an unresolved quarantine entry due at the next cycle (an operator asked); False when unknown."""
        with self._tx() as db:
            cursor = db.execute("UPDATE quarantine SET last_tried=? "
                                "WHERE key=? AND finess_eg=? AND resolved_at IS NULL", (_EPOCH, key, finess_eg))
            return cursor.rowcount > 0

    def drop_quarantine(self, key: str, finess_eg: str) -> bool:
        """Stop retrying an unresolved quarantine entry (an operator decided); False when unknown."""
        with self._tx() as db:
            cursor = db.execute("UPDATE quarantine SET resolved_at=?, message='dropped by an operator: ' || message "
                                "WHERE key=? AND finess_eg=? AND resolved_at IS NULL", (_now(), key, finess_eg))
            return cursor.rowcount > 0

    # -- flux 5 statuses waiting for their decision ---------------------------------------------------

    def keep_status(self, *, vt_task_id: str, finess_eg: str, id_nat_decision: str, last_updated: str,
                    body: dict[str, Any]) -> bool:
        """Keep a flux-5 status; return False when this version was already kept (dedupe)."""
        with self._tx() as db:
            row = db.execute("SELECT last_updated FROM pending_statuses WHERE vt_task_id=? AND finess_eg=?",
                             (vt_task_id, finess_eg)).fetchone()
            if row is not None and row["last_updated"] == last_updated:
                return False
            db.execute(
                "INSERT INTO pending_statuses (vt_task_id, finess_eg, id_nat_decision, last_updated, body, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (vt_task_id, finess_eg) DO UPDATE SET "
                "last_updated=excluded.last_updated, body=excluded.body, received_at=excluded.received_at, "
                "applied_at=NULL",
                (vt_task_id, finess_eg, id_nat_decision, last_updated, json.dumps(body), _now()))
        return True

    def pending_statuses(self, id_nat_decision: str | None, finess_eg: str) -> list[PendingStatus]:
        """Statuses not applied yet, oldest first (for one decision, or all of the establishment)."""
        sql = "SELECT * FROM pending_statuses WHERE finess_eg=? AND applied_at IS NULL"
        args: tuple[str, ...] = (finess_eg,)
        if id_nat_decision is not None:
            sql += " AND id_nat_decision=?"
            args += (id_nat_decision,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY last_updated, vt_task_id", args).fetchall()
        return [PendingStatus(r["vt_task_id"], r["finess_eg"], r["id_nat_decision"], r["last_updated"],
                              json.loads(r["body"]), r["applied_at"]) for r in rows]

    def waiting_status_count(self) -> dict[str, int]:
        """Flux-5 statuses kept but not applied yet (their decision is not stored), per establishment."""
        with self._lock:
            rows = self._db.execute("SELECT finess_eg, count(*) FROM pending_statuses WHERE applied_at IS NULL "
                                    "GROUP BY finess_eg ORDER BY finess_eg").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def mark_status_applied(self, vt_task_id: str, finess_eg: str) -> None:
        """Record that a kept status is on the work list."""
        with self._tx() as db:
            db.execute("UPDATE pending_statuses SET applied_at=? WHERE vt_task_id=? AND finess_eg=?",
                       (_now(), vt_task_id, finess_eg))

    # -- consents and evaluations ----------------------------------------------------------------------

    def record_consent(self, id_nat_decision: str, finess_eg: str) -> None:
        """Record that ViaTrajectoire accepted the consent for (decision, establishment)."""
        with self._tx() as db:
            db.execute("INSERT INTO consents (id_nat_decision, finess_eg, accepted_at) VALUES (?, ?, ?) "
                       "ON CONFLICT DO NOTHING", (id_nat_decision, finess_eg, _now()))

    def consent_accepted(self, id_nat_decision: str, finess_eg: str) -> bool:
        """Tell whether a consent was accepted for (decision, establishment)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM consents WHERE id_nat_decision=? AND finess_eg=?",
                                    (id_nat_decision, finess_eg)).fetchone() is not None

    def evaluations_due(self, finess_eg: str) -> list[str]:
        """Decisions with an accepted consent whose evaluation is missing or older than the decision."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id_nat_decision FROM consents c LEFT JOIN documents d "
                "ON d.id_nat_decision=c.id_nat_decision AND d.finess_eg=c.finess_eg AND d.kind='decision' "
                "WHERE c.finess_eg=? AND (c.evaluation_fetched_at IS NULL OR "
                "(d.stored_at IS NOT NULL AND d.stored_at > c.evaluation_fetched_at)) "
                "ORDER BY c.accepted_at", (finess_eg,)).fetchall()
        return [r[0] for r in rows]

    def mark_evaluation_fetched(self, id_nat_decision: str, finess_eg: str, version: str | None) -> None:
        """Record that the evaluation of a decision is in HAPI."""
        with self._tx() as db:
            db.execute("UPDATE consents SET evaluation_fetched_at=?, evaluation_version=? "
                       "WHERE id_nat_decision=? AND finess_eg=?", (_now(), version, id_nat_decision, finess_eg))


def _quarantine_item(row: sqlite3.Row) -> QuarantineItem:
    return QuarantineItem(row["key"], row["finess_eg"], row["flux"], row["vt_id"], row["last_updated"],
                          row["reason"], row["message"], row["path"], row["first_seen"], row["last_tried"],
                          row["attempts"], row["resolved_at"])
