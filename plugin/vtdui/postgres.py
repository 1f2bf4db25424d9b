"""PostgreSQL plumbing shared by the state store, the outbox and the exchange log (psycopg 3).

A :class:`Database` is a small, thread-safe pool of connections (at most ``database.pool_size``, opened on
first use). Connections are *not* in autocommit: every use goes through :meth:`Database.transaction`
(``COMMIT`` at the end of the block, ``ROLLBACK`` when it raises), so a method of a store is one
transaction. Sessions run in UTC with ``READ COMMITTED`` isolation.

Errors a user may see never carry a traceback or the password: an unreachable server raises
:class:`DatabaseUnavailableError` (a :class:`~vtdui.errors.RetriableError`: the server may come back)
whose message names the database with :func:`redact_url`.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from vtdui.errors import ConfigError, RetriableError

if TYPE_CHECKING:
    import psycopg

__all__ = ["Database", "DatabaseUnavailableError", "connect", "redact_url", "require_driver"]

log = logging.getLogger(__name__)

_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")


class DatabaseUnavailableError(RetriableError):
    """The PostgreSQL server cannot be reached, or refused the connection."""


def require_driver() -> None:
    """Check that the PostgreSQL driver (psycopg, the ``postgres`` extra) is installed.

    Raises:
        ConfigError: it is not: ``database.url`` names PostgreSQL, so say how to install it (no traceback).
    """
    try:
        import psycopg  # noqa: F401  (only whether it imports matters here)
    except ImportError as exc:
        raise ConfigError(
            "database.url names a PostgreSQL database, but the PostgreSQL driver (psycopg) is not installed: "
            "install vtdui with its postgres extra (pip install 'viatrajectoire-dui[postgres]'), or leave "
            f"database.url unset to keep the state in SQLite files ({exc})"
        ) from None


def redact_url(url: str) -> str:
    """Return ``url`` with its password (in the user info or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if sep else ''}@{host}"
    query = _PASSWORD_PARAM.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _scrub(message: str, url: str) -> str:
    """Remove the password from a driver message (it never should carry it; belt and braces)."""
    secret = _password(url)
    if secret:
        message = message.replace(secret, "***")
    return _PASSWORD_PARAM.sub(r"\1***", message.strip()).replace("\n", " ")


def connect(url: str, *, autocommit: bool = False, connect_timeout: float = 10.0) -> psycopg.Connection[Any]:
    """Open one connection (UTC session) or raise a clear :class:`DatabaseUnavailableError`.

    Args:
        url: ``postgresql://user:password@host:port/database``.
        autocommit: leave ``False`` except for statements that must run outside a transaction.
        connect_timeout: seconds before giving up on an unreachable server.

    Raises:
        ConfigError: the driver is not installed (see :func:`require_driver`).
    """
    require_driver()
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=max(int(connect_timeout), 1),
                               options="-c timezone=UTC")
    except psycopg.Error as exc:
        raise DatabaseUnavailableError(f"cannot connect to the PostgreSQL database {redact_url(url)}: "
                                       f"{_scrub(str(exc), url)}") from None
    return conn


class Database:
    """A thread-safe pool of PostgreSQL connections, one transaction per :meth:`transaction` block.

    Args:
        url: the database URL (``database.url``).
        pool_size: most connections open at once; a thread waits for a free one beyond that.
    """

    def __init__(self, url: str, pool_size: int = 5) -> None:
        self.url = url
        self.pool_size = max(pool_size, 1)
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self.pool_size)
        self._lock = threading.Lock()
        self._all: list[psycopg.Connection[Any]] = []
        self._closed = False
        # fail early, with a clear message, when the server is unreachable
        self._idle.put(self._open())

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r}, pool_size={self.pool_size})"

    def _open(self) -> psycopg.Connection[Any]:
        conn = connect(self.url)
        with self._lock:
            self._all.append(conn)
        return conn

    def _discard(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:
            log.debug("closing a broken database connection failed", exc_info=True)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a connection for this thread (no transaction handling: see :meth:`transaction`)."""
        if self._closed:
            raise DatabaseUnavailableError(f"the database connection pool of {redact_url(self.url)} is closed")
        self._slots.acquire()
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._open()
            if conn.closed:
                self._discard(conn)
                conn = self._open()
            yield conn
        finally:
            if conn is not None:
                if conn.closed or conn.broken or self._closed:
                    self._discard(conn)
                else:
                    self._idle.put(conn)
            self._slots.release()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: ``COMMIT`` when the block ends, ``ROLLBACK`` when it raises.

        Raises:
            DatabaseUnavailableError: the server went away (the block may be retried later).
        """
        import psycopg

        with self.connection() as conn:
            try:
                yield conn
                conn.commit()
            except psycopg.OperationalError as exc:
                _rollback(conn)
                raise DatabaseUnavailableError(f"PostgreSQL database {redact_url(self.url)}: "
                                               f"{_scrub(str(exc), self.url)}") from exc
            except BaseException:
                _rollback(conn)
                raise

    def close(self) -> None:
        """Close every connection of the pool."""
        self._closed = True
        with self._lock:
            conns, self._all = list(self._all), []
        for conn in conns:
            try:
                conn.close()
            except Exception:
                log.debug("closing a database connection failed", exc_info=True)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.closed or conn.broken:
        return
    try:
        conn.rollback()
    except Exception:
        log.debug("rollback failed", exc_info=True)
