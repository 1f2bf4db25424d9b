"""Fixtures of the PostgreSQL backend tests: a migrated database, and the same store on both backends."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vtdui.config import RetrySettings
from vtdui.migrations import migrate
from vtdui.outbox import Outbox


@pytest.fixture
def migrated_url(pg_url: str) -> str:
    """URL of a fresh database with the whole schema applied."""
    migrate(pg_url)
    return pg_url


@pytest.fixture(scope="session")
def _shared_database(postgres: Any) -> str:
    """One migrated database for the behaviour tests (emptied before each), to create fewer databases."""
    url: str = postgres.fresh_database("shared")
    migrate(url)
    return url


@pytest.fixture
def clean_url(_shared_database: str) -> str:
    """URL of a migrated database with every table empty (``schema_migrations`` kept)."""
    import psycopg

    with psycopg.connect(_shared_database) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")]
        conn.execute(("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY").encode())
    return _shared_database


@pytest.fixture(params=["sqlite", "postgres"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Run a behaviour test once per storage backend."""
    return str(request.param)


@pytest.fixture
def state_factory(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[
        Callable[[], Any]]:
    """Open (or reopen) the state store of the backend under test; everything opened is closed after."""
    opened: list[Any] = []
    url = request.getfixturevalue("clean_url") if backend_name == "postgres" else None

    def open_store() -> Any:
        if url is not None:
            from vtdui.pg_state import PostgresStateStore

            store: Any = PostgresStateStore(url, pool_size=2)
        else:
            from vtdui.state import StateStore

            store = StateStore(tmp_path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


class Clock:
    """A settable clock for the outbox policy."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    """A clock starting 2026-05-12 08:00 UTC."""
    return Clock()


@pytest.fixture
def outbox_factory(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[
        Callable[..., Outbox]]:
    """Open (or reopen) an outbox on the backend under test: ``factory(**retry_settings)``."""
    opened: list[Outbox] = []
    url = request.getfixturevalue("clean_url") if backend_name == "postgres" else None

    def open_outbox(**retry: float) -> Outbox:
        settings = RetrySettings(**retry) if retry else RetrySettings(  # type: ignore[arg-type]
            base_delay=1.0, max_delay=60.0, max_age_seconds=3600.0)
        if url is not None:
            from vtdui.pg_outbox import PostgresOutboxBackend

            box = Outbox(PostgresOutboxBackend(url, pool_size=2), settings, clock=clock, rng=random.Random(7))
        else:
            box = Outbox.open(tmp_path, settings, clock=clock, rng=random.Random(7))
        opened.append(box)
        return box

    yield open_outbox
    for box in opened:
        box.close()


@pytest.fixture
def outbox(outbox_factory: Callable[..., Outbox]) -> Outbox:
    """An outbox on the backend under test."""
    return outbox_factory()
