"""The outbox policy behaves the same over the SQLite and the PostgreSQL backend (every test runs on both)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from tests.postgres.conftest import Clock

from vtdui.outbox import ItemState, NewItem, Outbox, OutboxError, OutboxItem, normalize_instant


def _item(decision: str, version: int, eg: str = "750000028", *, kind: str = "task") -> NewItem:
    tid = f"wl-{decision}"
    return NewItem(kind=kind, idempotency_key=f"Task/{tid}/_history/{version}", id_nat_decision=decision,
                   finess_eg=eg, payload={"resourceType": "Task", "v": version, "b": "é"},
                   sequence=normalize_instant(f"2026-05-12T08:{version:02d}:00+02:00"), source_ref=f"Task/{tid}",
                   origin={"change": version})


def _keys(items: Sequence[OutboxItem]) -> list[str]:
    return [i.idempotency_key for i in items]


def test_same_resource_version_is_enqueued_once(outbox: Outbox) -> None:
    first, created = outbox.enqueue(_item("D1", 1))
    again, created_again = outbox.enqueue(_item("D1", 1))
    assert created and not created_again
    assert again.id == first.id
    assert first.payload == {"resourceType": "Task", "v": 1, "b": "é"} and first.origin == {"change": 1}
    assert first.state is ItemState.PENDING and first.attempts == 0 and first.flux == "4"
    assert outbox.backend.get_by_key(first.idempotency_key) == first
    assert len(outbox.list()) == 1


def test_fifo_per_decision_one_item_in_flight(outbox: Outbox) -> None:
    for v in (1, 2, 3):
        outbox.enqueue(_item("D1", v))
    outbox.enqueue(_item("D2", 1))
    claimed = outbox.claim("w1")
    assert sorted(_keys(claimed)) == ["Task/wl-D1/_history/1", "Task/wl-D2/_history/1"]
    assert all(i.state is ItemState.SENDING and i.locked_by == "w1" and i.attempts == 1 for i in claimed)
    assert outbox.claim("w2") == []  # the heads are leased: nothing else is eligible
    for item in claimed:
        sent = outbox.mark_sent(item, {"id": "x"})
        assert sent.state is ItemState.SENT and sent.sent_at is not None and sent.response == {"id": "x"}
    assert _keys(outbox.claim("w1")) == ["Task/wl-D1/_history/2"]


def test_claim_limit_and_filters(outbox: Outbox) -> None:
    for decision in ("D1", "D2", "D3"):
        outbox.enqueue(_item(decision, 1))
    outbox.enqueue(_item("D4", 1, eg="750000036"))
    assert len(outbox.claim("w", limit=2)) == 2
    assert len(outbox.claim("w", limit=5)) == 2
    assert _keys(outbox.list(finess_eg="750000036")) == ["Task/wl-D4/_history/1"]
    assert len(outbox.list(states=["sending"], limit=3)) == 3
    assert outbox.counts() == {"pending": 0, "sending": 4, "sent": 0, "failed": 0, "dropped": 0}
    assert outbox.oldest_pending_age() == 0.0


def test_order_follows_the_local_changes_not_the_enqueue_order(outbox: Outbox) -> None:
    outbox.enqueue(_item("D1", 3))
    outbox.enqueue(_item("D1", 2))
    assert _keys(outbox.claim("w")) == ["Task/wl-D1/_history/2"]


def test_a_failed_decision_blocks_only_itself_until_retry_or_drop(outbox: Outbox) -> None:
    for decision in ("D1", "D2"):
        outbox.enqueue(_item(decision, 1))
        outbox.enqueue(_item(decision, 2))
    first = {i.idempotency_key: i for i in outbox.claim("w")}
    outbox.mark_failed(first["Task/wl-D1/_history/1"], "refused: 422")
    outbox.mark_sent(first["Task/wl-D2/_history/1"], {"id": "t1"})
    assert _keys(outbox.claim("w")) == ["Task/wl-D2/_history/2"]
    assert outbox.claim("w") == []
    blocked = outbox.list(id_nat_decision="D1", states=["pending"])[0]
    assert [b.idempotency_key for b in outbox.blocked_by(blocked)] == ["Task/wl-D1/_history/1"]
    outbox.retry(first["Task/wl-D1/_history/1"].id)
    assert _keys(outbox.claim("w")) == ["Task/wl-D1/_history/1"]


def test_drop_unblocks_the_decision(outbox: Outbox) -> None:
    failed, _ = outbox.enqueue_failed(_item("D1", 1), "ASS_A32: status 45 needs a motif", {"issue": []})
    assert failed.state is ItemState.FAILED and failed.outcome == {"issue": []}
    outbox.enqueue(_item("D1", 2))
    assert outbox.claim("w") == []
    dropped = outbox.drop(failed.id, "fixed in the DUI by version 2")
    assert dropped.state is ItemState.DROPPED and dropped.last_error == "fixed in the DUI by version 2"
    assert _keys(outbox.claim("w")) == ["Task/wl-D1/_history/2"]


def test_backoff_and_retry_after(outbox: Outbox, clock: Clock) -> None:
    outbox.enqueue(_item("D1", 1))
    [item] = outbox.claim("w")
    rescheduled = outbox.mark_retry(item, "503 Service Unavailable", retry_after=30.0)
    assert rescheduled.state is ItemState.PENDING and rescheduled.locked_by is None
    assert rescheduled.next_attempt_at >= clock.now + timedelta(seconds=30)
    clock.advance(29)
    assert outbox.claim("w") == []  # Retry-After honoured
    clock.advance((rescheduled.next_attempt_at - clock.now).total_seconds() + 0.001)
    [again] = outbox.claim("w")
    assert again.attempts == 2


def test_gives_up_after_max_age(outbox_factory: Callable[..., Outbox], clock: Clock) -> None:
    box = outbox_factory(base_delay=10.0, max_delay=10.0, max_age_seconds=60.0)
    box.enqueue(_item("D1", 1))
    box.enqueue(_item("D2", 1))
    for _ in range(20):
        items = [i for i in box.claim("w") if i.id_nat_decision == "D1"]
        if items and box.mark_retry(items[0], "connection refused").state is ItemState.FAILED:
            break
        clock.advance(10)
    [failed] = box.list(states=["failed"])
    assert failed.id_nat_decision == "D1"
    assert failed.last_error is not None and failed.last_error.startswith("gave up after")
    assert "connection refused" in failed.last_error


def test_restart_durability_and_lease_expiry(outbox_factory: Callable[..., Outbox], clock: Clock) -> None:
    box = outbox_factory()
    box.enqueue(_item("D1", 1))
    box.enqueue(_item("D1", 2))
    [head] = box.claim("w-before-crash")
    box.close()  # the process dies while the head is being sent
    reopened = outbox_factory()
    assert reopened.enqueue(_item("D1", 2))[1] is False
    assert reopened.claim("w-after") == []  # the lease still holds
    clock.advance(301)
    [again] = reopened.claim("w-after")
    assert again.id == head.id and again.attempts == 2 and again.locked_by == "w-after"
    reopened.mark_sent(again, {"id": "vt-1"})
    [nxt] = reopened.claim("w-after")
    assert nxt.idempotency_key == "Task/wl-D1/_history/2"
    assert reopened.counts()["sent"] == 1


def test_late_older_item_is_dropped_not_sent(outbox: Outbox) -> None:
    outbox.enqueue(_item("D1", 5))
    [item] = outbox.claim("w")
    outbox.mark_sent(item, {"id": "vt"})
    late, created = outbox.enqueue(_item("D1", 4))
    assert created and late.state is ItemState.DROPPED
    assert late.last_error is not None and "later change" in late.last_error
    assert outbox.claim("w") == []


def test_operator_errors_and_rebuilt_payload(outbox: Outbox) -> None:
    with pytest.raises(OutboxError, match="does not exist"):
        outbox.show(999)
    with pytest.raises(OutboxError, match="does not exist"):
        outbox.backend.update(999, now=outbox.clock(), last_error="x")
    with pytest.raises(ValueError, match="not an outbox column"):
        outbox.backend.update(1, now=outbox.clock(), id=3)
    outbox.enqueue(_item("D1", 1))
    [item] = outbox.claim("w")
    with pytest.raises(OutboxError, match="sending"):
        outbox.retry(item.id)
    outbox.mark_sent(item, {"id": "vt"})
    with pytest.raises(OutboxError, match="already sent"):
        outbox.drop(item.id)
    failed, _ = outbox.enqueue_failed(_item("D2", 1), "regle-StatutUnite")
    retried = outbox.retry(failed.id, payload={"resourceType": "Task", "fixed": True})
    assert retried.state is ItemState.PENDING and retried.payload == {"resourceType": "Task", "fixed": True}


def test_release_and_recover(outbox: Outbox) -> None:
    outbox.enqueue(_item("D1", 1))
    outbox.enqueue(_item("D2", 1))
    first, second = outbox.claim("w")
    released = outbox.release(first)
    assert released.attempts == 0 and released.state is ItemState.PENDING
    [recovered] = outbox.recover(lambda worker: worker == "w")
    assert recovered.id == second.id and recovered.state is ItemState.PENDING
    assert sorted(_keys(outbox.claim("w2"))) == sorted([first.idempotency_key, second.idempotency_key])


def test_earlier_item_waits_while_a_later_one_is_in_flight(outbox: Outbox) -> None:
    """An operator retry (or a late arrival) of an earlier item never runs beside a later one in flight."""
    dropped, _ = outbox.enqueue_failed(_item("D1", 1), "refused")
    outbox.drop(dropped.id)
    outbox.enqueue(_item("D1", 2))
    [later] = outbox.claim("w1")
    assert later.idempotency_key == "Task/wl-D1/_history/2"
    outbox.retry(dropped.id)
    if outbox.backend.__class__.__name__ == "PostgresOutboxBackend":
        assert outbox.claim("w2") == []  # one item of a decision in flight at a time
        outbox.mark_sent(later, {"id": "vt"})
        assert _keys(outbox.claim("w2")) == ["Task/wl-D1/_history/1"]


def test_live_worker_keeps_its_items_by_renewing_and_loses_them_only_after_expiry(outbox: Outbox, clock: Clock) -> None:
    outbox.enqueue(_item("D1", 1))
    outbox.enqueue(_item("D2", 1))
    first, second = outbox.claim("w1")
    clock.advance(outbox.lease.total_seconds() * 0.9)
    assert outbox.renew("w1")  # the heartbeat of a live worker
    clock.advance(outbox.lease.total_seconds() * 0.9)
    assert outbox.claim("w2") == []  # renewed: nobody else may take them
    assert outbox.renew("w1", first)  # just before sending the first one
    clock.advance(outbox.lease.total_seconds() * 0.2)  # w1 stalls in that send past the second one's lease
    [taken] = outbox.claim("w2")
    assert taken.id == second.id and taken.locked_by == "w2"
    assert not outbox.renew("w1", second)  # w1 must not send it any more
    assert outbox.renew("w2", taken)
    assert not outbox.renew("w3")  # a worker holding nothing renews nothing
