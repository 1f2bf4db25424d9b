"""Worker processes of the concurrency tests (imported by ``spawn`` children: keep it importable and small).

A "delivery" is a row in ``deliveries`` (its ``seq`` orders the deliveries of every worker), written
where a real worker would POST to ViaTrajectoire.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from vtdui.config import RetrySettings
from vtdui.outbox import Outbox, OutboxItem
from vtdui.pg_outbox import PostgresOutboxBackend

DELIVERIES = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq bigserial PRIMARY KEY,
    item_id bigint NOT NULL,
    worker text NOT NULL,
    id_nat_decision text NOT NULL,
    finess_eg text NOT NULL,
    sequence text NOT NULL,
    claimed_at timestamptz NOT NULL,
    delivered_at timestamptz NOT NULL
)
"""


def _outbox(url: str, lease: float, seed: int) -> Outbox:
    retry = RetrySettings(base_delay=0.005, max_delay=0.02, max_age_seconds=3600.0)
    return Outbox(PostgresOutboxBackend(url, pool_size=1), retry, lease_seconds=lease, rng=random.Random(seed))


def _deliver(conn: psycopg.Connection[Any], item: OutboxItem, worker: str, claimed_at: datetime) -> None:
    # claimed_at: taken right after the claim committed (so never before it); delivered_at: before mark_sent
    conn.execute("INSERT INTO deliveries (item_id, worker, id_nat_decision, finess_eg, sequence, claimed_at, "
                 "delivered_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (item.id, worker, item.id_nat_decision, item.finess_eg, item.sequence, claimed_at,
                  datetime.now(UTC)))


def drain(url: str, worker: str, seed: int, fail_rate: float, timeout: float = 45.0) -> int:
    """Claim and deliver until nothing is left unsent; fail some attempts on purpose. Return deliveries made."""
    box = _outbox(url, 30.0, seed)
    rng = random.Random(seed)
    delivered = 0
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            items = box.claim(worker, limit=8)
            claimed_at = datetime.now(UTC)
            if not items:
                counts = box.counts()
                if counts["pending"] == 0 and counts["sending"] == 0:
                    break
                time.sleep(0.01)
                continue
            for item in items:
                if rng.random() < fail_rate:
                    box.mark_retry(item, "injected: 503 Service Unavailable")
                    continue
                _deliver(conn, item, worker, claimed_at)
                box.mark_sent(item, {"id": f"vt-{item.id}"})
                delivered += 1
    box.close()
    return delivered


def hold(url: str, worker: str, lease: float, ready: Any) -> None:
    """Claim items with a short lease, deliver the first without recording it sent, then hang (to be killed)."""
    box = _outbox(url, lease, 0)
    items = box.claim(worker, limit=6)
    with psycopg.connect(url, autocommit=True) as conn:
        if items:
            _deliver(conn, items[0], worker, datetime.now(UTC))  # ViaTrajectoire got it, the outcome is never recorded
        conn.execute("CREATE TABLE IF NOT EXISTS held (item_id bigint)")
        for item in items:
            conn.execute("INSERT INTO held VALUES (%s)", (item.id,))
    ready.set()
    time.sleep(600)
