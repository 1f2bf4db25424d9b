"""PollScheduler with a slow fake establishment sync: limits, failure isolation, the service loop, metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from vtdui.config import Config, Establishment, LegalEntity, SyncSettings
from vtdui.schedule import PollSchedule, PollScheduler, SQLitePollSchedule
from vtdui.sync import EstablishmentReport


def _config(tmp_path: Path, entities: int, per_entity: int, **sync: object) -> Config:
    legal = tuple(
        LegalEntity(finess_ej=f"9{e:02d}000000", name=f"EJ {e}", establishments=tuple(
            Establishment(finess_eg=f"{e + 1:02d}{k:07d}", name=f"EG {e}-{k}") for k in range(per_entity)))
        for e in range(entities))
    return Config(state_dir=tmp_path, hooks_dir=None, legal_entities=legal,
                  sync=replace(SyncSettings(), **sync))  # type: ignore[arg-type]


class SlowSync:
    """A fake ``sync_establishment`` that takes a little while and counts what runs at once."""

    def __init__(self, seconds: float = 0.05, fail: set[str] | None = None, raise_for: set[str] | None = None,
                 overlap_probe: dict[str, int] | None = None) -> None:
        self.seconds = seconds
        self.fail = fail or set()
        self.raise_for = raise_for or set()
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.running_total = 0
        self.max_per_entity: Counter[str] = Counter()
        self.max_total = 0
        self.polls: Counter[str] = Counter()
        self.overlaps = 0
        self.shared = overlap_probe

    def __call__(self, entity: LegalEntity, establishment: Establishment) -> EstablishmentReport:
        eg = establishment.finess_eg
        with self.lock:
            self.running[entity.finess_ej] += 1
            self.running_total += 1
            self.max_per_entity[entity.finess_ej] = max(self.max_per_entity[entity.finess_ej],
                                                        self.running[entity.finess_ej])
            self.max_total = max(self.max_total, self.running_total)
            self.polls[eg] += 1
            if self.shared is not None:
                self.shared[eg] = self.shared.get(eg, 0) + 1
                if self.shared[eg] > 1:
                    self.overlaps += 1
        try:
            time.sleep(self.seconds)
            if eg in self.raise_for:
                raise RuntimeError("certificate refused")
            report = EstablishmentReport(eg, decisions_stored=1)
            if eg in self.fail:
                report.errors.append("flux 1: ViaTrajectoire answered HTTP 503 (gave up after 2 attempts)")
            return report
        finally:
            with self.lock:
                self.running[entity.finess_ej] -= 1
                self.running_total -= 1
                if self.shared is not None:
                    self.shared[eg] -= 1


@pytest.fixture
def sqlite_schedule(tmp_path: Path) -> PollSchedule:
    schedule = SQLitePollSchedule.open(tmp_path / "sched")
    yield schedule  # type: ignore[misc]
    schedule.close()


def test_run_all_respects_both_limits_and_one_failure_does_not_stop_the_others(
        tmp_path: Path, sqlite_schedule: PollSchedule) -> None:
    config = _config(tmp_path, entities=4, per_entity=6, max_concurrent=5, max_concurrent_per_entity=2)
    egs = [eg.finess_eg for _, eg in config.establishments()]
    fake = SlowSync(fail={egs[3]}, raise_for={egs[10]})
    scheduler = PollScheduler(config, sqlite_schedule, fake, worker="w1")
    report = scheduler.run_all()
    assert [r.finess_eg for r in report.establishments] == egs  # every one, in configuration order
    assert dict(fake.polls) == dict.fromkeys(egs, 1)
    assert max(fake.max_per_entity.values()) <= 2
    assert fake.max_total <= 5
    assert fake.max_total >= 2  # it did run concurrently
    failed = {r.finess_eg for r in report.establishments if not r.ok}
    assert failed == {egs[3], egs[10]}
    assert "RuntimeError: certificate refused" in next(r for r in report.establishments if r.finess_eg == egs[10]
                                                         ).errors[0]
    rows = {r.finess_eg: r for r in sqlite_schedule.snapshot()}
    assert rows[egs[3]].consecutive_failures == 1 and "503" in (rows[egs[3]].last_error or "")
    assert rows[egs[10]].consecutive_failures == 1
    assert all(rows[eg].last_success_at is not None for eg in egs if eg not in failed)
    assert all(r.locked_by is None for r in rows.values())
    assert scheduler.outcomes == {"ok": len(egs) - 2, "error": 2}


def test_the_service_loop_polls_what_is_due_and_releases_its_leases_when_stopping(
        tmp_path: Path, sqlite_schedule: PollSchedule) -> None:
    config = _config(tmp_path, entities=3, per_entity=5, max_concurrent=4, max_concurrent_per_entity=1,
                     interval_seconds=3600.0)
    egs = [eg.finess_eg for _, eg in config.establishments()]
    fake = SlowSync(seconds=0.02, fail={egs[0]})
    reports: list[EstablishmentReport] = []
    scheduler = PollScheduler(config, sqlite_schedule, fake, worker="w1", on_report=reports.append,
                              never_polled=lambda eg: eg in egs[:5])
    stopping = threading.Event()
    thread = threading.Thread(target=scheduler.run_forever, args=(stopping,), daemon=True)
    thread.start()
    try:
        # the never-polled establishments are due at once, the others at their place in the hour
        deadline = time.monotonic() + 60
        while len(reports) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stopping.set()
        thread.join(30)
    assert not thread.is_alive()
    assert sorted(r.finess_eg for r in reports) == sorted(egs[:5])
    assert max(fake.max_per_entity.values()) == 1
    rows = {r.finess_eg: r for r in sqlite_schedule.snapshot()}
    assert all(r.locked_by is None for r in rows.values())
    assert rows[egs[0]].consecutive_failures == 1
    # an establishment polled once is next due within the interval; the failing one after the backoff
    assert all(rows[eg].next_due_at > rows[eg].last_finished_at for eg in egs[:5])  # type: ignore[operator]
    assert all(rows[eg].last_started_at is None for eg in egs[5:])


def test_poll_now_and_repeated_polls_keep_the_per_entity_limit(tmp_path: Path,
                                                                sqlite_schedule: PollSchedule) -> None:
    config = _config(tmp_path, entities=2, per_entity=6, max_concurrent=4, max_concurrent_per_entity=2,
                     interval_seconds=1.0, failure_backoff_seconds=1.0)
    fake = SlowSync(seconds=0.03)
    scheduler = PollScheduler(config, sqlite_schedule, fake, worker="w1")
    stopping = threading.Event()
    thread = threading.Thread(target=scheduler.run_forever, args=(stopping,), kwargs={"stagger": False},
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while min(fake.polls.values(), default=0) < 3 or len(fake.polls) < 12:
            assert time.monotonic() < deadline, dict(fake.polls)
            time.sleep(0.05)
    finally:
        stopping.set()
        thread.join(30)
    assert not thread.is_alive()
    assert max(fake.max_per_entity.values()) == 2
    assert fake.max_total <= 4


def test_a_long_poll_renews_its_lease_so_another_worker_does_not_take_it(tmp_path: Path) -> None:
    # lease 4 s, renewed every 2 s; each poll lasts 6 s: without renewal the second worker would take the
    # establishment over mid-poll (the shared probe would see two polls of it at once)
    config = _config(tmp_path, entities=1, per_entity=2, max_concurrent=2, max_concurrent_per_entity=2,
                     interval_seconds=3600.0, lease_seconds=4.0)
    shared: dict[str, int] = {}
    fakes = [SlowSync(seconds=6.0, overlap_probe=shared), SlowSync(seconds=6.0, overlap_probe=shared)]
    fakes[1].lock = fakes[0].lock
    stores = [SQLitePollSchedule.open(tmp_path / "sched"), SQLitePollSchedule.open(tmp_path / "sched")]
    schedulers = [PollScheduler(config, store, fake, worker=f"w{i}")
                  for i, (store, fake) in enumerate(zip(stores, fakes, strict=True))]
    stopping = threading.Event()
    first = threading.Thread(target=schedulers[0].run_forever, args=(stopping,), kwargs={"stagger": False},
                             daemon=True)
    first.start()
    try:
        deadline = time.monotonic() + 60
        while len(schedulers[0].in_flight()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = threading.Thread(target=schedulers[1].run_forever, args=(stopping,), daemon=True)
        second.start()
        while sum(fakes[0].polls.values()) < 2 or schedulers[0].in_flight():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stopping.set()
        first.join(30)
        second.join(30)
        for store in stores:
            store.close()
    assert fakes[0].overlaps == 0 and fakes[1].overlaps == 0
    assert sum(fakes[1].polls.values()) == 0  # the establishments were never free: polled, then not due
    assert schedulers[0].outcomes == {"ok": 2, "error": 0}


def test_leases_of_a_dead_local_worker_are_released_at_start(tmp_path: Path,
                                                             sqlite_schedule: PollSchedule) -> None:
    from datetime import UTC, datetime

    config = _config(tmp_path, entities=1, per_entity=3, lease_seconds=1800.0)
    pairs = [(eg.finess_eg, ej.finess_ej) for ej, eg in config.establishments()]
    now = datetime.now(UTC)
    sqlite_schedule.ensure(pairs, now, 3600, stagger=False)
    sqlite_schedule.claim("host:dead", now, 1800, 2, 5)
    sqlite_schedule.claim("host:alive", now, 1800, 1, 5)
    fake = SlowSync(seconds=0.0)
    scheduler = PollScheduler(config, sqlite_schedule, fake, worker="host:me", is_dead=lambda w: w == "host:dead")
    report = scheduler.run_all()
    # the dead worker's two establishments are polled at once; the live worker's one is left to it
    assert len(report.establishments) == 2
    rows = {r.finess_eg: r.locked_by for r in sqlite_schedule.snapshot()}
    assert sorted(rows.values(), key=str) == sorted([None, None, "host:alive"], key=str)
