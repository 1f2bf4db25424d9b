"""The poll schedule of the inbound sync: N establishments spread over the day, polled with bounded concurrency.

Each configured establishment (FINESS EG) has one row in a *poll schedule* store: when it is due next, which
worker is polling it and until when (a lease), and how its last polls went. Two stores share one small
interface (:class:`PollSchedule`):

* :class:`SQLitePollSchedule`: ``poll_schedule.sqlite3`` in ``state_dir`` (one ``vtdui run`` process);
* :class:`PostgresPollSchedule`: the ``poll_schedule`` table (migration ``0002_poll_schedule.sql``, applied
  by ``vtdui db migrate``) of a PostgreSQL database shared by several ``vtdui run`` workers. A claim locks
  the candidate rows ``FOR UPDATE SKIP LOCKED`` and serialises the per-legal-entity count with a
  transaction-level advisory lock: one establishment is polled by one worker at a time, and a legal entity
  never has more than ``sync.max_concurrent_per_entity`` establishments polled at once, whatever the number
  of workers. A dead worker's establishments are claimable again once its lease (``sync.lease_seconds``)
  expires; live workers renew their leases at half the lease while a long back-fill runs.

Timing rules (computed by the pure helpers below, identical for both stores):

* each establishment has a stable *phase* in the interval (a hash of its FINESS EG): its slots are
  ``epoch + phase + k·interval``. A new establishment is first due at its next slot, so 500 establishments
  configured at once do not fire at once; ``stagger=False`` (``vtdui run --poll-now``) makes them all due
  now, and the service makes an establishment never synced yet (no cursor) due at once, so that its J-30
  back-fill does not wait up to a day;
* a successful poll moves ``next_due_at`` to the previous due time plus the interval, skipping the slots
  missed while no worker ran (never "now + interval", which would drift by the poll's duration every
  cycle); an establishment that was due off its grid (first poll, ``--poll-now``, a retry) goes back to
  its next slot, so polls stay at most one interval apart (the IG asks for at least daily polling);
* a failed poll (an exception, or an :class:`~vtdui.sync.EstablishmentReport` with errors) is tried again
  after ``sync.failure_backoff_seconds``, doubling each time, capped at the interval; the reason is kept
  (short, no health data);
* a claim takes the due establishments oldest-due first across every legal entity; a legal entity at its
  limit is skipped, it does not block the others.

:class:`PollScheduler` runs the loop of ``vtdui run``: claim what is due, poll each establishment in a pool
of ``sync.max_concurrent`` threads (:meth:`vtdui.sync.SyncEngine.sync_establishment`), record the outcome,
sleep until the next due time or until a poll ends. One failing establishment never stops the others.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vtdui.sqlite import connect, transaction
from vtdui.sync import EstablishmentReport, SyncReport

if TYPE_CHECKING:
    from vtdui.config import Config, Establishment, LegalEntity
    from vtdui.postgres import Database

__all__ = [
    "PollRow",
    "PollSchedule",
    "PollScheduler",
    "PostgresPollSchedule",
    "SQLitePollSchedule",
    "backoff_delay",
    "default_worker",
    "first_due",
    "next_due_after_success",
    "phase_fraction",
]

log = logging.getLogger(__name__)

#: Longest ``last_error`` kept (a technical reason, never a document).
MAX_ERROR = 200
#: An establishment due for longer than this and not being polled counts as overdue in the metrics.
OVERDUE_SECONDS = 300.0
#: The scheduler looks at the store at least this often (establishments freed by another worker).
MAX_IDLE_SECONDS = 60.0
#: Advisory-lock key serialising the claims of every worker on one PostgreSQL database ("vtdui poll").
_PG_CLAIM_LOCK = 0x76746475_706F6C6C & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True)
class PollRow:
    """One establishment of the poll schedule.

    Attributes:
        finess_eg: the establishment (key).
        finess_ej: its legal entity (the per-entity limit counts on it).
        next_due_at: when it is due next.
        locked_by: the worker polling it (``host:pid``), if any.
        locked_until: when that worker's lease ends.
        last_started_at / last_finished_at / last_success_at: when its last poll started, ended, succeeded.
        consecutive_failures: failed polls since the last success.
        last_error: short reason of the last failure (no health data).
    """

    finess_eg: str
    finess_ej: str
    next_due_at: datetime
    locked_by: str | None = None
    locked_until: datetime | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None

    def leased(self, now: datetime) -> bool:
        """Whether a worker holds a lease on it at ``now``."""
        return self.locked_until is not None and self.locked_until > now


class PollSchedule(Protocol):
    """What :class:`PollScheduler` needs from a poll schedule store (SQLite or PostgreSQL)."""

    def ensure(self, establishments: Iterable[tuple[str, str]], now: datetime, interval: float, *,
               stagger: bool = True, due_now: Collection[str] = ()) -> None:
        """Add new ``(finess_eg, finess_ej)`` pairs, drop the removed ones; ``stagger=False``: all due now.

        New establishments get their grid slot (spread over the interval), except those of ``due_now``
        (never polled: their back-fill should not wait).
        """
        ...

    def claim(self, worker: str, now: datetime, lease: float, limit: int, per_entity_limit: int, *,
              due_by: datetime | None = None, started_before: datetime | None = None) -> list[PollRow]:
        """Lease up to ``limit`` due establishments, oldest due first, at most ``per_entity_limit`` per EJ."""
        ...

    def renew(self, finess_egs: Sequence[str], worker: str, now: datetime, lease: float) -> int:
        """Extend this worker's leases on ``finess_egs``; return how many it still held."""
        ...

    def finish(self, finess_eg: str, worker: str, now: datetime, *, ok: bool, error: str | None,
               interval: float, backoff: float) -> bool:
        """Record the end of a poll and schedule the next one; False when the lease was no longer ours."""
        ...

    def release(self, worker: str, finess_egs: Sequence[str] | None = None) -> int:
        """Drop this worker's leases (all, or those of ``finess_egs``) without recording a poll."""
        ...

    def next_wakeup(self, now: datetime) -> datetime | None:
        """Earliest moment something may become claimable (a due time or a lease end)."""
        ...

    def snapshot(self) -> list[PollRow]:
        """Every row, by FINESS EG."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


# -- pure timing rules ----------------------------------------------------------------------------------------


def phase_fraction(finess_eg: str) -> float:
    """A stable number in [0, 1) derived from a FINESS EG (SHA-256), the establishment's place in the interval."""
    digest = hashlib.sha256(f"vtdui-poll:{finess_eg}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _grid_slot_after(finess_eg: str, now: datetime, interval: float) -> datetime:
    """The first slot strictly after ``now`` of the establishment's grid (epoch + phase + k·interval)."""
    offset = phase_fraction(finess_eg) * interval
    elapsed = now.timestamp() - offset
    k = math.floor(elapsed / interval) + 1
    return datetime.fromtimestamp(offset + k * interval, UTC)


def first_due(finess_eg: str, now: datetime, interval: float, *, stagger: bool = True) -> datetime:
    """When a new establishment is first due: its next grid slot (within one interval of ``now``), or now."""
    if not stagger or interval <= 0:
        return now
    return _grid_slot_after(finess_eg, now, interval)


def next_due_after_success(row: PollRow, now: datetime, interval: float) -> datetime:
    """Previous due time plus the interval, skipping the missed slots; off its grid, the next grid slot.

    An establishment due on its grid (``epoch + phase + k·interval``) goes to ``next_due_at + k·interval``,
    the first such slot after ``now``: never ``now + interval``, which would shift it later by the poll's
    duration every cycle. One due off its grid (first poll, ``--poll-now``, a retry after a failure, a
    changed interval) goes back to its grid: the next slot after ``now``, so polls stay at most one interval
    apart and the establishments stay spread.
    """
    step = timedelta(seconds=interval)
    offset = phase_fraction(row.finess_eg) * interval
    position = (row.next_due_at.timestamp() - offset) % interval
    if min(position, interval - position) > 0.001:
        return _grid_slot_after(row.finess_eg, now, interval)
    missed = max(math.floor((now - row.next_due_at).total_seconds() / interval), 0)
    due = row.next_due_at + step * (missed + 1)
    while due <= now:  # rounding
        due += step
    return due


def backoff_delay(failures: int, backoff: float, interval: float) -> float:
    """Seconds before trying a failing establishment again: ``backoff·2^(failures-1)``, capped at the interval."""
    exponent = min(max(failures - 1, 0), 30)
    return float(min(backoff * 2.0**exponent, interval))


def short_error(error: str | None) -> str | None:
    """One line, at most :data:`MAX_ERROR` characters."""
    if error is None:
        return None
    line = " ".join(error.split())
    return line if len(line) <= MAX_ERROR else line[: MAX_ERROR - 1] + "…"


def default_worker() -> str:
    """This process's worker name, ``host:pid`` (as the outbox leases)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pick(rows: Iterable[PollRow], leased_per_entity: dict[str, int], limit: int,
          per_entity_limit: int) -> list[PollRow]:
    """Oldest due first; an entity at its limit is skipped (it does not block the others)."""
    counts = dict(leased_per_entity)
    picked: list[PollRow] = []
    for row in rows:
        if len(picked) >= limit:
            break
        if counts.get(row.finess_ej, 0) >= per_entity_limit:
            continue
        counts[row.finess_ej] = counts.get(row.finess_ej, 0) + 1
        picked.append(row)
    return picked


# -- SQLite -----------------------------------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS poll_schedule (
    finess_eg TEXT PRIMARY KEY,
    finess_ej TEXT NOT NULL,
    next_due_at TEXT NOT NULL,
    locked_by TEXT,
    locked_until TEXT,
    last_started_at TEXT,
    last_finished_at TEXT,
    last_success_at TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS poll_schedule_due ON poll_schedule (next_due_at);
"""

_COLUMNS = ("finess_eg, finess_ej, next_due_at, locked_by, locked_until, last_started_at, last_finished_at, "
            "last_success_at, consecutive_failures, last_error")
_SELECT = f"SELECT {_COLUMNS} FROM poll_schedule"  # noqa: S608 - fixed names


def _ts(value: datetime | None) -> str | None:
    """Fixed-width UTC text: compares in time order."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _row(values: Sequence[Any]) -> PollRow:
    due = _dt(values[2])
    assert due is not None  # NOT NULL column
    return PollRow(finess_eg=str(values[0]), finess_ej=str(values[1]), next_due_at=due,
                   locked_by=values[3], locked_until=_dt(values[4]), last_started_at=_dt(values[5]),
                   last_finished_at=_dt(values[6]), last_success_at=_dt(values[7]),
                   consecutive_failures=int(values[8] or 0), last_error=values[9])


def _finish_values(row: PollRow, now: datetime, ok: bool, error: str | None, interval: float,
                   backoff: float) -> tuple[datetime, int, str | None]:
    """New ``next_due_at``, ``consecutive_failures`` and ``last_error`` after a poll."""
    if ok:
        return next_due_after_success(row, now, interval), 0, None
    failures = row.consecutive_failures + 1
    return (now + timedelta(seconds=backoff_delay(failures, backoff, interval)), failures,
            short_error(error) or "failed")


class SQLitePollSchedule:
    """The poll schedule in ``poll_schedule.sqlite3`` (one process; thread-safe).

    Args:
        path: the database file (created with its table when missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = connect(self.path)
        with self._tx() as db:
            for statement in filter(str.strip, _SQLITE_SCHEMA.split(";")):
                db.execute(statement)

    @classmethod
    def open(cls, state_dir: Path) -> SQLitePollSchedule:
        """Open ``state_dir/poll_schedule.sqlite3``."""
        return cls(Path(state_dir) / "poll_schedule.sqlite3")

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    def ensure(self, establishments: Iterable[tuple[str, str]], now: datetime, interval: float, *,
               stagger: bool = True, due_now: Collection[str] = ()) -> None:
        """Add new ``(finess_eg, finess_ej)`` pairs, drop the removed ones; ``stagger=False``: all due now.

        See :meth:`PollSchedule.ensure`.
        """
        wanted = dict(establishments)
        with self._tx() as db:
            present = {r[0]: r[1] for r in db.execute("SELECT finess_eg, finess_ej FROM poll_schedule")}
            for eg in present.keys() - wanted.keys():
                db.execute("DELETE FROM poll_schedule WHERE finess_eg = ?", (eg,))
            for eg, ej in wanted.items():
                if eg not in present:
                    db.execute("INSERT INTO poll_schedule (finess_eg, finess_ej, next_due_at) VALUES (?, ?, ?)",
                               (eg, ej, _ts(first_due(eg, now, interval, stagger=stagger and eg not in due_now))))
                elif present[eg] != ej:
                    db.execute("UPDATE poll_schedule SET finess_ej = ? WHERE finess_eg = ?", (ej, eg))
            if not stagger:
                db.execute("UPDATE poll_schedule SET next_due_at = ? WHERE next_due_at > ?", (_ts(now), _ts(now)))

    def claim(self, worker: str, now: datetime, lease: float, limit: int, per_entity_limit: int, *,
              due_by: datetime | None = None, started_before: datetime | None = None) -> list[PollRow]:
        """Lease up to ``limit`` due establishments, oldest due first, at most ``per_entity_limit`` per EJ.

        Args:
            worker: this worker's name.
            now: current time.
            lease: seconds the lease lasts.
            limit: most establishments taken.
            per_entity_limit: most establishments of one legal entity leased at once (counting other workers').
            due_by: take those due by then (default ``now``).
            started_before: only those whose last poll started before then (one round over everything).
        """
        if limit <= 0:
            return []
        due = _ts(due_by or now)
        sql = (f"SELECT {_COLUMNS} FROM poll_schedule WHERE next_due_at <= ? "  # noqa: S608 - fixed names
               "AND (locked_until IS NULL OR locked_until <= ?)")
        args: list[Any] = [due, _ts(now)]
        if started_before is not None:
            sql += " AND (last_started_at IS NULL OR last_started_at < ?)"
            args.append(_ts(started_before))
        sql += " ORDER BY next_due_at, finess_eg"
        with self._tx() as db:
            leased = {r[0]: int(r[1]) for r in db.execute(
                "SELECT finess_ej, count(*) FROM poll_schedule WHERE locked_until > ? GROUP BY finess_ej",
                (_ts(now),))}
            picked = _pick((_row(r) for r in db.execute(sql, args).fetchall()), leased, limit, per_entity_limit)
            until = now + timedelta(seconds=lease)
            for row in picked:
                db.execute("UPDATE poll_schedule SET locked_by = ?, locked_until = ?, last_started_at = ? "
                           "WHERE finess_eg = ?", (worker, _ts(until), _ts(now), row.finess_eg))
        return [PollRow(**{**vars(r), "locked_by": worker, "locked_until": until, "last_started_at": now})
                for r in picked]

    def renew(self, finess_egs: Sequence[str], worker: str, now: datetime, lease: float) -> int:
        """Extend this worker's leases on ``finess_egs``; return how many it still held."""
        until = _ts(now + timedelta(seconds=lease))
        count = 0
        with self._tx() as db:
            for eg in finess_egs:
                count += db.execute("UPDATE poll_schedule SET locked_until = ? WHERE finess_eg = ? AND locked_by = ?",
                                    (until, eg, worker)).rowcount
        return count

    def finish(self, finess_eg: str, worker: str, now: datetime, *, ok: bool, error: str | None,
               interval: float, backoff: float) -> bool:
        """Record the end of a poll and schedule the next one; False when the lease was no longer ours."""
        with self._tx() as db:
            found = db.execute(_SELECT + " WHERE finess_eg = ?", (finess_eg,)).fetchone()
            if found is None or found["locked_by"] != worker:
                return False
            row = _row(found)
            due, failures, last_error = _finish_values(row, now, ok, error, interval, backoff)
            db.execute("UPDATE poll_schedule SET next_due_at = ?, locked_by = NULL, locked_until = NULL, "
                       "last_finished_at = ?, last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END, "
                       "consecutive_failures = ?, last_error = ? WHERE finess_eg = ?",
                       (_ts(due), _ts(now), ok, _ts(now), failures, last_error, finess_eg))
        return True

    def release(self, worker: str, finess_egs: Sequence[str] | None = None) -> int:
        """Drop this worker's leases (all, or those of ``finess_egs``) without recording a poll."""
        with self._tx() as db:
            if finess_egs is None:
                return db.execute("UPDATE poll_schedule SET locked_by = NULL, locked_until = NULL "
                                  "WHERE locked_by = ?", (worker,)).rowcount
            return sum(db.execute("UPDATE poll_schedule SET locked_by = NULL, locked_until = NULL "
                                  "WHERE locked_by = ? AND finess_eg = ?", (worker, eg)).rowcount
                       for eg in finess_egs)

    def next_wakeup(self, now: datetime) -> datetime | None:
        """Earliest moment something may become claimable (a due time or a lease end)."""
        with self._lock:
            found = self._db.execute(
                "SELECT min(CASE WHEN locked_until > ? AND locked_until > next_due_at THEN locked_until "
                "ELSE next_due_at END) FROM poll_schedule", (_ts(now),)).fetchone()
        return _dt(found[0])

    def snapshot(self) -> list[PollRow]:
        """Every row, by FINESS EG."""
        with self._lock:
            return [_row(r) for r in self._db.execute(_SELECT + " ORDER BY finess_eg")]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


# -- PostgreSQL -------------------------------------------------------------------------------------------------


class PostgresPollSchedule:
    """The poll schedule in the ``poll_schedule`` table of a shared PostgreSQL database.

    The table comes from migration ``0002_poll_schedule.sql`` (``vtdui db migrate``); opening the store
    never changes the schema and refuses a database whose schema is not the one of this vtdui.

    Args:
        url: ``postgresql://`` URL (ignored when ``database`` is given).
        pool_size: connections of this store's pool.
        database: a :class:`vtdui.postgres.Database` to share (not closed by :meth:`close`).

    Raises:
        ConfigError: the schema is behind (run ``vtdui db migrate``) or ahead of this vtdui.
        DatabaseUnavailableError: the server cannot be reached.
    """

    def __init__(self, url: str, *, pool_size: int = 2, database: Database | None = None) -> None:
        from vtdui.migrations import open_current

        self._db, self._owned, _ = open_current(url, pool_size, database)

    def ensure(self, establishments: Iterable[tuple[str, str]], now: datetime, interval: float, *,
               stagger: bool = True, due_now: Collection[str] = ()) -> None:
        """Add new ``(finess_eg, finess_ej)`` pairs, drop the removed ones; ``stagger=False``: all due now.

        See :meth:`PollSchedule.ensure`.
        """
        wanted = dict(establishments)
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_CLAIM_LOCK,))
            conn.execute("DELETE FROM poll_schedule WHERE NOT (finess_eg = ANY(%s))", (list(wanted),))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO poll_schedule (finess_eg, finess_ej, next_due_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (finess_eg) DO UPDATE SET finess_ej = EXCLUDED.finess_ej "
                    "WHERE poll_schedule.finess_ej <> EXCLUDED.finess_ej",
                    [(eg, ej, first_due(eg, now, interval, stagger=stagger and eg not in due_now))
                     for eg, ej in wanted.items()])
            if not stagger:
                conn.execute("UPDATE poll_schedule SET next_due_at = %s WHERE next_due_at > %s", (now, now))

    def claim(self, worker: str, now: datetime, lease: float, limit: int, per_entity_limit: int, *,
              due_by: datetime | None = None, started_before: datetime | None = None) -> list[PollRow]:
        """Lease up to ``limit`` due establishments, oldest due first, at most ``per_entity_limit`` per EJ.

        The claims of every worker are serialised by an advisory lock held for this short transaction, so
        the per-entity count is exact across workers; the candidate rows are locked ``FOR UPDATE SKIP
        LOCKED`` (a row another transaction is finishing is not waited for). Arguments as
        :meth:`SQLitePollSchedule.claim`.
        """
        if limit <= 0:
            return []
        sql = (f"SELECT {_COLUMNS} FROM poll_schedule WHERE next_due_at <= %s "  # noqa: S608 - fixed names
               "AND (locked_until IS NULL OR locked_until <= %s)")
        args: list[Any] = [due_by or now, now]
        if started_before is not None:
            sql += " AND (last_started_at IS NULL OR last_started_at < %s)"
            args.append(started_before)
        sql += " ORDER BY next_due_at, finess_eg FOR UPDATE SKIP LOCKED"
        until = now + timedelta(seconds=lease)
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_CLAIM_LOCK,))
            leased = {r[0]: int(r[1]) for r in conn.execute(
                "SELECT finess_ej, count(*) FROM poll_schedule WHERE locked_until > %s GROUP BY finess_ej",
                (now,)).fetchall()}
            picked = _pick((_row(r) for r in conn.execute(sql, args).fetchall()), leased, limit, per_entity_limit)
            if picked:
                conn.execute("UPDATE poll_schedule SET locked_by = %s, locked_until = %s, last_started_at = %s "
                             "WHERE finess_eg = ANY(%s)", (worker, until, now, [r.finess_eg for r in picked]))
        return [PollRow(**{**vars(r), "locked_by": worker, "locked_until": until, "last_started_at": now})
                for r in picked]

    def renew(self, finess_egs: Sequence[str], worker: str, now: datetime, lease: float) -> int:
        """Extend this worker's leases on ``finess_egs``; return how many it still held."""
        if not finess_egs:
            return 0
        with self._db.transaction() as conn:
            cur = conn.execute("UPDATE poll_schedule SET locked_until = %s WHERE finess_eg = ANY(%s) "
                               "AND locked_by = %s", (now + timedelta(seconds=lease), list(finess_egs), worker))
            return int(cur.rowcount)

    def finish(self, finess_eg: str, worker: str, now: datetime, *, ok: bool, error: str | None,
               interval: float, backoff: float) -> bool:
        """Record the end of a poll and schedule the next one; False when the lease was no longer ours."""
        with self._db.transaction() as conn:
            found = conn.execute(_SELECT + " WHERE finess_eg = %s FOR UPDATE",
                                 (finess_eg,)).fetchone()
            if found is None or found[3] != worker:
                return False
            row = _row(found)
            due, failures, last_error = _finish_values(row, now, ok, error, interval, backoff)
            conn.execute("UPDATE poll_schedule SET next_due_at = %s, locked_by = NULL, locked_until = NULL, "
                         "last_finished_at = %s, last_success_at = CASE WHEN %s THEN %s ELSE last_success_at END, "
                         "consecutive_failures = %s, last_error = %s WHERE finess_eg = %s",
                         (due, now, ok, now, failures, last_error, finess_eg))
        return True

    def release(self, worker: str, finess_egs: Sequence[str] | None = None) -> int:
        """Drop this worker's leases (all, or those of ``finess_egs``) without recording a poll."""
        with self._db.transaction() as conn:
            if finess_egs is None:
                cur = conn.execute("UPDATE poll_schedule SET locked_by = NULL, locked_until = NULL "
                                   "WHERE locked_by = %s", (worker,))
            else:
                cur = conn.execute("UPDATE poll_schedule SET locked_by = NULL, locked_until = NULL "
                                   "WHERE locked_by = %s AND finess_eg = ANY(%s)", (worker, list(finess_egs)))
            return int(cur.rowcount)

    def next_wakeup(self, now: datetime) -> datetime | None:
        """Earliest moment something may become claimable (a due time or a lease end)."""
        with self._db.transaction() as conn:
            found = conn.execute(
                "SELECT min(CASE WHEN locked_until > %s AND locked_until > next_due_at THEN locked_until "
                "ELSE next_due_at END) FROM poll_schedule", (now,)).fetchone()
        return _dt(found[0]) if found else None

    def snapshot(self) -> list[PollRow]:
        """Every row, by FINESS EG."""
        with self._db.transaction() as conn:
            return [_row(r) for r in conn.execute(_SELECT + " ORDER BY finess_eg")]

    def close(self) -> None:
        """Close this store's own connection (a shared :class:`vtdui.postgres.Database` stays open)."""
        if self._owned:
            self._db.close()


