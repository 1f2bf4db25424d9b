"""Several workers on one PostgreSQL database: one poll per establishment at a time, per-entity limit across
workers, and a dead worker's establishments taken over when its lease expires."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_poll_scheduler import SlowSync, _config

from vtdui.schedule import PollScheduler, PostgresPollSchedule


def test_two_workers_never_poll_the_same_establishment_at_once(migrated_pg_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, entities=3, per_entity=4, max_concurrent=4, max_concurrent_per_entity=2,
                     interval_seconds=1.0, failure_backoff_seconds=1.0)
    egs = [eg.finess_eg for _, eg in config.establishments()]
    shared: dict[str, int] = {}
    fakes = [SlowSync(seconds=0.05, overlap_probe=shared), SlowSync(seconds=0.05, overlap_probe=shared)]
    # the two fakes share one lock so the per-entity count is across workers
    fakes[1].lock = fakes[0].lock
    fakes[1].running = fakes[0].running
    stores = [PostgresPollSchedule(migrated_pg_url), PostgresPollSchedule(migrated_pg_url)]
    schedulers = [PollScheduler(config, store, fake, worker=f"w{i}") for i, (store, fake)
                  in enumerate(zip(stores, fakes, strict=True))]
    stopping = threading.Event()
    threads = [threading.Thread(target=s.run_forever, args=(stopping,), kwargs={"stagger": False}, daemon=True)
               for s in schedulers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        while not all(fakes[0].polls[eg] + fakes[1].polls[eg] >= 3 for eg in egs):
            assert time.monotonic() < deadline, (dict(fakes[0].polls), dict(fakes[1].polls))
            time.sleep(0.05)
    finally:
        stopping.set()
        for thread in threads:
            thread.join(30)
        for store in stores:
            store.close()
    assert not any(t.is_alive() for t in threads)
    assert fakes[0].overlaps == 0 and fakes[1].overlaps == 0
    # both took part, and the per-entity limit held across the two workers
    assert sum(fakes[0].polls.values()) > 0 and sum(fakes[1].polls.values()) > 0
    assert max(max(f.max_per_entity.values()) for f in fakes) <= 2


def _claim_and_die(url: str, now: str) -> None:
    """A worker process that claims every establishment and dies without finishing (``kill -9``-like)."""
    store = PostgresPollSchedule(url)
    store.claim("dead:1", datetime.fromisoformat(now), 60, 100, 100)
    store.close()


def test_a_dead_workers_establishments_are_taken_over_after_its_lease(migrated_pg_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, entities=2, per_entity=3, max_concurrent=4, max_concurrent_per_entity=3,
                     lease_seconds=60.0)
    egs = [eg.finess_eg for _, eg in config.establishments()]
    store = PostgresPollSchedule(migrated_pg_url)
    try:
        start = datetime.now(UTC)
        store.ensure([(eg.finess_eg, ej.finess_ej) for ej, eg in config.establishments()], start, 86400,
                     stagger=False)
        process = multiprocessing.get_context("spawn").Process(target=_claim_and_die,
                                                                args=(migrated_pg_url, start.isoformat()))
        process.start()
        process.join(60)
        assert process.exitcode == 0
        assert {r.locked_by for r in store.snapshot()} == {"dead:1"}
        clock = [start + timedelta(seconds=30)]
        fake = SlowSync(seconds=0.0)
        scheduler = PollScheduler(config, store, fake, worker="alive:2", clock=lambda: clock[0])
        # within the dead worker's lease: nothing is polled
        assert scheduler.run_all().establishments == []
        clock[0] = start + timedelta(seconds=61)
        report = scheduler.run_all()
        assert sorted(r.finess_eg for r in report.establishments) == sorted(egs)
        assert all(r.ok for r in report.establishments)
        rows = store.snapshot()
        assert all(r.locked_by is None and r.last_success_at == clock[0] for r in rows)
    finally:
        store.close()
