"""The durable outbox: every ESMSTask / ESMSConsent waits here until ViaTrajectoire accepted it.

An item is written *before* the change is acknowledged (the receiver answers HAPI only after the
commit), so a status change survives a crash, a restart or a ViaTrajectoire outage.

Rules the queue enforces:

* **Nothing twice for the same resource version.** Each item has an idempotency key (the local
  resource version it comes from, ``Task/12/_history/4``) with a unique constraint: the receiver and the
  reconciliation may both see a version, only one item exists.
* **Per-decision order.** Items of one (idNat_Decision, FINESS EG) are delivered one at a time in the
  order of the local changes (``sequence``: the source version's ``meta.lastUpdated``, then the item
  id). An item is eligible only when no earlier item of the same key is ``pending``, ``sending`` or
  ``failed``.
* **A failure blocks its own decision only.** A ``failed`` item (refused by ViaTrajectoire,
  non-conformant, or given up after ``retry.max_age_seconds``) holds back the later items of *its*
  decision and establishment, so ViaTrajectoire never sees statuses out of order; every other decision
  keeps flowing. :meth:`Outbox.retry` (after a fix) or :meth:`Outbox.drop` (the operator gives up on
  it) unblocks the decision.
* **Late arrivals never regress a status.** An item whose sequence is older than an item already
  ``sent`` for the same decision is stored ``dropped`` with the reason (it can still be retried); one that
  arrived while a later item was in flight is dropped when that later item is accepted.
* **Backoff.** A passing fault reschedules the item with exponential backoff and full jitter
  (``retry.base_delay * 2**(attempts-1)`` capped at ``retry.max_delay``), never sooner than the
  server's ``Retry-After``; past ``retry.max_age_seconds`` since it was (re)queued, it fails.
* **Leases.** A worker claims items (state ``sending``) for a lease, renews the leases of the items it
  holds while it works (:meth:`Outbox.renew`) and checks, just before sending an item, that it still
  holds it; an item whose worker died is claimable again when the lease expires. Delivery is therefore
  *at least once*: a worker killed after ViaTrajectoire answered but before the outcome was recorded
  sends the item again (the IG defines no idempotency key ViaTrajectoire could deduplicate on).

States::

    pending ──claim──▶ sending ──accepted──▶ sent
       ▲                  │ passing fault (backoff)
       └──────────────────┤
                          └──refused / too old──▶ failed ──retry──▶ pending
    any unsent state ──drop──▶ dropped ──retry──▶ pending

Storage: :class:`OutboxBackend` is the small interface a store implements; :class:`SQLiteOutboxBackend`
(one file in the state directory, WAL journal) is the default. The SQL is kept portable (``INSERT ...
ON CONFLICT DO NOTHING``, ``NOT EXISTS``, ISO-8601 UTC timestamps compared as text): a PostgreSQL
backend for several workers runs the same claim query with ``FOR UPDATE SKIP LOCKED`` instead of
SQLite's ``BEGIN IMMEDIATE`` (whole-database write lock) and needs no other change.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from vtdui.config import RetrySettings
from vtdui.errors import VtduiError
from vtdui.sqlite import connect, transaction

__all__ = [
    "BLOCKING_STATES",
    "JSON_COLUMNS",
    "UPDATABLE_COLUMNS",
    "ItemState",
    "NewItem",
    "Outbox",
    "OutboxBackend",
    "OutboxError",
    "OutboxItem",
    "SQLiteOutboxBackend",
    "check_updatable",
    "normalize_instant",
]


class ItemState(StrEnum):
    """Where an outbox item is in its life."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"


#: States of an earlier item that hold back the later items of the same decision and establishment.
BLOCKING_STATES = (ItemState.PENDING, ItemState.SENDING, ItemState.FAILED)


