"""The outbox in PostgreSQL: many workers (processes, hosts) claim items concurrently and safely.

Same rules as :mod:`vtdui.outbox` (the :class:`~vtdui.outbox.Outbox` policy runs unchanged over this
backend). What the claim guarantees, with any number of concurrent workers:

* **No item claimed twice.** Candidates are locked with ``FOR UPDATE SKIP LOCKED`` and re-checked after
  the lock; a worker never waits on another's rows.
* **At most one item in flight per decision, in order.** An item is eligible only when it is the head of
  its (idNat_Decision, FINESS EG): no earlier item ``pending``/``sending``/``failed``, *and* no other item
  of the same decision ``sending`` under a live lease (this second rule covers an operator ``retry`` of an
  earlier item, or an earlier item arriving late, while a later one is being sent: it waits). Under
  ``READ COMMITTED`` two claims may each see an older snapshot, so the claim of a decision is serialised
  with a transaction-level advisory lock ``pg_try_advisory_xact_lock(hashtext(idNat_Decision),
  hashtext(FINESS EG))``: a claimer that does not get it skips the decision (another worker is claiming it
  right now), and one that gets it re-checks eligibility with a fresh snapshot, taken after the other
  claim committed (the lock is released only after the commit is visible).
* **Expired leases.** A live worker renews the leases of the items it holds while it works and checks it
  still holds an item just before sending it (:meth:`renew`). A ``sending`` item whose ``locked_until``
  passed (its worker crashed, was killed or stalled) is eligible again, for any worker; the ``attempts``
  counter keeps growing. Lease times come from the clock of the worker that claims (the
  :class:`~vtdui.outbox.Outbox` clock): hosts must keep their clocks synchronised (NTP) well within
  ``outbox.lease_seconds``.

An item arriving late *while* a later item of its decision is in flight is stored ``pending`` (the later one
is not ``sent`` yet), waits, and is dropped when the later one is accepted (:meth:`vtdui.outbox.Outbox.mark_sent`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql
from psycopg.types.json import Json

from vtdui.migrations import open_current
from vtdui.outbox import JSON_COLUMNS, ItemState, NewItem, OutboxBackend, OutboxError, OutboxItem, check_updatable
from vtdui.postgres import Database, redact_url

__all__ = ["PostgresOutboxBackend"]

_COLUMNS = ("id, kind, idempotency_key, id_nat_decision, finess_eg, sequence, source_ref, payload, origin, state, "
            "attempts, next_attempt_at, first_enqueued_at, window_started_at, updated_at, sent_at, last_error, "
            "outcome, response, locked_by, locked_until")

# The head-of-decision rule (as in SQLite) plus: no other item of the decision in flight under a live lease.
_ELIGIBLE = """
    ((o.state = 'pending' AND o.next_attempt_at <= %(now)s)
     OR (o.state = 'sending' AND o.locked_until < %(now)s))
    AND NOT EXISTS (
        SELECT 1 FROM outbox p
        WHERE p.id_nat_decision = o.id_nat_decision AND p.finess_eg = o.finess_eg AND p.id <> o.id
          AND ((p.state IN ('pending', 'sending', 'failed')
                AND (p.sequence < o.sequence OR (p.sequence = o.sequence AND p.id < o.id)))
               OR (p.state = 'sending' AND p.locked_until >= %(now)s)))
