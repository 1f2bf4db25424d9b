"""The plugin's durable state in PostgreSQL, shared by several ``vtdui run`` workers.

Same operations and meaning as the SQLite :class:`vtdui.state.StateStore` (see there); differences:

* quarantined raw documents are kept in the database (``quarantine.raw``, ``bytea``) since workers may run
  on several hosts; :attr:`QuarantineItem.path` is ``None`` and :meth:`PostgresStateStore.quarantine_raw`
  returns the bytes;
* instants vtdui writes come from the database server's clock (one clock for every worker);
* the schema is created by ``vtdui db migrate``, never by opening the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from vtdui.migrations import open_current
from vtdui.postgres import Database, redact_url
from vtdui.state import Cursor, PendingStatus, QuarantineItem

__all__ = ["PostgresStateStore"]


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="milliseconds")


class PostgresStateStore:
    """PostgreSQL-backed state of the plugin; safe to share between threads and processes.

    Args:
        url: the database URL.
        pool_size: most connections this store opens at once.
        database: an open pool to use instead (not closed by :meth:`close`).

    Raises:
        ConfigError: the schema is not the one this vtdui needs (run ``vtdui db migrate``).
        DatabaseUnavailableError: the server cannot be reached.
    """

    def __init__(self, url: str, *, pool_size: int = 5, database: Database | None = None) -> None:
        self.db, self._own, self._version = open_current(url, pool_size, database)

    def __repr__(self) -> str:
        return f"PostgresStateStore({redact_url(self.db.url)!r})"

    def schema_version(self) -> int:
        """Return the applied schema version."""
        return self._version

    def close(self) -> None:
        """Close the connections (when this store opened them)."""
        if self._own:
            self.db.close()

    # -- cursors -------------------------------------------------------------------------------------

    def cursor(self, finess_eg: str, flux: str) -> Cursor | None:
        """Return the committed cursor of one flux for one establishment, or ``None`` (first connection)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT finess_eg, flux, instant, last_success FROM cursors "
                               "WHERE finess_eg = %s AND flux = %s", (finess_eg, flux)).fetchone()
        return None if row is None else Cursor(row[0], row[1], row[2], row[3])

    def commit_cursor(self, finess_eg: str, flux: str, instant: datetime) -> None:
        """Move a cursor forward (never backward) after the data up to ``instant`` is in HAPI."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO cursors (finess_eg, flux, instant, last_success) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (finess_eg, flux) DO UPDATE SET "
                "instant = greatest(cursors.instant, excluded.instant), last_success = excluded.last_success",
                (finess_eg, flux, instant))

    def cursors(self) -> list[Cursor]:
        """Every cursor, for ``vtdui status``."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT finess_eg, flux, instant, last_success FROM cursors "
                                "ORDER BY finess_eg, flux").fetchall()
        return [Cursor(r[0], r[1], r[2], r[3]) for r in rows]

    # -- documents seen ------------------------------------------------------------------------------

    def seen(self, vt_id: str, finess_eg: str, last_updated: str) -> bool:
        """Tell whether this version of a ViaTrajectoire document is already stored for this establishment."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT last_updated FROM documents WHERE vt_id = %s AND finess_eg = %s",
                               (vt_id, finess_eg)).fetchone()
        return row is not None and row[0] == last_updated

    def mark_stored(self, vt_id: str, finess_eg: str, last_updated: str, id_nat_decision: str | None,
                    kind: str) -> None:
        """Record that a document version is in HAPI, and resolve its quarantine entry if any."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO documents (vt_id, finess_eg, last_updated, id_nat_decision, kind, stored_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (vt_id, finess_eg) DO UPDATE SET "
                "last_updated = excluded.last_updated, id_nat_decision = excluded.id_nat_decision, "
                "stored_at = excluded.stored_at",
                (vt_id, finess_eg, last_updated, id_nat_decision, kind))
            conn.execute("UPDATE quarantine SET resolved_at = now() "
                         "WHERE vt_id = %s AND finess_eg = %s AND resolved_at IS NULL", (vt_id, finess_eg))

    def known_decision(self, id_nat_decision: str, finess_eg: str) -> bool:
        """Tell whether a decision was stored for this establishment."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT 1 FROM documents WHERE id_nat_decision = %s AND finess_eg = %s "
                               "AND kind = 'decision' LIMIT 1", (id_nat_decision, finess_eg)).fetchone()
        return row is not None

    def document_count(self, finess_eg: str | None = None) -> int:
        """Number of documents stored (for one establishment, or all)."""
        with self.db.transaction() as conn:
            if finess_eg:
                row = conn.execute("SELECT count(*) FROM documents WHERE finess_eg = %s", (finess_eg,)).fetchone()
            else:
                row = conn.execute("SELECT count(*) FROM documents").fetchone()
        return int(row[0]) if row else 0

    # -- quarantine ----------------------------------------------------------------------------------

    def quarantine(self, *, finess_eg: str, flux: str, vt_id: str, last_updated: str | None, reason: str,
                   message: str, raw: bytes | None) -> QuarantineItem:
        """Keep a bad document aside with its reason; the raw bytes go to the database."""
        key = f"{vt_id}@{last_updated or '-'}"
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO quarantine (key, finess_eg, flux, vt_id, last_updated, reason, message, raw, "  # noqa: S608
                "first_seen, last_tried) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), now()) "
                "ON CONFLICT (key, finess_eg) DO UPDATE SET reason = excluded.reason, message = excluded.message, "
                "raw = coalesce(excluded.raw, quarantine.raw), last_tried = excluded.last_tried, "
                "attempts = quarantine.attempts + 1, resolved_at = NULL "
                f"RETURNING {_QUARANTINE_COLUMNS}",
                (key, finess_eg, flux, vt_id, last_updated, reason, message, raw)).fetchone()
        assert row is not None
        return _quarantine_item(row)

    def quarantined(self, *, include_resolved: bool = False) -> list[QuarantineItem]:
        """List quarantined documents (unresolved only by default)."""
        where = "" if include_resolved else " WHERE resolved_at IS NULL"
        with self.db.transaction() as conn:
            rows = conn.execute(f"SELECT {_QUARANTINE_COLUMNS} FROM quarantine{where} "  # noqa: S608 - fixed text
                                "ORDER BY first_seen, key").fetchall()
        return [_quarantine_item(r) for r in rows]

    def quarantine_raw(self, key: str, finess_eg: str) -> bytes | None:
        """The raw bytes kept with a quarantine entry (``None``: none kept)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT raw FROM quarantine WHERE key = %s AND finess_eg = %s",
                               (key, finess_eg)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def resolve_quarantine(self, vt_id: str, finess_eg: str) -> None:
        """Mark the quarantine entries of one ViaTrajectoire resource resolved (it was stored since)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE quarantine SET resolved_at = now() "
                         "WHERE vt_id = %s AND finess_eg = %s AND resolved_at IS NULL", (vt_id, finess_eg))

    def retry_quarantine(self, key: str, finess_eg: str) -> bool:
        """Make an unresolved quarantine entry due at the next cycle (an operator asked); False when unknown."""
        with self.db.transaction() as conn:
            cursor = conn.execute("UPDATE quarantine SET last_tried = 'epoch' "
                                  "WHERE key = %s AND finess_eg = %s AND resolved_at IS NULL", (key, finess_eg))
            return cursor.rowcount > 0

    def drop_quarantine(self, key: str, finess_eg: str) -> bool:
        """Stop retrying an unresolved quarantine entry (an operator decided); False when unknown."""
        with self.db.transaction() as conn:
            cursor = conn.execute("UPDATE quarantine SET resolved_at = now(), "
                                  "message = 'dropped by an operator: ' || message "
                                  "WHERE key = %s AND finess_eg = %s AND resolved_at IS NULL", (key, finess_eg))
            return cursor.rowcount > 0

    # -- flux 5 statuses waiting for their decision ---------------------------------------------------

    def keep_status(self, *, vt_task_id: str, finess_eg: str, id_nat_decision: str, last_updated: str,
                    body: dict[str, Any]) -> bool:
        """Keep a flux-5 status; return False when this version was already kept (dedupe)."""
        with self.db.transaction() as conn:
            # one statement: two workers keeping the same version at once keep it once
            row = conn.execute(
                "INSERT INTO pending_statuses (vt_task_id, finess_eg, id_nat_decision, last_updated, body, "
                "received_at) VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (vt_task_id, finess_eg) DO UPDATE SET "
                "id_nat_decision = excluded.id_nat_decision, last_updated = excluded.last_updated, "
                "body = excluded.body, received_at = excluded.received_at, applied_at = NULL "
                "WHERE pending_statuses.last_updated IS DISTINCT FROM excluded.last_updated RETURNING 1",
                (vt_task_id, finess_eg, id_nat_decision, last_updated, json.dumps(body))).fetchone()
        return row is not None

    def pending_statuses(self, id_nat_decision: str | None, finess_eg: str) -> list[PendingStatus]:
        """Statuses not applied yet, oldest first (for one decision, or all of the establishment)."""
        sql = ("SELECT vt_task_id, finess_eg, id_nat_decision, last_updated, body, applied_at FROM pending_statuses "
               "WHERE finess_eg = %s AND applied_at IS NULL")
        args: tuple[str, ...] = (finess_eg,)
        if id_nat_decision is not None:
            sql += " AND id_nat_decision = %s"
            args += (id_nat_decision,)
        with self.db.transaction() as conn:
            rows = conn.execute(sql + " ORDER BY last_updated, vt_task_id", args).fetchall()
        return [PendingStatus(r[0], r[1], r[2], r[3], r[4], _text(r[5])) for r in rows]

    def waiting_status_count(self) -> dict[str, int]:
        """Flux-5 statuses kept but not applied yet (their decision is not stored), per establishment."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT finess_eg, count(*) FROM pending_statuses WHERE applied_at IS NULL "
                                "GROUP BY finess_eg ORDER BY finess_eg").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def mark_status_applied(self, vt_task_id: str, finess_eg: str) -> None:
        """Record that a kept status is on the work list."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE pending_statuses SET applied_at = now() WHERE vt_task_id = %s AND finess_eg = %s",
                         (vt_task_id, finess_eg))

    # -- consents and evaluations ----------------------------------------------------------------------

    def record_consent(self, id_nat_decision: str, finess_eg: str) -> None:
        """Record that ViaTrajectoire accepted the consent for (decision, establishment)."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO consents (id_nat_decision, finess_eg, accepted_at) VALUES (%s, %s, now()) "
                         "ON CONFLICT DO NOTHING", (id_nat_decision, finess_eg))

    def consent_accepted(self, id_nat_decision: str, finess_eg: str) -> bool:
        """Tell whether a consent was accepted for (decision, establishment)."""
        with self.db.transaction() as conn:
            return conn.execute("SELECT 1 FROM consents WHERE id_nat_decision = %s AND finess_eg = %s",
                                (id_nat_decision, finess_eg)).fetchone() is not None

    def evaluations_due(self, finess_eg: str) -> list[str]:
        """Decisions with an accepted consent whose evaluation is missing or older than the decision."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT c.id_nat_decision FROM consents c LEFT JOIN documents d "
                "ON d.id_nat_decision = c.id_nat_decision AND d.finess_eg = c.finess_eg AND d.kind = 'decision' "
                "WHERE c.finess_eg = %s AND (c.evaluation_fetched_at IS NULL OR "
                "(d.stored_at IS NOT NULL AND d.stored_at > c.evaluation_fetched_at)) "
                "ORDER BY c.accepted_at, c.id_nat_decision", (finess_eg,)).fetchall()
        return [r[0] for r in rows]

    def mark_evaluation_fetched(self, id_nat_decision: str, finess_eg: str, version: str | None) -> None:
        """Record that the evaluation of a decision is in HAPI."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE consents SET evaluation_fetched_at = now(), evaluation_version = %s "
                         "WHERE id_nat_decision = %s AND finess_eg = %s", (version, id_nat_decision, finess_eg))


_QUARANTINE_COLUMNS = ("key, finess_eg, flux, vt_id, last_updated, reason, message, first_seen, last_tried, "
                       "attempts, resolved_at")


def _quarantine_item(row: tuple[Any, ...]) -> QuarantineItem:
    return QuarantineItem(row[0], row[1], row[2], row[3], row[4], row[5], row[6], None, _text(row[7]) or "",
                          _text(row[8]) or "", int(row[9]), _text(row[10]))
