"""The SQLite outbox: backoff, durability, operator actions, late arrivals.

The behaviour both backends share (idempotency, order per decision, isolation of failures, give-up) is tested on
SQLite and PostgreSQL alike in ``tests/postgres/test_outbox_contract.py``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vtdui.config import RetrySettings
from vtdui.outbox import ItemState, NewItem, Outbox, OutboxError, normalize_instant


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _open(path: Path, clock: Clock, **retry: float) -> Outbox:
    settings = RetrySettings(**retry) if retry else RetrySettings(base_delay=1.0, max_delay=60.0,  # type: ignore[arg-type]
                                                                   max_age_seconds=3600.0)
    return Outbox.open(path, settings, clock=clock, rng=random.Random(7))


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Outbox:
    box = _open(tmp_path, clock)
    yield box  # type: ignore[misc]
    box.close()


def _item(decision: str, version: int, eg: str = "750000028", *, kind: str = "task",
          task_id: str | None = None) -> NewItem:
    tid = task_id or f"wl-{decision}"
    return NewItem(kind=kind, idempotency_key=f"Task/{tid}/_history/{version}", id_nat_decision=decision,
                   finess_eg=eg, payload={"resourceType": "Task", "v": version},
                   sequence=normalize_instant(f"2026-05-12T08:{version:02d}:00+02:00"), source_ref=f"Task/{tid}")


def _keys(items: list) -> list[str]:  # type: ignore[type-arg]
    return [i.idempotency_key for i in items]


def test_backoff_full_jitter_and_retry_after(outbox: Outbox, clock: Clock) -> None:
    outbox.enqueue(_item("D1", 1))
    [item] = outbox.claim("w")
    rescheduled = outbox.mark_retry(item, "503 Service Unavailable", retry_after=30.0)
    assert rescheduled.state is ItemState.PENDING
    assert rescheduled.next_attempt_at >= clock.now + timedelta(seconds=30)
    assert rescheduled.last_error == "503 Service Unavailable"
    clock.advance(29)
    assert outbox.claim("w") == []  # Retry-After honoured
    clock.advance(rescheduled.next_attempt_at.timestamp() - clock.now.timestamp())
    [again] = outbox.claim("w")
    assert again.attempts == 2
    # full jitter: the delay is within [0, min(max_delay, base * 2**(n-1))]
    for attempts in range(1, 12):
        delay = outbox.backoff(attempts)
        assert 0 <= delay <= min(60.0, 2 ** (attempts - 1))


def test_restart_durability(tmp_path: Path, clock: Clock) -> None:
    box = _open(tmp_path, clock)
    box.enqueue(_item("D1", 1))
    box.enqueue(_item("D1", 2))
    [head] = box.claim("w-before-crash")
    box.close()  # the process dies while the head is being sent

    reopened = _open(tmp_path, clock)
    assert reopened.enqueue(_item("D1", 2))[1] is False  # still known: not enqueued twice
    assert reopened.claim("w-after") == []  # the lease still holds
    clock.advance(301)  # lease expired: the item is handed out again (at least once)
    [again] = reopened.claim("w-after")
    assert again.id == head.id and again.attempts == 2 and again.locked_by == "w-after"
    reopened.mark_sent(again, {"id": "vt-1"})
    [nxt] = reopened.claim("w-after")
    assert nxt.idempotency_key == "Task/wl-D1/_history/2"
    assert reopened.counts()["sent"] == 1
    reopened.close()


def test_older_item_arriving_while_a_later_one_is_in_flight_is_dropped_when_it_is_accepted(outbox: Outbox) -> None:
    outbox.enqueue(_item("D1", 5))
    [in_flight] = outbox.claim("w")
    late, _ = outbox.enqueue(_item("D1", 4))
    other, _ = outbox.enqueue(_item("D2", 1))
    assert late.state is ItemState.PENDING
    assert _keys(outbox.claim("w2")) == [other.idempotency_key]  # never two items of one decision in flight
    outbox.mark_sent(in_flight, {"id": "vt"})
    dropped = outbox.show(late.id)
    assert dropped.state is ItemState.DROPPED
    assert dropped.last_error is not None and f"item {in_flight.id}" in dropped.last_error
    assert outbox.show(other.id).state is ItemState.SENDING  # another decision is untouched


def test_operator_errors(outbox: Outbox) -> None:
    with pytest.raises(OutboxError, match="does not exist"):
        outbox.show(999)
    outbox.enqueue(_item("D1", 1))
    [item] = outbox.claim("w")
    with pytest.raises(OutboxError, match="sending"):
        outbox.retry(item.id)
    outbox.mark_sent(item, {"id": "vt"})
    with pytest.raises(OutboxError, match="already sent"):
        outbox.drop(item.id)


def test_retry_with_rebuilt_payload(outbox: Outbox) -> None:
    failed, _ = outbox.enqueue_failed(_item("D1", 1), "regle-StatutUnite")
    retried = outbox.retry(failed.id, payload={"resourceType": "Task", "fixed": True})
    assert retried.state is ItemState.PENDING and retried.payload == {"resourceType": "Task", "fixed": True}


def test_release_does_not_count_an_attempt(outbox: Outbox) -> None:
    outbox.enqueue(_item("D1", 1))
    [item] = outbox.claim("w")
    released = outbox.release(item)
    assert released.attempts == 0 and released.state is ItemState.PENDING
    assert _keys(outbox.claim("w")) == [item.idempotency_key]


def test_normalize_instant() -> None:
    assert normalize_instant("2026-05-12T09:30:00+02:00") == "2026-05-12T07:30:00.000+00:00"
    assert normalize_instant("2026-05-12T07:30:00Z") == "2026-05-12T07:30:00.000+00:00"
    fallback = datetime(2026, 1, 1, tzinfo=UTC)
    assert normalize_instant("garbage", fallback) == "2026-01-01T00:00:00.000+00:00"
