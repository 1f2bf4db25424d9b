"""Several `vtdui run` workers on one PostgreSQL database: every change once, in per-decision order, under faults.

Acceptance: two and four workers on PostgreSQL deliver every change exactly once and in per-decision order
under injected faults, and a killed worker's items are finished by the others.

Each test starts N workers on the same configuration (the first is the Subscriptions' receiver and syncs; the
others run ``--no-sync`` on ports of their own), then plays the DUI user: four status changes per decision,
in rounds over its decisions, while the simulator answers some ``POST /fhir/Task`` with 503, 429 (with
Retry-After) or drops the connection. In the middle a ``delay`` fault holds requests longer than the client's
timeout; the first non-receiver worker caught in one (found from the TCP connection the simulator holds) is
killed with SIGKILL. The simulator does not handle a held request whose client went away, so the killed
worker's in-flight POST is not applied; its claimed items stay ``sending`` until their lease (5 s) expires
and the surviving workers take them over.

Which path moves the changes: each worker reconciles every 5 s (``multiworker_helpers``), so a change reaches
the outbox through HAPI's Subscription or the reconciliation, whichever comes first (an item's
``origin.via`` says which). These tests are about delivery by several workers (once, in order, under faults
and a kill), not about how a change is found; the Subscription path alone is proven by
``tests/e2e/outbound/test_subscription_path.py``, the reconciliation path alone in ``test_outbound_e2e.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from multiworker_helpers import (
    CLIENT_TIMEOUT,
    LEASE_SECONDS,
    WORKER_COUNTS,
    MultiEnv,
    OutboundEnv,
    Worker,
    accepted_statuses,
    decision_of,
    pg,
    pid_holding,
    start_workers,
    status_counts,
    task_posts,
    wait_for,
)

from vtdui.simulator.faults import HeldRequest
from vtdui.simulator.fhir_api import CLIENT_CLOSED

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

#: The DUI user's changes of each decision, in order (valid transitions of the work list, as in bench_outbound).
CHANGES = (("41", "150"), ("42", None), ("72", None), ("71", None))
EXPECTED = [(statut, motif, None, None) for statut, motif in CHANGES]
#: How long the ``delay`` fault holds a request: longer than the client waits, so every held client leaves.
HOLD_SECONDS = 3 * CLIENT_TIMEOUT
ROUTE = "POST /fhir/Task*"


@dataclass
class Kill:
    """The worker killed while the simulator held one of its requests."""

    worker: Worker
    lease_name: str
    held: HeldRequest
    at: datetime
    #: outbox items it had claimed (``sending``, ``locked_by`` it) when it died
    claimed: list[int] = field(default_factory=list)


def _arm_faults(env: OutboundEnv) -> None:
    """A wave of passing faults on the ESMSTask POSTs (consumed in this order by whichever worker sends)."""
    env.fault(route=ROUTE, status=503, count=3)
    env.fault(route=ROUTE, action="drop", count=2)
    env.fault(route=ROUTE, status=429, retry_after=1, count=3)
    env.fault(route=ROUTE, action="drop", count=1)
    env.fault(route=ROUTE, status=503, retry_after=1, count=2)


def _change_round(env: OutboundEnv, tasks: dict[str, dict[str, Any]], index: int,
                  between: Any = None) -> None:
    statut, motif = CHANGES[index]
    for id_nat, task in tasks.items():
        tasks[id_nat] = env.user_change(task, statut, motif)
        if between is not None:
            between()


class _Killer:
    """Arms a ``delay`` on the ESMSTask POSTs and SIGKILLs the first non-receiver worker caught in one."""

    def __init__(self, env: OutboundEnv, pool: list[Worker], database_url: str) -> None:
        self.env = env
        self.pool = pool
        self.database_url = database_url
        self.sim_port = int(urlparse(env.sim.fhir_base_url).port or 443)
        self.arms = 0
        self.kill: Kill | None = None

    def arm(self) -> None:
        self.arms += 1
        self.env.fault(route=ROUTE, action="delay", delay=HOLD_SECONDS, count=len(self.pool))

    def poll(self) -> None:
        """Kill a held worker if there is one (at most one kill); re-arm when the delay was used up in vain."""
        if self.kill is not None:
            return
        candidates = {w.pid: w for w in self.pool if not w.receiver and w.process.running()}
        for held in self.env.sim.context.faults.held():
            if held.client is None or time.monotonic() - held.since > CLIENT_TIMEOUT - 0.5:
                continue  # its client is about to give up (or gave up): not in flight any more
            pid = pid_holding(held.client[1], self.sim_port, list(candidates))
            if pid is None:
                continue
            victim = candidates[pid]
            lease_name = victim.lease_name
            victim.process.kill()
            at = datetime.now(UTC)
            with pg(self.database_url) as conn:
                rows = conn.execute("SELECT id FROM outbox WHERE state = 'sending' AND locked_by = %s ORDER BY id",
                                    (lease_name,)).fetchall()
            self.kill = Kill(victim, lease_name, held, at, [int(r[0]) for r in rows])
            return
        armed = any(r.action == "delay" for r in self.env.sim.context.faults.rules())
        if not armed and self.arms < 8:
            self.arm()

    def wait(self, timeout: float) -> Kill:
        deadline = time.monotonic() + timeout
        while self.kill is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no non-receiver worker was caught in a held request ({self.arms} delays armed)")
            self.poll()
            time.sleep(0.02)
        return self.kill


def _outbox(database_url: str, id_nats: list[str]) -> list[dict[str, Any]]:
    with pg(database_url) as conn:
        cursor = conn.execute("SELECT id, id_nat_decision, sequence, state, attempts, sent_at, locked_by "
                              "FROM outbox WHERE id_nat_decision = ANY(%s) ORDER BY id", (id_nats,))
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _exchanges(database_url: str, item_ids: list[int]) -> list[dict[str, Any]]:
    with pg(database_url) as conn:
        cursor = conn.execute("SELECT item_id, status, worker, attempt, started_at, error FROM exchanges "
                              "WHERE item_id = ANY(%s) ORDER BY id", (item_ids,))
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _summary(workers: int, n_decisions: int, items: list[dict[str, Any]], exchanges: list[dict[str, Any]],
             received: list[dict[str, Any]], killer: _Killer, started_s: float, delivered_s: float) -> str:
    counts = status_counts(received)
    attempts = sum(i["attempts"] for i in items)
    kill = killer.kill
    killed = (f"killed worker {kill.worker.index} ({kill.lease_name}) holding {len(kill.claimed)} item(s) "
              f"{kill.claimed}" if kill else "no kill")
    accepting = sorted({str(e["worker"]) for e in exchanges if e["status"] == 201 and e["worker"]})
    return (f"[multiworker n={workers}] {n_decisions} decisions x {len(CHANGES)} changes = {len(items)} items; "
            f"workers started in {started_s:.1f}s, all accepted {delivered_s:.1f}s after start; "
            f"POST /fhir/Task statuses {dict(sorted(counts.items()))} (0 = dropped, 499 = client left a held "
            f"request); outbox attempts {attempts} (retries {attempts - len(items)}), exchanges {len(exchanges)}; "
            f"delays armed {killer.arms}; {killed}; accepting workers {accepting}")


def _diagnosis(id_nats: list[str], items: list[dict[str, Any]], exchanges: list[dict[str, Any]],
               kill: Kill | None) -> str:
    """Outbox items and exchanges of the given decisions, for a failure message."""
    lines = [f"killed: {kill.lease_name} at {kill.at.isoformat()} holding {kill.claimed}" if kill else "no kill"]
    for id_nat in id_nats:
        lines.append(f"decision {id_nat}:")
        for item in (i for i in items if i["id_nat_decision"] == id_nat):
            lines.append(f"  item {item['id']} seq {item['sequence']} {item['state']} attempts {item['attempts']} "
                         f"sent_at {item['sent_at'].isoformat() if item['sent_at'] else None}")
            for e in (e for e in exchanges if e["item_id"] == item["id"]):
                lines.append(f"    {e['started_at'].isoformat()} {e['worker']} attempt {e['attempt']} -> "
                             f"{e['status']} {e['error'] or ''}")
    return "\n".join(lines)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", WORKER_COUNTS)
def test_workers_deliver_every_change_once_in_order_under_faults_and_a_kill(multi: MultiEnv, workers: int) -> None:
    env = multi.outbound
    id_nats = [d["id_nat_decision"] for d in multi.decisions[workers]]
    tasks = {i: multi.tasks[i] for i in id_nats}
    admin = httpx.Client(base_url=env.sim.admin_url + "/", timeout=30)
    since = len(admin.get("received").json()["requests"])
    t0 = time.monotonic()
    pool = start_workers(env, workers, multi.host, multi.receiver_port, f"n{workers}")
    started_s = time.monotonic() - t0
    try:
        # -- two rounds of changes under passing faults ----------------------------------------------------
        _arm_faults(env)
        _change_round(env, tasks, 0)
        _change_round(env, tasks, 1)
        # -- third round while a delay holds requests: a non-receiver worker caught in one is killed -------
        killer = _Killer(env, pool, multi.database_url)
        killer.arm()
        _change_round(env, tasks, 2, between=killer.poll)
        kill = killer.wait(timeout=60)
        # -- last round, more passing faults ---------------------------------------------------------------
        _arm_faults(env)
        _change_round(env, tasks, 3)

        def all_accepted() -> bool:
            received = admin.get("received", params={"since": since}).json()["requests"]
            return all(len(s) >= len(CHANGES) for s in accepted_statuses(received, id_nats).values())

        wait_for(all_accepted, "every change accepted by the simulator", timeout=180, pause=0.5)
        delivered_s = time.monotonic() - t0
        wait_for(lambda: all(i["state"] == "sent" for i in _outbox(multi.database_url, id_nats)),
                 "every outbox item sent", timeout=30)
        # late duplicates would come from a lease taken over while its worker was still sending: give them time,
        # and let the held requests end (their 499 records)
        wait_for(lambda: not env.sim.context.faults.held(), "the held requests to end", timeout=HOLD_SECONDS + 5)
        time.sleep(LEASE_SECONDS)
        received = admin.get("received", params={"since": since}).json()["requests"]
        items = _outbox(multi.database_url, id_nats)
        exchanges = _exchanges(multi.database_url, [i["id"] for i in items])
        print("\n" + _summary(workers, len(id_nats), items, exchanges, received, killer, started_s, delivered_s))

        # every change once, in the order made, for every decision
        statuses = accepted_statuses(received, id_nats)
        wrong = {i: s for i, s in statuses.items() if s != EXPECTED}
        assert wrong == {}, f"{len(wrong)} decision(s) not delivered exactly once in order: {wrong}\n" + \
            _diagnosis(sorted(wrong), items, exchanges, kill)
        # the outbox agrees: one item per change, all sent, in sequence order per decision
        assert len(items) == len(CHANGES) * len(id_nats)
        assert {i["state"] for i in items} == {"sent"}
        for id_nat in id_nats:
            mine = [i for i in items if i["id_nat_decision"] == id_nat]
            assert [i["id"] for i in sorted(mine, key=lambda i: i["sent_at"])] == \
                [i["id"] for i in sorted(mine, key=lambda i: (i["sequence"], i["id"]))]

        # the killed worker's in-flight POST was not applied (the simulator recorded it as 499, client gone)
        held_decision = decision_of(kill.held.body)
        assert held_decision is not None
        closed = [r for r in task_posts(received) if r["status"] == CLIENT_CLOSED
                  and decision_of(r.get("body")) == held_decision]
        assert closed, "the killed worker's held request was not recorded as 499"
        # its claimed items were finished by the others, after its death
        assert kill.claimed, "the worker was killed while it held no outbox item (the test proved less)"
        by_id = {i["id"]: i for i in items}
        for item_id in kill.claimed:
            assert by_id[item_id]["state"] == "sent" and by_id[item_id]["sent_at"] > kill.at
            accepted = [e for e in exchanges if e["item_id"] == item_id and e["status"] == 201]
            assert len(accepted) == 1, accepted
            if accepted[0]["worker"] is not None:
                assert accepted[0]["worker"] != kill.lease_name

        # every surviving worker stops cleanly
        for worker in pool:
            if worker.process.running():
                assert worker.process.stop() == 0, worker.process.log_tail()
    finally:
        admin.close()
        for worker in pool:
            if worker.process.running():
                worker.process.kill()
        env.clear_faults()
