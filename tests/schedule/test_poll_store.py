"""The poll schedule stores (SQLite and PostgreSQL) with a fake clock: spreading, fairness, backoff, leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vtdui.schedule import (
    PollRow,
    PollSchedule,
    backoff_delay,
    first_due,
    next_due_after_success,
    phase_fraction,
)

NOW = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
DAY = 86400.0


def _egs(n: int, prefix: str = "75") -> list[str]:
    return [f"{prefix}{index:07d}" for index in range(n)]


def _rows(store: PollSchedule) -> dict[str, PollRow]:
    return {r.finess_eg: r for r in store.snapshot()}


def test_500_new_establishments_are_spread_over_the_interval(store: PollSchedule) -> None:
    pairs = [(eg, f"EJ{index % 10}") for index, eg in enumerate(_egs(500))]
    store.ensure(pairs, NOW, DAY)
    rows = _rows(store)
    assert len(rows) == 500
    offsets = [(r.next_due_at - NOW).total_seconds() for r in rows.values()]
    assert all(0 < o <= DAY for o in offsets)
    buckets = [0] * 10
    for offset in offsets:
        buckets[min(int(offset / DAY * 10), 9)] += 1
    # uniform: 50 expected per tenth of the day (a binomial standard deviation of about 7)
    assert all(20 <= b <= 80 for b in buckets), buckets
    # nothing is due at once: a claim now gets nothing
    assert store.claim("w1", NOW, 60, 50, 50) == []
    # stable: a second ensure (another worker, a restart) does not move them
    store.ensure(pairs, NOW + timedelta(hours=3), DAY)
    assert {eg: r.next_due_at for eg, r in _rows(store).items()} == {eg: r.next_due_at for eg, r in rows.items()}
    # the spreading depends on the FINESS, not on when the establishment was added
    later = NOW + timedelta(days=5, hours=7)
    assert first_due("750000001", later, DAY).timestamp() % DAY == first_due("750000001", NOW, DAY).timestamp() % DAY


def test_poll_now_makes_everything_due_and_removed_establishments_are_dropped(store: PollSchedule) -> None:
    pairs = [(eg, "EJ1") for eg in _egs(6)]
    store.ensure(pairs, NOW, DAY)
    store.ensure([*pairs[:4], ("760000000", "EJ2")], NOW, DAY, stagger=False)
    rows = _rows(store)
    assert sorted(rows) == sorted([eg for eg, _ in pairs[:4]] + ["760000000"])
    assert all(r.next_due_at == NOW for r in rows.values())
    # never polled establishments may be made due at once while the others stay spread
    store.ensure(pairs, NOW, DAY, due_now={pairs[5][0]})
    rows = _rows(store)
    assert rows[pairs[5][0]].next_due_at == NOW
    assert rows[pairs[4][0]].next_due_at > NOW
    assert "760000000" not in rows


def test_claim_takes_the_oldest_due_first_and_an_entity_at_its_limit_does_not_block_others(
        store: PollSchedule) -> None:
    due_order = ["100000000", "100000001", "100000002", "200000000", "300000000", "100000003", "200000001",
                 "300000001", "200000002", "300000002", "100000004"]
    entity = {"1": "A", "2": "B", "3": "C"}
    store.ensure([(eg, entity[eg[0]]) for eg in due_order], NOW, DAY, stagger=False)
    for minutes, eg in enumerate(due_order):
        _set_due(store, eg, NOW + timedelta(minutes=minutes + 1))
    later = NOW + timedelta(hours=1)
    first = store.claim("w1", later, 600, 4, 2)
    # oldest due first across every entity; A at its limit (2) is skipped, it does not block B and C
    assert [r.finess_eg for r in first] == ["100000000", "100000001", "200000000", "300000000"]
    assert all(r.locked_by == "w1" and r.locked_until == later + timedelta(seconds=600) for r in first)
    # another worker: the leases of w1 count (A at 2, B and C at 1)
    second = store.claim("w2", later, 600, 10, 2)
    assert [r.finess_eg for r in second] == ["200000001", "300000001"]
    assert store.claim("w3", later, 600, 10, 2) == []
    # when A's polls end, its next establishments are taken, oldest first
    for row in first[:2]:
        assert store.finish(row.finess_eg, "w1", later, ok=True, error=None, interval=DAY, backoff=300)
    third = store.claim("w2", later, 600, 10, 2)
    assert [r.finess_eg for r in third] == ["100000002", "100000003"]
    leased: dict[str, int] = {}
    for row in store.snapshot():
        if row.leased(later):
            leased[row.finess_ej] = leased.get(row.finess_ej, 0) + 1
    assert leased == {"A": 2, "B": 2, "C": 2}


def _set_due(store: PollSchedule, eg: str, when: datetime) -> None:
    """Put one establishment's due time at ``when`` through the public operations (a failed poll)."""
    [row] = [r for r in store.snapshot() if r.finess_eg == eg]
    claimed = store.claim("setter", row.next_due_at, 1, 1000, 1000, due_by=row.next_due_at)
    assert eg in {r.finess_eg for r in claimed}
    store.release("setter", [r.finess_eg for r in claimed if r.finess_eg != eg])
    backoff = (when - row.next_due_at).total_seconds()
    assert store.finish(eg, "setter", row.next_due_at, ok=False, error="setup", interval=DAY, backoff=backoff)
    assert _rows(store)[eg].next_due_at == when