# -- the scheduler --------------------------------------------------------------------------------------------


@dataclass
class _InFlight:
    row: PollRow
    future: Future[EstablishmentReport]


class PollScheduler:
    """Polls the due establishments of a :class:`PollSchedule` with bounded concurrency.

    Args:
        config: the configuration (establishments and ``[sync]`` settings).
        schedule: the poll schedule store (not closed here).
        sync_one: polls one establishment (:meth:`vtdui.sync.SyncEngine.sync_establishment`).
        worker: this worker's name in the leases (default ``host:pid``).
        clock: current time (aware); injectable for tests.
        on_report: called with each establishment's report once its poll is recorded (metrics).
        never_polled: tells whether an establishment was never synced (no cursor): a new one of those is due
            at once rather than at its place in the interval (its back-fill should not wait a day).
        is_dead: tells whether a worker name is a process that no longer runs (e.g.
            :func:`vtdui.service.worker_is_dead`, this host only): its leases are released at start instead
            of waiting for them to expire.
        max_concurrent / max_concurrent_per_entity / interval / backoff / lease: override the ``[sync]``
            settings of the same meaning (``interval`` is ``sync.interval_seconds``, ``backoff``
            ``sync.failure_backoff_seconds``, ``lease`` ``sync.lease_seconds``).
    """

    def __init__(self, config: Config, schedule: PollSchedule,
                 sync_one: Callable[[LegalEntity, Establishment], EstablishmentReport], *,
                 worker: str | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_report: Callable[[EstablishmentReport], None] | None = None,
                 never_polled: Callable[[str], bool] | None = None,
                 is_dead: Callable[[str], bool] | None = None,
                 max_concurrent: int | None = None, max_concurrent_per_entity: int | None = None,
                 interval: float | None = None, backoff: float | None = None, lease: float | None = None) -> None:
        settings = config.sync
        self.config = config
        self.schedule = schedule
        self.sync_one = sync_one
        self.worker = worker or default_worker()
        self.clock = clock
        self.on_report = on_report
        self.never_polled = never_polled
        self.is_dead = is_dead
        self.max_concurrent = max(max_concurrent or settings.max_concurrent, 1)
        self.per_entity = max(max_concurrent_per_entity or settings.max_concurrent_per_entity, 1)
        self.interval = interval if interval is not None else settings.interval_seconds
        self.backoff = backoff if backoff is not None else settings.failure_backoff_seconds
        self.lease = lease if lease is not None else settings.lease_seconds
        self._targets = {eg.finess_eg: (ej, eg) for ej, eg in config.establishments()}
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, _InFlight] = {}
        #: polls recorded by this process, by outcome
        self.outcomes: dict[str, int] = {"ok": 0, "error": 0}

    # -- schedule --------------------------------------------------------------------------------------------

    def ensure(self, *, stagger: bool = True) -> None:
        """Bring the schedule in line with the configured establishments (``stagger=False``: all due now)."""
        pairs = [(eg.finess_eg, ej.finess_ej) for ej, eg in self.config.establishments()]
        due_now = {eg for eg, _ in pairs if self.never_polled(eg)} if self.never_polled is not None else set()
        now = self.clock()
        self.schedule.ensure(pairs, now, self.interval, stagger=stagger, due_now=due_now)
        if self.is_dead is not None:
            for row in self.schedule.snapshot():
                if row.locked_by and row.locked_by != self.worker and row.leased(now) and self.is_dead(row.locked_by):
                    log.warning("establishment %s was being polled by a worker that stopped; it is free again",
                                row.finess_eg)
                    self.schedule.release(row.locked_by, [row.finess_eg])

    def in_flight(self) -> list[str]:
        """FINESS EG of the establishments this process is polling now."""
        with self._lock:
            return sorted(self._in_flight)

    # -- one poll --------------------------------------------------------------------------------------------

    def _poll(self, row: PollRow) -> EstablishmentReport:
        """Poll one establishment and record the outcome; never raises."""
        report = EstablishmentReport(row.finess_eg)
        target = self._targets.get(row.finess_eg)
        try:
            if target is None:
                raise LookupError("establishment no longer configured")
            report = self.sync_one(*target)
        except Exception as exc:  # one establishment's failure never stops the others
            log.warning("poll of %s failed: %s", row.finess_eg, type(exc).__name__)
            report.errors.append(f"{type(exc).__name__}: {exc}")
        error = "; ".join(report.errors) if report.errors else None
        try:
            if not self.schedule.finish(row.finess_eg, self.worker, self.clock(), ok=report.ok, error=error,
                                        interval=self.interval, backoff=self.backoff):
                log.warning("the poll lease of %s had been taken over by another worker", row.finess_eg)
        except Exception as exc:  # the store is down: the lease expires and the poll is done again
            log.warning("cannot record the poll of %s: %s", row.finess_eg, type(exc).__name__)
        with self._lock:
            self.outcomes["ok" if report.ok else "error"] += 1
        if self.on_report is not None:
            try:
                self.on_report(report)
            except Exception:
                log.exception("a poll report observer failed")
        return report

    def _done(self, finess_eg: str) -> None:
        with self._lock:
            self._in_flight.pop(finess_eg, None)
        self._wake.set()

    def _submit(self, pool: ThreadPoolExecutor, row: PollRow) -> Future[EstablishmentReport]:
        future = pool.submit(self._poll, row)
        with self._lock:
            self._in_flight[row.finess_eg] = _InFlight(row, future)
        finess_eg = row.finess_eg

        def done(_future: Future[EstablishmentReport]) -> None:
            self._done(finess_eg)

        future.add_done_callback(done)
        return future

    # -- one round over everything (``vtdui run --once``, ``vtdui sync``) -------------------------------------

    def run_all(self, *, should_stop: Callable[[], bool] = lambda: False) -> SyncReport:
        """Poll every configured establishment once now, with the same limits, and return the reports.

        Establishments another worker is polling are skipped (its poll covers them); each poll is recorded
        in the schedule as in the service loop.
        """
        started = time.monotonic()
        round_start = self.clock()
        self.ensure()
        far = round_start + timedelta(days=3650)
        futures: list[Future[EstablishmentReport]] = []
        with ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="vtdui-poll") as pool:
            while not should_stop():
                self._wake.clear()
                free = self.max_concurrent - len(self.in_flight())
                claimed = self.schedule.claim(self.worker, self.clock(), self.lease, free, self.per_entity,
                                              due_by=far, started_before=round_start) if free > 0 else []
                futures += [self._submit(pool, row) for row in claimed]
                if not claimed and not self.in_flight():
                    break
                self._wake.wait(1.0)
        by_eg = {report.finess_eg: report for report in (f.result() for f in futures)}
        order = [eg.finess_eg for _, eg in self.config.establishments()]
        return SyncReport(establishments=[by_eg[eg] for eg in order if eg in by_eg],
                          seconds=time.monotonic() - started)

    # -- the service loop ---------------------------------------------------------------------------------

    def run_forever(self, stopping: threading.Event, *, stagger: bool = True,
                    on_error: Callable[[Exception | None], None] | None = None) -> None:
        """Claim and poll due establishments until ``stopping`` is set; then wait for the polls in flight.

        Wakes up at the next due time, when a poll ends, or when stopping; renews the leases of the polls
        in flight every half lease; releases this worker's leases at the end. A failing store (database
        down) is reported to ``on_error`` and tried again later; ``on_error(None)`` once it works again.
        """
        renew_every = max(self.lease / 2, 1.0)
        last_renew = time.monotonic()
        ensured = False
        with ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="vtdui-poll") as pool:
            try:
                while not stopping.is_set():
                    self._wake.clear()
                    claimed = 0
                    try:
                        if not ensured:
                            self.ensure(stagger=stagger)
                            ensured = True
                        free = self.max_concurrent - len(self.in_flight())
                        if free > 0:
                            for row in self.schedule.claim(self.worker, self.clock(), self.lease, free,
                                                           self.per_entity):
                                self._submit(pool, row)
                                claimed += 1
                        if time.monotonic() - last_renew >= renew_every:
                            flying = self.in_flight()
                            if flying:
                                self.schedule.renew(flying, self.worker, self.clock(), self.lease)
                            last_renew = time.monotonic()
                        timeout = self._timeout(renew_every, claimed)
                        if on_error is not None:
                            on_error(None)
                    except Exception as exc:  # the store is unreachable: polls in flight go on, retry later
                        log.warning("poll schedule unavailable: %s", type(exc).__name__)
                        if on_error is not None:
                            on_error(exc)
                        timeout = 5.0
                    self._sleep(stopping, timeout)
            finally:
                self._wake.set()
                with self._lock:
                    remaining = [f.future for f in self._in_flight.values()]
                for future in remaining:
                    future.result()
                try:
                    self.schedule.release(self.worker)
                except Exception as exc:
                    log.warning("cannot release the poll leases (they expire): %s", type(exc).__name__)

    def _timeout(self, renew_every: float, claimed: int) -> float:
        """Seconds to wait: until the next due time or lease end, at most a renewal period while polling.

        A finished poll wakes the loop at once; when something is due but nothing could be claimed (its
        legal entity is at its limit with another worker's polls), the loop looks again a second later.
        """
        timeout = MAX_IDLE_SECONDS
        flying = len(self.in_flight())
        if flying:
            timeout = min(timeout, renew_every)
        if flying >= self.max_concurrent:
            return timeout
        now = self.clock()
        nxt = self.schedule.next_wakeup(now)
        if nxt is not None:
            wait = (nxt - now).total_seconds()
            if wait <= 0:
                # due now: claimed at once, or blocked by a limit (a finished poll of ours wakes us)
                wait = 0.0 if claimed else (timeout if flying else 1.0)
            timeout = min(timeout, wait)
        return timeout

    def _sleep(self, stopping: threading.Event, timeout: float) -> None:
        """Wait ``timeout`` seconds, less when a poll ends or the service stops."""
        deadline = time.monotonic() + timeout
        while not stopping.is_set() and not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(min(left, 0.5))
