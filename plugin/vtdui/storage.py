"""Open the durable stores the configuration asks for: SQLite files in ``state_dir`` (default) or PostgreSQL.

``database.url`` unset: :class:`~vtdui.state.StateStore`, ``outbox.sqlite3`` and ``exchanges.sqlite3`` in
``state_dir``, exactly as before. ``database.url = "postgresql://…"``: the same operations on the shared
database (:mod:`vtdui.pg_state`, :mod:`vtdui.pg_outbox`, :mod:`vtdui.pg_exchanges`), whose schema must have
been created by ``vtdui db migrate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vtdui.config import RetrySettings
from vtdui.exchanges import ExchangeLog
from vtdui.outbox import Outbox
from vtdui.postgres import require_driver
from vtdui.state import StateBackend, StateStore

if TYPE_CHECKING:
    from vtdui.config import Config
    from vtdui.schedule import PollSchedule

__all__ = ["describe", "open_exchanges", "open_outbox", "open_poll_schedule", "open_state"]


def describe(config: Config) -> str:
    """Where the state lives, for messages (the password of a database URL is redacted)."""
    if config.database.is_postgres and config.database.url:
        from vtdui.postgres import redact_url

        return f"PostgreSQL {redact_url(config.database.url)}"
    return f"SQLite files in {config.state_dir}"


def open_state(config: Config) -> StateBackend:
    """Open the state store (cursors, documents seen, quarantine, pending statuses, consents).

    Raises:
        ConfigError: PostgreSQL schema not migrated (run ``vtdui db migrate``).
        DatabaseUnavailableError: the PostgreSQL server cannot be reached.
    """
    if config.database.is_postgres and config.database.url:
        require_driver()
        from vtdui.pg_state import PostgresStateStore

        return PostgresStateStore(config.database.url, pool_size=config.database.pool_size)
    return StateStore(config.state_dir)


def open_outbox(config: Config, retry: RetrySettings | None = None, **kwargs: Any) -> Outbox:
    """Open the outbox; ``retry`` and ``kwargs`` (``lease_seconds``, ``clock``...) go to :class:`Outbox`.

    Raises:
        ConfigError: PostgreSQL schema not migrated (run ``vtdui db migrate``).
        DatabaseUnavailableError: the PostgreSQL server cannot be reached.
    """
    if config.database.is_postgres and config.database.url:
        require_driver()
        from vtdui.pg_outbox import PostgresOutboxBackend

        return Outbox(PostgresOutboxBackend(config.database.url, pool_size=config.database.pool_size), retry,
                      **kwargs)
    return Outbox.open(config.state_dir, retry, **kwargs)


def open_exchanges(config: Config, current_item: Callable[[], Any] | None = None) -> ExchangeLog:
    """Open the exchange log (the trace of every attempt towards ViaTrajectoire).

    Raises:
        ConfigError: PostgreSQL schema not migrated (run ``vtdui db migrate``).
        DatabaseUnavailableError: the PostgreSQL server cannot be reached.
    """
    if config.database.is_postgres and config.database.url:
        require_driver()
        from vtdui.pg_exchanges import PostgresExchangeLog

        return PostgresExchangeLog(config.database.url, current_item=current_item,
                                   pool_size=config.database.pool_size)
    return ExchangeLog(config.state_dir, current_item=current_item)


def open_poll_schedule(config: Config) -> PollSchedule:
    """Open the poll schedule of the inbound sync (:mod:`vtdui.schedule`).

    Raises:
        ConfigError: PostgreSQL schema not migrated (run ``vtdui db migrate``).
        DatabaseUnavailableError: the PostgreSQL server cannot be reached.
    """
    from vtdui.schedule import PostgresPollSchedule, SQLitePollSchedule

    if config.database.is_postgres and config.database.url:
        require_driver()
        return PostgresPollSchedule(config.database.url, pool_size=config.database.pool_size)
    return SQLitePollSchedule.open(config.state_dir)