def test_success_moves_to_the_previous_due_plus_the_interval_without_drift(store: PollSchedule) -> None:
    eg = "750000042"
    store.ensure([(eg, "EJ")], NOW, DAY)
    due = _rows(store)[eg].next_due_at
    for _ in range(3):
        [row] = store.claim("w", due + timedelta(seconds=5), 600, 1, 1)
        # the poll took 37 seconds: the next one is still exactly one interval after the previous due time
        assert store.finish(eg, "w", due + timedelta(seconds=42), ok=True, error=None, interval=DAY, backoff=300)
        after = _rows(store)[eg]
        assert after.next_due_at == due + timedelta(days=1)
        assert after.consecutive_failures == 0 and after.last_success_at == due + timedelta(seconds=42)
        assert after.locked_by is None and after.locked_until is None
        assert row.last_started_at == due + timedelta(seconds=5)
        due = after.next_due_at
    # the process was down 3.5 days: the missed slots are skipped, the phase is kept
    late = due + timedelta(days=3, hours=12)
    store.claim("w", late, 600, 1, 1)
    store.finish(eg, "w", late + timedelta(seconds=1), ok=True, error=None, interval=DAY, backoff=300)
    assert _rows(store)[eg].next_due_at == due + timedelta(days=4)


def test_failures_back_off_exponentially_up_to_the_interval_then_recover(store: PollSchedule) -> None:
    eg = "750000043"
    interval = 3600.0
    store.ensure([(eg, "EJ")], NOW, interval, stagger=False)
    now = NOW
    delays = []
    for _ in range(6):
        [row] = store.claim("w", now, 600, 1, 1)
        assert row.finess_eg == eg
        assert store.finish(eg, "w", now, ok=False, error="flux 1: HTTP 503\n(gave up)" + "x" * 500,
                            interval=interval, backoff=300)
        after = _rows(store)[eg]
        delays.append((after.next_due_at - now).total_seconds())
        assert store.claim("w", now + timedelta(seconds=delays[-1] - 1), 600, 1, 1) == []
        now = after.next_due_at
    assert delays == [300, 600, 1200, 2400, 3600, 3600]
    failing = _rows(store)[eg]
    assert failing.consecutive_failures == 6 and failing.last_success_at is None
    assert failing.last_error is not None and failing.last_error.startswith("flux 1: HTTP 503 (gave up)")
    assert len(failing.last_error) <= 200 and "\n" not in failing.last_error
    # recovery: the failures are forgotten and the establishment goes back to its place in the interval
    store.claim("w", now, 600, 1, 1)
    assert store.finish(eg, "w", now, ok=True, error=None, interval=interval, backoff=300)
    recovered = _rows(store)[eg]
    assert recovered.consecutive_failures == 0 and recovered.last_error is None
    assert recovered.last_success_at == now
    assert 0 < (recovered.next_due_at - now).total_seconds() <= interval
    assert abs((recovered.next_due_at.timestamp() - phase_fraction(eg) * interval) % interval) < 0.01 or \
        abs((recovered.next_due_at.timestamp() - phase_fraction(eg) * interval) % interval - interval) < 0.01


def test_a_dead_workers_lease_expires_and_another_worker_takes_over(store: PollSchedule) -> None:
    pairs = [(eg, "EJ") for eg in _egs(3)]
    store.ensure(pairs, NOW, DAY, stagger=False)
    taken = store.claim("dead", NOW, 600, 10, 10)
    assert len(taken) == 3
    # while the lease runs nobody else gets them
    assert store.claim("alive", NOW + timedelta(seconds=599), 600, 10, 10) == []
    # a renewed lease lasts longer; the dead worker renews nothing
    assert store.renew([taken[0].finess_eg], "alive", NOW, 600) == 0
    assert store.renew([taken[0].finess_eg], "dead", NOW + timedelta(seconds=300), 600) == 1
    after = store.claim("alive", NOW + timedelta(seconds=601), 600, 10, 10)
    assert sorted(r.finess_eg for r in after) == sorted(eg for eg, _ in pairs[1:])
    # the late finish of the dead worker does not overwrite the new poll
    assert not store.finish(pairs[1][0], "dead", NOW + timedelta(seconds=700), ok=True, error=None,
                            interval=DAY, backoff=300)
    assert _rows(store)[pairs[1][0]].locked_by == "alive"
    # at shutdown the live worker releases what it holds (nothing recorded)
    assert store.release("alive") == 2
    rows = _rows(store)
    assert rows[pairs[1][0]].locked_by is None and rows[pairs[1][0]].last_finished_at is None
    assert rows[pairs[0][0]].locked_by == "dead"
    wake = store.next_wakeup(NOW + timedelta(seconds=601))
    assert wake is not None and wake <= NOW + timedelta(seconds=601)


def test_timing_rules() -> None:
    assert backoff_delay(1, 300, DAY) == 300 and backoff_delay(3, 300, DAY) == 1200
    assert backoff_delay(40, 300, DAY) == DAY
    row = PollRow("750000001", "EJ", next_due_at=first_due("750000001", NOW, DAY))
    assert next_due_after_success(row, row.next_due_at + timedelta(minutes=3), DAY) == \
        row.next_due_at + timedelta(days=1)
    off_grid = PollRow("750000001", "EJ", next_due_at=NOW)
    following = next_due_after_success(off_grid, NOW + timedelta(seconds=1), DAY)
    assert NOW < following <= NOW + timedelta(days=1, seconds=1)
    assert following == first_due("750000001", NOW + timedelta(seconds=1), DAY)


def test_postgres_store_refuses_a_database_not_migrated(pg_url: str) -> None:
    import pytest

    from vtdui.errors import ConfigError
    from vtdui.schedule import PostgresPollSchedule

    with pytest.raises(ConfigError, match="vtdui db migrate"):
        PostgresPollSchedule(pg_url)