"""
_CANDIDATES = f"""
SELECT o.id, o.id_nat_decision, o.finess_eg FROM outbox o
WHERE {_ELIGIBLE}
ORDER BY o.next_attempt_at, o.id
LIMIT %(scan)s
"""  # noqa: S608 - fixed text
_LOCK_DECISION = "SELECT pg_try_advisory_xact_lock(hashtext(%s), hashtext(%s))"
_RECHECK = f"""
SELECT o.id FROM outbox o
WHERE o.id = %(id)s AND {_ELIGIBLE}
FOR UPDATE OF o SKIP LOCKED
"""  # noqa: S608 - fixed text


class PostgresOutboxBackend(OutboxBackend):
    """Outbox storage in PostgreSQL, for several workers on one or several hosts.

    Args:
        url: the database URL.
        pool_size: most connections this backend opens at once.
        database: an open pool to use instead (not closed by :meth:`close`).

    Raises:
        ConfigError: the schema is not the one this vtdui needs (run ``vtdui db migrate``).
        DatabaseUnavailableError: the server cannot be reached.
    """

    def __init__(self, url: str, *, pool_size: int = 5, database: Database | None = None) -> None:
        self.db, self._own, _ = open_current(url, pool_size, database)

    def __repr__(self) -> str:
        return f"PostgresOutboxBackend({redact_url(self.db.url)!r})"

    def insert(self, item: NewItem, *, state: ItemState, now: datetime, error: str | None = None,
               outcome: dict[str, Any] | None = None) -> tuple[OutboxItem, bool]:
        """See :meth:`OutboxBackend.insert`."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO outbox (kind, idempotency_key, id_nat_decision, finess_eg, sequence, source_ref, "  # noqa: S608
                "payload, origin, state, next_attempt_at, first_enqueued_at, window_started_at, updated_at, "
                "last_error, outcome) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                (item.kind, item.idempotency_key, item.id_nat_decision, item.finess_eg, item.sequence,
                 item.source_ref, _json(item.payload), _json(item.origin), state.value, now, now, now, now, error,
                 _json(outcome))).fetchone()
            created = row is not None
            if row is None:
                row = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE idempotency_key = %s",  # noqa: S608
                                   (item.idempotency_key,)).fetchone()
        assert row is not None
        return _item(row), created

    def claim(self, worker: str, limit: int, lease: timedelta, now: datetime) -> list[OutboxItem]:
        """See :meth:`OutboxBackend.claim` and the module documentation for the concurrency rules."""
        if limit <= 0:
            return []
        claimed: list[OutboxItem] = []
        with self.db.transaction() as conn:
            candidates = conn.execute(_CANDIDATES, {"now": now, "scan": limit * 4}).fetchall()
            decisions: set[tuple[str, str]] = set()
            for item_id, id_nat_decision, finess_eg in candidates:
                if len(claimed) >= limit:
                    break
                if (id_nat_decision, finess_eg) in decisions:
                    continue
                decisions.add((id_nat_decision, finess_eg))
                locked = conn.execute(_LOCK_DECISION, (id_nat_decision, finess_eg)).fetchone()
                if not locked or not locked[0]:
                    continue  # another worker is claiming this decision right now
                # fresh snapshot (READ COMMITTED): sees every claim of this decision committed before the lock
                if conn.execute(_RECHECK, {"id": item_id, "now": now}).fetchone() is None:
                    continue
                row = conn.execute(
                    "UPDATE outbox SET state = 'sending', locked_by = %s, locked_until = %s, "  # noqa: S608
                    f"attempts = attempts + 1, updated_at = %s WHERE id = %s RETURNING {_COLUMNS}",
                    (worker, now + lease, now, item_id)).fetchone()
                assert row is not None
                claimed.append(_item(row))
        claimed.sort(key=lambda i: (i.next_attempt_at, i.id))
        return claimed

    def renew(self, worker: str, until: datetime, now: datetime, item_id: int | None = None) -> int:
        """See :meth:`OutboxBackend.renew` (a claim racing with it waits for the row, then re-checks it)."""
        query = "UPDATE outbox SET locked_until = %s, updated_at = %s WHERE state = 'sending' AND locked_by = %s"
        args: list[Any] = [until, now, worker]
        if item_id is not None:
            query += " AND id = %s"
            args.append(item_id)
        with self.db.transaction() as conn:
            return conn.execute(query, args).rowcount

    def update(self, item_id: int, *, now: datetime, **values: Any) -> OutboxItem:
        """See :meth:`OutboxBackend.update`."""
        check_updatable(values)
        encoded: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, ItemState):
                value = value.value
            elif name in JSON_COLUMNS:
                value = _json(value)
            encoded[name] = value
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in encoded)
        query = sql.SQL("UPDATE outbox SET {}, updated_at = {} WHERE id = {} RETURNING {}").format(
            assignments, sql.Placeholder("__now"), sql.Placeholder("__id"), sql.SQL(_COLUMNS))
        with self.db.transaction() as conn:
            row = conn.execute(query, {**encoded, "__now": now, "__id": item_id}).fetchone()
        if row is None:
            raise OutboxError(f"outbox item {item_id} does not exist")
        return _item(row)

    def get(self, item_id: int) -> OutboxItem | None:
        """See :meth:`OutboxBackend.get`."""
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = %s", (item_id,)).fetchone()  # noqa: S608
        return _item(row) if row is not None else None

    def get_by_key(self, idempotency_key: str) -> OutboxItem | None:
        """See :meth:`OutboxBackend.get_by_key`."""
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE idempotency_key = %s",  # noqa: S608
                               (idempotency_key,)).fetchone()
        return _item(row) if row is not None else None

    def list(self, *, states: Iterable[ItemState] | None = None, id_nat_decision: str | None = None,
             finess_eg: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """See :meth:`OutboxBackend.list`."""
        where: list[str] = []
        args: list[Any] = []
        if states is not None:
            where.append("state = ANY(%s)")
            args.append([ItemState(s).value for s in states])
        if id_nat_decision is not None:
            where.append("id_nat_decision = %s")
            args.append(id_nat_decision)
        if finess_eg is not None:
            where.append("finess_eg = %s")
            args.append(finess_eg)
        # Only fixed text is joined in; every value is a bound parameter.
        query = f"SELECT {_COLUMNS} FROM outbox"  # noqa: S608
        query += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if limit is not None:
            query += " LIMIT %s"
            args.append(limit)
        with self.db.transaction() as conn:
            rows = conn.execute(query.encode(), args).fetchall()
        return [_item(r) for r in rows]

    def later_sent_exists(self, id_nat_decision: str, finess_eg: str, sequence: str) -> bool:
        """See :meth:`OutboxBackend.later_sent_exists`."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT 1 FROM outbox WHERE id_nat_decision = %s AND finess_eg = %s "
                               "AND state = 'sent' AND sequence > %s LIMIT 1",
                               (id_nat_decision, finess_eg, sequence)).fetchone()
        return row is not None

    def counts(self) -> dict[str, int]:
        """See :meth:`OutboxBackend.counts`."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        found = {state.value: 0 for state in ItemState}
        found.update({r[0]: int(r[1]) for r in rows})
        return found

    def oldest_unsent(self) -> datetime | None:
        """See :meth:`OutboxBackend.oldest_unsent`."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT min(first_enqueued_at) FROM outbox "
                               "WHERE state IN ('pending', 'sending')").fetchone()
        return row[0] if row and row[0] is not None else None

    def close(self) -> None:
        """See :meth:`OutboxBackend.close`."""
        if self._own:
            self.db.close()


def _json(value: Any) -> Json | None:
    # json (not jsonb) columns keep this exact text, as SQLite does
    return None if value is None else Json(value, dumps=json.dumps)


def _item(row: tuple[Any, ...]) -> OutboxItem:
    return OutboxItem(
        id=int(row[0]), kind=row[1], idempotency_key=row[2], id_nat_decision=row[3], finess_eg=row[4],
        sequence=row[5], source_ref=row[6], payload=row[7], origin=row[8] or {}, state=ItemState(row[9]),
        attempts=int(row[10]), next_attempt_at=row[11], first_enqueued_at=row[12], window_started_at=row[13],
        updated_at=row[14], sent_at=row[15], last_error=row[16], outcome=row[17], response=row[18],
        locked_by=row[19], locked_until=row[20])
