"""Fixtures of the poll-schedule tests: each store test runs on SQLite and on a real PostgreSQL database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vtdui.migrations import migrate
from vtdui.schedule import PollSchedule, PostgresPollSchedule, SQLitePollSchedule

_INBOUND = Path(__file__).resolve().parents[1] / "e2e" / "inbound"
if str(_INBOUND) not in sys.path:
    sys.path.insert(0, str(_INBOUND))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PollSchedule]:
    """A poll schedule store: SQLite in ``tmp_path``, or PostgreSQL in a fresh database."""
    schedule: PollSchedule
    if request.param == "sqlite":
        schedule = SQLitePollSchedule.open(tmp_path)
    else:
        schedule = PostgresPollSchedule(request.getfixturevalue("migrated_pg_url"))
    try:
        yield schedule
    finally:
        schedule.close()


@pytest.fixture
def migrated_pg_url(pg_url: str) -> str:
    """A fresh PostgreSQL database with the schema of this vtdui (``vtdui db migrate``)."""
    migrate(pg_url)
    return pg_url
