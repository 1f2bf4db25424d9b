"""SQLite plumbing shared by the state store and the outbox: one connection per store, explicit transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from vtdui.safe_io import private_dir, private_file

__all__ = ["connect", "transaction"]


def connect(path: Path, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> sqlite3.Connection:
    """Open ``path`` in WAL mode, shareable between threads (callers serialise with a lock), rows as mappings.

    Args:
        path: the database file.
        synchronous: ``FULL`` when a committed row must survive a power cut, not only a process crash.
    """
    # the databases hold ESMSTask / ESMSConsent payloads and decision statuses: 0600 in a 0700 directory;
    # SQLite gives the -wal and -shm files the mode of the database file
    private_dir(path.parent)
    private_file(path)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    for suffix in ("-wal", "-shm"):  # files left by an older version with the umask's mode
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_mode & 0o077:
            side.chmod(0o600)
    return db


@contextmanager
def transaction(db: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under ``lock``; ``ROLLBACK`` when the block raises."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