class OutboxError(VtduiError):
    """An outbox operation was refused (unknown item, wrong state)."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def normalize_instant(value: str | None, default: datetime | None = None) -> str:
    """Return a FHIR instant as a sortable UTC string (``default``, else now, when missing or bad)."""
    if value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return _iso(parsed)
        except ValueError:
            pass
    return _iso(default or datetime.now(UTC))


@dataclass(frozen=True)
class NewItem:
    """What the emitter puts in the outbox.

    Attributes:
        kind: ``task`` (flux 4) or ``consent`` (flux 2).
        idempotency_key: the local resource version it comes from (``Task/12/_history/4``).
        id_nat_decision / finess_eg: the ordering key.
        payload: the built ESMSTask / ESMSConsent.
        sequence: order among the items of the same key (normalised ``meta.lastUpdated`` of the source).
        source_ref: the local resource the item reports (``Task/12``), for the audit trail.
        origin: what the payload was built from (the change, or the local Consent), to rebuild it.
    """

    kind: str
    idempotency_key: str
    id_nat_decision: str
    finess_eg: str
    payload: dict[str, Any]
    sequence: str
    source_ref: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxItem:
    """One stored outbox item (see :class:`NewItem` for the fields it was created with)."""

    id: int
    kind: str
    idempotency_key: str
    id_nat_decision: str
    finess_eg: str
    sequence: str
    source_ref: str | None
    payload: dict[str, Any]
    origin: dict[str, Any]
    state: ItemState
    attempts: int
    next_attempt_at: datetime
    first_enqueued_at: datetime
    window_started_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    last_error: str | None
    outcome: dict[str, Any] | None
    response: dict[str, Any] | None
    locked_by: str | None
    locked_until: datetime | None

    @property
    def flux(self) -> str:
        """``"4"`` for a Task, ``"2"`` for a Consent."""
        return "2" if self.kind == "consent" else "4"


class OutboxBackend(ABC):
    """Storage of the outbox: the operations a backend (SQLite, PostgreSQL) must provide.

    Every method is atomic. Times are UTC-aware datetimes.
    """

    @abstractmethod
    def insert(self, item: NewItem, *, state: ItemState, now: datetime, error: str | None = None,
               outcome: dict[str, Any] | None = None) -> tuple[OutboxItem, bool]:
        """Insert unless the idempotency key exists; return the stored item and whether it is new."""

    @abstractmethod
    def claim(self, worker: str, limit: int, lease: timedelta, now: datetime) -> list[OutboxItem]:
        """Lease up to ``limit`` eligible items (head of their decision, due), oldest first."""

    @abstractmethod
    def renew(self, worker: str, until: datetime, now: datetime, item_id: int | None = None) -> int:
        """Extend to ``until`` the leases ``worker`` still holds (all, or only ``item_id``); return how many.

        Only items still ``sending`` under ``worker``'s name are touched: an item another worker took over
        after the lease expired is not, and ``0`` tells the caller it must not send that item.
        """

    @abstractmethod
    def update(self, item_id: int, *, now: datetime, **values: Any) -> OutboxItem:
        """Set columns of one item (``state``, ``next_attempt_at``, ``last_error``...) and return it."""

    @abstractmethod
    def get(self, item_id: int) -> OutboxItem | None:
        """Return one item."""

    @abstractmethod
    def get_by_key(self, idempotency_key: str) -> OutboxItem | None:
        """Return the item of an idempotency key."""

    @abstractmethod
    def list(self, *, states: Iterable[ItemState] | None = None, id_nat_decision: str | None = None,
             finess_eg: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """List items, oldest first."""

    @abstractmethod
    def later_sent_exists(self, id_nat_decision: str, finess_eg: str, sequence: str) -> bool:
        """Tell whether an item of the same key with a later sequence was already sent."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of items per state."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def oldest_unsent(self) -> datetime | None:
        """``first_enqueued_at`` of the oldest pending or sending item (backends may do it in one query)."""
        items = self.list(states=[ItemState.PENDING, ItemState.SENDING])
        return min((item.first_enqueued_at for item in items), default=None)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    id_nat_decision TEXT NOT NULL,
    finess_eg TEXT NOT NULL,
    sequence TEXT NOT NULL,
    source_ref TEXT,
    payload TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    first_enqueued_at TEXT NOT NULL,
    window_started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT,
    last_error TEXT,
    outcome TEXT,
    response TEXT,
    locked_by TEXT,
    locked_until TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_decision ON outbox (id_nat_decision, finess_eg, state, sequence);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at)
"""

# The head-of-decision rule of the claim query: no earlier item of the same key still blocks, and no other item
# of the decision is in flight (an earlier one that arrived late waits for the later one's outcome).
_ELIGIBLE = """
SELECT o.id FROM outbox o
WHERE ((o.state = 'pending' AND o.next_attempt_at <= ?)
       OR (o.state = 'sending' AND o.locked_until < ?))
  AND NOT EXISTS (
      SELECT 1 FROM outbox p
      WHERE p.id_nat_decision = o.id_nat_decision AND p.finess_eg = o.finess_eg
        AND p.state IN ('pending', 'sending', 'failed')
        AND (p.sequence < o.sequence OR (p.sequence = o.sequence AND p.id < o.id)))
  AND NOT EXISTS (
      SELECT 1 FROM outbox s
      WHERE s.id_nat_decision = o.id_nat_decision AND s.finess_eg = o.finess_eg AND s.id <> o.id
        AND s.state = 'sending' AND s.locked_until >= ?)
