"""Versioned schema of the PostgreSQL database: ``migrations/postgres/NNNN_name.sql``, applied in order.

``vtdui db migrate`` (:func:`migrate`) applies the files not applied yet, each in its own transaction
together with its row in ``schema_migrations`` (version, name, when, SHA-256 of the file), under a
PostgreSQL advisory lock so that several workers starting at once never race. A running vtdui never
creates or changes the schema by itself: :func:`require_current` refuses to open a database whose schema
is behind (or ahead of) this version of vtdui.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from vtdui.errors import ConfigError, VtduiError
from vtdui.postgres import Database, connect

if TYPE_CHECKING:
    import psycopg

__all__ = ["AppliedMigration", "Migration", "MigrationError", "SchemaStatus", "available", "migrate", "open_current",
           "require_current", "schema_status"]

#: ``pg_advisory_lock`` key of the migration runner ("vtdui-mg" in ASCII).
LOCK_KEY = 0x767464_75692D6D67
_FILE = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")
_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum text NOT NULL
)
"""


class MigrationError(VtduiError):
    """A migration failed on the server (rolled back: the schema stays at the previous version)."""


@dataclass(frozen=True)
class Migration:
    """One migration file shipped with vtdui."""

    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AppliedMigration:
    """One row of ``schema_migrations``."""

    version: int
    name: str
    applied_at: datetime
    checksum: str


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against the migrations of this vtdui.

    Attributes:
        current: highest applied version (0: empty database).
        latest: highest version this vtdui ships.
        applied: the rows of ``schema_migrations``.
        pending: shipped migrations not applied yet, in order.
        mismatched: applied versions whose file changed since (checksum differs).
        unknown: applied versions this vtdui does not ship (a newer vtdui migrated the database).
    """

    current: int
    latest: int
    applied: list[AppliedMigration]
    pending: list[Migration]
    mismatched: list[int]
    unknown: list[int]

    @property
    def up_to_date(self) -> bool:
        """No pending and no unknown migration."""
        return not self.pending and not self.unknown


def available() -> list[Migration]:
    """The migrations shipped in ``vtdui/migrations/postgres``, by version.

    Raises:
        ConfigError: two files share a version.
    """
    found: dict[int, Migration] = {}
    folder = resources.files(__name__) / "postgres"
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ConfigError(f"two migrations have version {version}: {found[version].name} and {match.group(2)}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def _applied(conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT version, name, applied_at, checksum FROM schema_migrations ORDER BY version")
    return [AppliedMigration(int(r[0]), str(r[1]), r[2], str(r[3])) for r in rows.fetchall()]


def _status(applied: list[AppliedMigration], shipped: list[Migration]) -> SchemaStatus:
    done = {a.version: a for a in applied}
    known = {m.version: m for m in shipped}
    return SchemaStatus(
        current=max(done, default=0), latest=max(known, default=0), applied=applied,
        pending=[m for m in shipped if m.version not in done],
        mismatched=[v for v, a in sorted(done.items()) if v in known and known[v].checksum != a.checksum],
        unknown=[v for v in sorted(done) if v not in known])


def status_of(conn: psycopg.Connection[Any]) -> SchemaStatus:
    """:class:`SchemaStatus` read through an open connection (its transaction is left to the caller)."""
    return _status(_applied(conn), available())


def schema_status(url: str) -> SchemaStatus:
    """Compare the database's ``schema_migrations`` with the shipped migrations (changes nothing)."""
    conn = connect(url, autocommit=True)
    try:
        return status_of(conn)
    finally:
        conn.close()


def migrate(url: str) -> list[Migration]:
    """Apply the pending migrations in order; return those applied (empty: already up to date).

    Safe to run from several processes at once: they queue on an advisory lock, and the ones that come
    after the first find nothing left to do.

    Raises:
        ConfigError: the database was migrated by a newer vtdui.
        MigrationError: a migration failed (it was rolled back; the earlier ones stay applied).
        DatabaseUnavailableError: the server cannot be reached.
    """
    import psycopg

    conn = connect(url, autocommit=True)
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(_TABLE)
            state = status_of(conn)
            if state.unknown:
                raise ConfigError(_newer_message(state))
            done: list[Migration] = []
            for migration in state.pending:
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode("utf-8"))
                        conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                                     (migration.version, migration.name, migration.checksum))
                except psycopg.Error as exc:
                    applied = ", ".join(f"{m.version:04d}_{m.name}" for m in done) or "none"
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} failed and was rolled back "
                        f"({type(exc).__name__}: {str(exc).strip()}); applied before it: {applied}") from None
                done.append(migration)
            return done
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        conn.close()


def _newer_message(state: SchemaStatus) -> str:
    return (f"database schema is at version {state.current}, newer than this vtdui knows ({state.latest}): "
            "upgrade vtdui on this host")


def require_current(conn: psycopg.Connection[Any]) -> SchemaStatus:
    """Check, without changing anything, that the schema is exactly the one this vtdui needs.

    Raises:
        ConfigError: migrations are pending (run ``vtdui db migrate``) or the database is newer.
    """
    state = status_of(conn)
    if state.pending:
        raise ConfigError(f"database schema is at version {state.current}, this vtdui needs {state.latest}: "
                          "run `vtdui db migrate`")
    if state.unknown:
        raise ConfigError(_newer_message(state))
    return state


def open_current(url: str, pool_size: int, database: Database | None = None) -> tuple[Database, bool, int]:
    """Open a pool (or reuse ``database``) on a PostgreSQL database whose schema this vtdui can use.

    Returns:
        the pool, whether the caller owns it (and closes it), and the schema version.

    Raises:
        ConfigError: the schema is behind (run ``vtdui db migrate``) or ahead of this vtdui.
        DatabaseUnavailableError: the server cannot be reached.
    """
    owned = database is None
    db = database if database is not None else Database(url, pool_size)
    try:
        with db.transaction() as conn:
            version = require_current(conn).current
    except BaseException:
        if owned:
            db.close()
        raise
    return db, owned, version