ORDER BY o.next_attempt_at, o.id
LIMIT ?
"""

#: Columns :meth:`OutboxBackend.update` may change (every backend), and those holding JSON.
UPDATABLE_COLUMNS = frozenset({"state", "attempts", "next_attempt_at", "window_started_at", "sent_at", "last_error",
                               "outcome", "response", "locked_by", "locked_until", "payload", "origin"})
JSON_COLUMNS = frozenset({"payload", "origin", "outcome", "response"})


def check_updatable(values: Iterable[str]) -> None:
    """Raise ValueError naming the columns of ``values`` that :meth:`OutboxBackend.update` may not change."""
    unknown = set(values) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not an outbox column: {', '.join(sorted(unknown))}")


class SQLiteOutboxBackend(OutboxBackend):
    """The outbox in a SQLite file (WAL), safe to share between threads and processes of one host."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # FULL: an item acknowledged to HAPI must survive a power cut, not only a process crash.
        self._db = connect(self.path, synchronous="FULL")
        with self._tx() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    def insert(self, item: NewItem, *, state: ItemState, now: datetime, error: str | None = None,
               outcome: dict[str, Any] | None = None) -> tuple[OutboxItem, bool]:
        """See :meth:`OutboxBackend.insert`."""
        stamp = _iso(now)
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO outbox (kind, idempotency_key, id_nat_decision, finess_eg, sequence, source_ref, "
                "payload, origin, state, next_attempt_at, first_enqueued_at, window_started_at, updated_at, "
                "last_error, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (item.kind, item.idempotency_key, item.id_nat_decision, item.finess_eg, item.sequence,
                 item.source_ref, json.dumps(item.payload), json.dumps(item.origin), state.value, stamp, stamp,
                 stamp, stamp, error, json.dumps(outcome) if outcome is not None else None))
            created = cursor.rowcount == 1
            row = db.execute("SELECT * FROM outbox WHERE idempotency_key = ?", (item.idempotency_key,)).fetchone()
        return _item(row), created

    def claim(self, worker: str, limit: int, lease: timedelta, now: datetime) -> list[OutboxItem]:
        """See :meth:`OutboxBackend.claim` (BEGIN IMMEDIATE stands for FOR UPDATE SKIP LOCKED)."""
        stamp = _iso(now)
        with self._tx() as db:
            ids = [r[0] for r in db.execute(_ELIGIBLE, (stamp, stamp, stamp, limit)).fetchall()]
            for item_id in ids:
                db.execute("UPDATE outbox SET state = 'sending', locked_by = ?, locked_until = ?, "
                           "attempts = attempts + 1, updated_at = ? WHERE id = ?",
                           (worker, _iso(now + lease), stamp, item_id))
            rows = [db.execute("SELECT * FROM outbox WHERE id = ?", (i,)).fetchone() for i in ids]
        return [_item(r) for r in rows]

    def renew(self, worker: str, until: datetime, now: datetime, item_id: int | None = None) -> int:
        """See :meth:`OutboxBackend.renew`."""
        sql = "UPDATE outbox SET locked_until = ?, updated_at = ? WHERE state = 'sending' AND locked_by = ?"
        args: list[Any] = [_iso(until), _iso(now), worker]
        if item_id is not None:
            sql += " AND id = ?"
            args.append(item_id)
        with self._tx() as db:
            return db.execute(sql, args).rowcount

    def update(self, item_id: int, *, now: datetime, **values: Any) -> OutboxItem:
        """See :meth:`OutboxBackend.update`."""
        check_updatable(values)
        encoded: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, datetime):
                value = _iso(value)
            elif isinstance(value, ItemState):
                value = value.value
            elif name in JSON_COLUMNS and value is not None:
                value = json.dumps(value)
            encoded[name] = value
        assignments = ", ".join(f"{name} = ?" for name in encoded)
        with self._tx() as db:
            db.execute(f"UPDATE outbox SET {assignments}, updated_at = ? WHERE id = ?",  # noqa: S608 - fixed names
                       (*encoded.values(), _iso(now), item_id))
            row = db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise OutboxError(f"outbox item {item_id} does not exist")
        return _item(row)

    def get(self, item_id: int) -> OutboxItem | None:
        """See :meth:`OutboxBackend.get`."""
        with self._lock:
            row = self._db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row is not None else None

    def get_by_key(self, idempotency_key: str) -> OutboxItem | None:
        """See :meth:`OutboxBackend.get_by_key`."""
        with self._lock:
            row = self._db.execute("SELECT * FROM outbox WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        return _item(row) if row is not None else None

    def list(self, *, states: Iterable[ItemState] | None = None, id_nat_decision: str | None = None,
             finess_eg: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """See :meth:`OutboxBackend.list`."""
        where: list[str] = []
        args: list[Any] = []
        if states is not None:
            wanted = [ItemState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' for _ in wanted)})")
            args.extend(wanted)
        if id_nat_decision is not None:
            where.append("id_nat_decision = ?")
            args.append(id_nat_decision)
        if finess_eg is not None:
            where.append("finess_eg = ?")
            args.append(finess_eg)
        # Only fixed column names are joined in; every value is a bound parameter.
        sql = "SELECT * FROM outbox" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"  # noqa: S608
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_item(r) for r in rows]

    def later_sent_exists(self, id_nat_decision: str, finess_eg: str, sequence: str) -> bool:
        """See :meth:`OutboxBackend.later_sent_exists`."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM outbox WHERE id_nat_decision = ? AND finess_eg = ? AND state = 'sent' "
                "AND sequence > ?", (id_nat_decision, finess_eg, sequence)).fetchone()
        return row is not None

    def counts(self) -> dict[str, int]:
        """See :meth:`OutboxBackend.counts`."""
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        found = {state.value: 0 for state in ItemState}
        found.update({r[0]: int(r[1]) for r in rows})
        return found

    def oldest_unsent(self) -> datetime | None:
        """See :meth:`OutboxBackend.oldest_unsent`."""
        with self._lock:
            row = self._db.execute("SELECT min(first_enqueued_at) FROM outbox "
                                   "WHERE state IN ('pending', 'sending')").fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def close(self) -> None:
        """See :meth:`OutboxBackend.close`."""
        with self._lock:
            self._db.close()


def _item(row: sqlite3.Row) -> OutboxItem:
    def load(name: str) -> Any:
        return json.loads(row[name]) if row[name] is not None else None

    return OutboxItem(
        id=int(row["id"]), kind=row["kind"], idempotency_key=row["idempotency_key"],
        id_nat_decision=row["id_nat_decision"], finess_eg=row["finess_eg"], sequence=row["sequence"],
        source_ref=row["source_ref"], payload=load("payload"), origin=load("origin") or {},
        state=ItemState(row["state"]), attempts=int(row["attempts"]),
        next_attempt_at=datetime.fromisoformat(row["next_attempt_at"]),
        first_enqueued_at=datetime.fromisoformat(row["first_enqueued_at"]),
        window_started_at=datetime.fromisoformat(row["window_started_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]), sent_at=_parse(row["sent_at"]),
        last_error=row["last_error"], outcome=load("outcome"), response=load("response"),
        locked_by=row["locked_by"], locked_until=_parse(row["locked_until"]),
    )


class Outbox:
    """The queue's policy (order, backoff, give-up, operator actions) over a :class:`OutboxBackend`.

    Args:
        backend: where items live.
        retry: backoff settings (``base_delay``, ``max_delay``, ``max_age_seconds``).
        clock: current time (injected by tests).
        rng: the jitter's random source (injected by tests).
        lease_seconds: how long a claimed item stays reserved for its worker.
    """

    def __init__(self, backend: OutboxBackend, retry: RetrySettings | None = None, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rng: random.Random | None = None, lease_seconds: float = 300.0) -> None:
        self.backend = backend
        self.retry_settings = retry or RetrySettings()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.lease = timedelta(seconds=lease_seconds)

    @classmethod
    def open(cls, state_dir: Path, retry: RetrySettings | None = None, **kwargs: Any) -> Outbox:
        """Open (or create) the SQLite outbox ``outbox.sqlite3`` in the state directory."""
        return cls(SQLiteOutboxBackend(Path(state_dir) / "outbox.sqlite3"), retry, **kwargs)

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()

    # -- producing ----------------------------------------------------------------------------------

    def enqueue(self, item: NewItem) -> tuple[OutboxItem, bool]:
        """Queue an item; return it and whether it is new (``False``: this version was already queued).

        An item older than one already sent for the same decision is stored ``dropped`` (sending it now
        would make an older status the latest one at ViaTrajectoire).
        """
        existing = self.backend.get_by_key(item.idempotency_key)
        if existing is not None:
            return existing, False
        if self.backend.later_sent_exists(item.id_nat_decision, item.finess_eg, item.sequence):
            return self.backend.insert(
                item, state=ItemState.DROPPED, now=self.clock(),
                error="not sent: a later change of this decision was already sent to ViaTrajectoire "
                      "(sending it now would make an older status the current one); `retry` forces it")
        return self.backend.insert(item, state=ItemState.PENDING, now=self.clock())

    def enqueue_failed(self, item: NewItem, error: str, outcome: dict[str, Any] | None = None) -> tuple[
            OutboxItem, bool]:
        """Keep an item that must not be sent as it is (non-conformant), with why; it blocks its decision."""
        existing = self.backend.get_by_key(item.idempotency_key)
        if existing is not None:
            return existing, False
        return self.backend.insert(item, state=ItemState.FAILED, now=self.clock(), error=error, outcome=outcome)

    # -- consuming ----------------------------------------------------------------------------------

    def claim(self, worker: str, limit: int = 50) -> list[OutboxItem]:
        """Lease up to ``limit`` eligible items for ``worker``."""
        return self.backend.claim(worker, limit, self.lease, self.clock())

    def renew(self, worker: str, item: OutboxItem | None = None) -> bool:
        """Extend the leases of ``worker`` (all its items, or ``item`` only) by ``lease_seconds`` from now.

        Returns:
            whether at least one lease was extended; ``False`` for ``item`` means another worker took it
            over (its lease had expired) and this worker must not send it.
        """
        now = self.clock()
        return self.backend.renew(worker, now + self.lease, now, item.id if item is not None else None) > 0

    def mark_sent(self, item: OutboxItem, response: dict[str, Any]) -> OutboxItem:
        """Record that ViaTrajectoire accepted the item (``response``: created id, Location)."""
        now = self.clock()
        sent = self.backend.update(item.id, now=now, state=ItemState.SENT, sent_at=now, response=response,
                                   last_error=None, locked_by=None, locked_until=None)
        self._drop_superseded(sent)
        return sent

    def _drop_superseded(self, sent: OutboxItem) -> None:
        """Drop the pending items of the decision older than ``sent`` (arrived while it was in flight).

        Sending them now would make an older status the current one at ViaTrajectoire, the rule
        :meth:`enqueue` applies to items arriving after a later one was sent. Items the operator queued again
        (:meth:`retry` marks them ``origin.requeued_at``) are kept: the operator forces them.
        """
        for other in self.backend.list(states=[ItemState.PENDING], id_nat_decision=sent.id_nat_decision,
                                       finess_eg=sent.finess_eg):
            if (other.sequence, other.id) < (sent.sequence, sent.id) and "requeued_at" not in other.origin:
                self.backend.update(other.id, now=self.clock(), state=ItemState.DROPPED,
                                    last_error=f"not sent: item {sent.id}, a later change of this decision, was "
                                               "sent to ViaTrajectoire first; `retry` forces it")

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempts + 1``: full jitter, at least ``retry_after``."""
        settings = self.retry_settings
        ceiling = min(settings.max_delay, settings.base_delay * (2 ** max(attempts - 1, 0)))
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def mark_retry(self, item: OutboxItem, error: str, retry_after: float | None = None,
                   outcome: dict[str, Any] | None = None) -> OutboxItem:
        """Reschedule after a passing fault, or fail it once ``retry.max_age_seconds`` is over."""
        now = self.clock()
        next_at = now + timedelta(seconds=self.backoff(item.attempts, retry_after))
        max_age = timedelta(seconds=self.retry_settings.max_age_seconds)
        if next_at - item.window_started_at > max_age:
            return self.mark_failed(item, f"gave up after {item.attempts} attempt(s) over "
                                          f"{_duration(now - item.window_started_at)}: {error}", outcome)
        return self.backend.update(item.id, now=now, state=ItemState.PENDING, next_attempt_at=next_at,
                                   last_error=error, outcome=outcome, locked_by=None, locked_until=None)

    def mark_failed(self, item: OutboxItem, error: str, outcome: dict[str, Any] | None = None) -> OutboxItem:
        """Record a definitive failure; the item now blocks its decision until retried or dropped."""
        return self.backend.update(item.id, now=self.clock(), state=ItemState.FAILED, last_error=error,
                                   outcome=outcome, locked_by=None, locked_until=None)

    def release(self, item: OutboxItem) -> OutboxItem:
        """Give a claimed item back untouched (dry run, shutdown): pending, due now, attempt not counted."""
        return self.backend.update(item.id, now=self.clock(), state=ItemState.PENDING,
                                   attempts=max(item.attempts - 1, 0), locked_by=None, locked_until=None)

    def recover(self, is_dead: Callable[[str], bool]) -> list[OutboxItem]:
        """Give back the items a dead worker had claimed, without waiting for their lease to expire.

        A worker killed while sending leaves its items ``sending``. At start, ``vtdui run`` asks which
        workers are dead (same host, process gone) and makes their items due now. The POST of such an
        item may have reached ViaTrajectoire before the kill: it is sent again (at least once).

        Args:
            is_dead: tells whether the worker named in ``locked_by`` is certainly gone.

        Returns:
            The items given back.
        """
        recovered: list[OutboxItem] = []
        for item in self.backend.list(states=[ItemState.SENDING]):
            if item.locked_by is not None and is_dead(item.locked_by):
                now = self.clock()
                recovered.append(self.backend.update(
                    item.id, now=now, state=ItemState.PENDING, next_attempt_at=now, locked_by=None,
                    locked_until=None, last_error="its worker stopped while sending: sent again (the first POST "
                                                  "may have reached ViaTrajectoire)"))
        return recovered

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest unsent item (pending or sending) was queued; ``None`` when there is none."""
        oldest = self.backend.oldest_unsent()
        return None if oldest is None else max((self.clock() - oldest).total_seconds(), 0.0)

    # -- operator -----------------------------------------------------------------------------------

    def list(self, *, states: Iterable[ItemState | str] | None = None, id_nat_decision: str | None = None,
             finess_eg: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """List items, oldest first, optionally filtered."""
        wanted = None if states is None else [ItemState(s) for s in states]
        return self.backend.list(states=wanted, id_nat_decision=id_nat_decision, finess_eg=finess_eg, limit=limit)

    def show(self, item_id: int) -> OutboxItem:
        """Return one item.

        Raises:
            OutboxError: no such item.
        """
        item = self.backend.get(item_id)
        if item is None:
            raise OutboxError(f"outbox item {item_id} does not exist; `vtdui outbox list` shows the items")
        return item

    def retry(self, item_id: int, payload: dict[str, Any] | None = None) -> OutboxItem:
        """Queue a failed or dropped item again, due now, with a fresh ``max_age`` window.

        Args:
            item_id: the item.
            payload: a rebuilt resource replacing the stored one (after a fix of the data or the
                configuration).

        Raises:
            OutboxError: unknown item, or one that is sent or being sent.
        """
        item = self.show(item_id)
        if item.state not in (ItemState.FAILED, ItemState.DROPPED, ItemState.PENDING):
            raise OutboxError(f"outbox item {item_id} is {item.state.value}: only failed, dropped or pending "
                              "items can be retried")
        now = self.clock()
        values: dict[str, Any] = {"state": ItemState.PENDING, "next_attempt_at": now, "window_started_at": now,
                                  "locked_by": None, "locked_until": None,
                                  "origin": {**item.origin, "requeued_at": _iso(now)}}
        if payload is not None:
            values["payload"] = payload
        return self.backend.update(item_id, now=now, **values)

    def drop(self, item_id: int, reason: str = "dropped by the operator") -> OutboxItem:
        """Give up on an item that was not sent; the later items of its decision flow again.

        Raises:
            OutboxError: unknown item, or one already sent.
        """
        item = self.show(item_id)
        if item.state == ItemState.SENT:
            raise OutboxError(f"outbox item {item_id} was already sent; nothing to drop")
        return self.backend.update(item_id, now=self.clock(), state=ItemState.DROPPED, last_error=reason,
                                   locked_by=None, locked_until=None)

    def counts(self) -> dict[str, int]:
        """Number of items per state."""
        return self.backend.counts()

    def blocked_by(self, item: OutboxItem) -> Sequence[OutboxItem]:
        """The earlier items of the same decision that hold ``item`` back (empty when it is the head)."""
        earlier = self.backend.list(states=BLOCKING_STATES, id_nat_decision=item.id_nat_decision,
                                    finess_eg=item.finess_eg)
        return [e for e in earlier if (e.sequence, e.id) < (item.sequence, item.id)]


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}min"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
