"""Outbox throughput with 1, 2 and 4 `vtdui run` workers sharing one PostgreSQL database (opt-in).

Run::

    python -m pytest tests/benchmarks/bench_outbox_workers.py -o python_files='bench_*.py' -m benchmark -s
    VTDUI_BENCH_OUTBOX_ITEMS=600 ...   # a longer queue (even number: two changes per decision)

Real components only: the session's HAPI server, the simulator over mTLS + OAuth2, a fresh database of the
session's PostgreSQL cluster (``vtdui db migrate``), `vtdui run --no-sync` processes.

**The backlog.** M status changes (two per decision, on M/2 work-list items of three establishments) are
made in HAPI while no worker runs, then queued by one reconciliation pass (:meth:`Reconciler.run_once`, in
this process): the situation after a maintenance window or an outage of vtdui, when the workers restart in
front of a backlog that the reconciliation found. No Subscription is installed, so nothing but the
reconciliation queues anything and the workers do delivery only (with REST hooks the receiver would have
queued the same items as they happened; the backlog is the same rows either way).

**The measure.** N workers are started at once in front of M items. N goes 1, 2, 4, then 4, 2, 1 (``REPEATS``
passes, alternately forward and back, so that a drift of the machine's load weighs on every N alike); the
figure of each N is the mean of its runs, and its ratio is against the 1-worker mean of the same session (the
baseline). Timed from the launch of the processes to the
simulator's acceptance of the last ESMSTask (its ``GET /_admin/received`` clock: same host), so the
processes' start-up is included; the rate between the first and the last acceptance (``drain``) is printed
too. Each delivery is the whole pipeline: claim (``FOR UPDATE SKIP LOCKED``), conformance, POST over mTLS,
outcome, AuditEvent written to HAPI. Before the baseline an untimed warm-up round (other decisions) warms
the JVM, the simulator and the database.

Every item must be accepted exactly once and in its decision's order; nothing is asserted about speed. The
figures are printed, written to ``tests/benchmarks/results/outbox_workers.json`` and recorded in the session's
table (:mod:`report`). On a 2-core machine
the HAPI server, PostgreSQL, the simulator and the workers share the same cores: the ratios say how much
the claim lets several workers overlap their waits, not what separate hosts would give.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from outbound_e2e_helpers import free_port, wait_for
from report import Row, note_hapi, note_postgres, ratio, record
from soak_helpers import (
    Deployment,
    Worker,
    child_env,
    id_nat_of,
    status_pair,
    write_config,
)

from vtdui.mapping.worklist import set_business_status
from vtdui.simulator.server import start_simulator

pytestmark = [pytest.mark.benchmark, pytest.mark.integration, pytest.mark.simulator, pytest.mark.timeout(1800)]

ITEMS = int(os.environ.get("VTDUI_BENCH_OUTBOX_ITEMS", "300"))
WORKERS = (1, 2, 4)
#: Passes over WORKERS (alternately forward and back).
REPEATS = int(os.environ.get("VTDUI_BENCH_OUTBOX_REPEATS", "2"))
WARM_UP = 20
#: Statuses each decision walks through, two per run (a valid ESMS sequence, as in the outbound e2e tests).
WALK: tuple[tuple[str, str | None], ...] = (("41", "150"), ("42", None), ("72", None), ("71", None),
                                             ("47", None), ("48", None))
Pair = tuple[str | None, str | None]


def _save(client: httpx.Client, task: dict[str, Any], statut: str, motif: str | None) -> dict[str, Any]:
    """A DUI screen's save of a status (If-Match on the version it holds)."""
    changed = set_business_status(task, statut, reason=motif, date=datetime.now(UTC).date().isoformat())
    version = changed["meta"]["versionId"]
    changed["meta"] = {k: v for k, v in changed["meta"].items() if k in ("profile", "tag")}
    response = client.put(f"Task/{task['id']}", json=changed, headers={"If-Match": f'W/"{version}"'})
    assert response.status_code == 200, response.text
    stored: dict[str, Any] = response.json()
    return stored


def _accepted_since(deployment: Deployment, index: int) -> list[dict[str, Any]]:
    body = httpx.get(f"{deployment.sim.admin_url}/received", params={"since": index}, timeout=60).json()
    return [r for r in body["requests"] if r["method"] == "POST" and r["path"].endswith("/Task")
            and r["status"] == 201 and r.get("body")]


def _queue(deployment: Deployment, tasks: dict[tuple[str, str], dict[str, Any]],
           changes: list[tuple[str, str | None]]) -> tuple[int, float]:
    """Make ``changes`` on every task (no worker runs), then queue them by reconciliation; (items, seconds)."""
    with deployment.fhir() as client:
        for key, task in tasks.items():
            for statut, motif in changes:
                task = _save(client, task, statut, motif)
            tasks[key] = task
    wanted = len(tasks) * len(changes)
    with deployment.runtime() as runtime:
        started = time.perf_counter()
        for _ in range(10):
            runtime.reconciler.run_once()
            counts = runtime.outbox.counts()
            if counts["pending"] >= wanted:
                break
        seconds = time.perf_counter() - started
        counts = runtime.outbox.counts()
    assert counts["pending"] == wanted and counts["sending"] == counts["failed"] == 0, (counts, wanted)
    return wanted, seconds


def _deliver(deployment: Deployment, workers: list[Worker], expected: dict[tuple[str, str], list[Pair]],
             ) -> dict[str, Any]:
    """Start the workers at once, wait for every expected ESMSTask; return the figures of the run."""
    total = sum(len(v) for v in expected.values())
    index = len(deployment.sim.context.state.received_since(0))
    load_before = os.getloadavg()[0]  # other work on the machine (other test sessions) skews the figures
    machine_before = _machine_cpu()
    own_before = time.process_time()
    launched = datetime.now(UTC)
    for worker in workers:
        worker.start("--no-sync", wait=False)
    try:
        accepted = wait_for(lambda: (found := _accepted_since(deployment, index)) and len(found) >= total and found,
                            f"{total} ESMSTasks accepted", timeout=900, pause=0.2)
        machine_after = _machine_cpu()
        own_seconds = time.process_time() - own_before
        sent_by = []
        workers_cpu = 0.0
        for worker in workers:
            worker.wait_healthy()
            sent_by.append(int(worker.metrics().get('vtdui_emissions_total{flux="4",outcome="sent"}', 0)))
            assert worker.process is not None
            workers_cpu += _process_cpu(worker.process.pid)
    finally:
        for worker in workers:
            worker.stop()
    got: dict[tuple[str, str], list[Pair]] = {}
    for request in accepted:
        got.setdefault((id_nat_of(request["body"]) or "", request["struct_idnat"][1:]), []).append(
            status_pair(request["body"]))
    assert got == expected, "not every item was accepted exactly once, in order"
    with deployment.runtime() as runtime:
        counts = runtime.outbox.counts()
    assert counts["pending"] == counts["sending"] == counts["failed"] == 0, counts
    times = sorted(datetime.fromisoformat(r["at"]) for r in accepted)
    wall = (times[-1] - launched).total_seconds()
    drain = (times[-1] - times[0]).total_seconds()
    return {"workers": len(workers), "items": total, "seconds": round(wall, 3),
            "items_per_second": round(total / wall, 1), "first_acceptance_seconds": round(
                (times[0] - launched).total_seconds(), 3), "drain_seconds": round(drain, 3),
            "drain_items_per_second": round((total - 1) / drain, 1) if drain > 0 else None,
            "sent_by_worker": sent_by,
            # where the CPU went between the launch and the last acceptance (2 cores shared by everything)
            "machine_cpu_busy_percent": round(100 * _busy(machine_before, machine_after), 1),
            "load_average_1min_before": round(load_before, 2),
            "workers_cpu_seconds": round(workers_cpu, 2),
            "simulator_and_bench_cpu_seconds": round(own_seconds, 2)}


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_outbox_throughput_with_1_2_4_workers(hapi: Any, postgres: Any, tmp_path: Path) -> None:
    assert ITEMS % 2 == 0 and REPEATS >= 1
    order = [n for index in range(REPEATS) for n in (WORKERS if index % 2 == 0 else WORKERS[::-1])]
    seed = random.SystemRandom().randrange(1, 10**9)
    database_url = postgres.fresh_database("bench")
    note_hapi(hapi)
    note_postgres(database_url)
    sim = start_simulator(tmp_path / "simulator", seed=seed, n_decisions=1, port=0, admin_port=0,
                          hapi_base_url=hapi.base_url)
    try:
        info = sim.info
        ours = [e["finess_eg"] for entity in info["legal_entities"] for e in entity["establishments"]
                if not e["is_esat"]][:3]
        config_path = write_config(tmp_path / "vtdui.toml", sim, ours, state_dir=tmp_path / "dui-state",
                                   hapi_base_url=hapi.base_url, receiver_port=free_port(),
                                   receiver_secret=secrets.token_urlsafe(24), database_url=database_url,
                                   sync_interval=3600, reconcile_seconds=300, log_level="WARNING")
        env = child_env(None, database_url)  # no `vtdui setup`: no Subscription, only the reconciliation queues
        deployment = Deployment(sim=sim, config_path=config_path, tmp=tmp_path, hapi_base_url=hapi.base_url,
                                child_env=env, database_url=database_url)
        deployment.migrate()
        # -- decisions in the work list (one inbound cycle in this process), the reconciliation cursor started --
        decisions = [deployment.new_decision([ours[i % len(ours)]]) for i in range(ITEMS // 2 + WARM_UP)]
        with deployment.runtime() as runtime:
            report = runtime.sync.run_once()
            assert report.ok, [r.errors for r in report.establishments]
            runtime.reconciler.run_once()  # first pass: the cursor starts now
        tasks: dict[tuple[str, str], dict[str, Any]] = {}
        with deployment.fhir() as client:
            for decision in decisions:
                eg = decision["notified_to"][0]
                task = deployment.worklist_task(decision["id_nat_decision"], eg, client)
                assert task is not None, decision
                tasks[(decision["id_nat_decision"], eg)] = task
        keys = list(tasks)
        warm = {k: tasks[k] for k in keys[:WARM_UP]}
        timed = {k: tasks[k] for k in keys[WARM_UP:]}
        # -- untimed warm-up: one worker, other decisions -------------------------------------------------------
        _queue(deployment, warm, [("41", "153")])
        _deliver(deployment, [deployment.worker("warm-up", free_port())], {k: [("41", "153")] for k in warm})
        runs: list[dict[str, Any]] = []
        for round_index, n in enumerate(order):
            changes = [WALK[(2 * round_index) % len(WALK)], WALK[(2 * round_index + 1) % len(WALK)]]
            queued, queue_seconds = _queue(deployment, timed, changes)
            assert queued == ITEMS
            workers = [deployment.worker(f"n{n}-{i + 1}", free_port()) for i in range(n)]
            figures = _deliver(deployment, workers, {k: list(changes) for k in timed})
            figures["queued_by_reconciliation_seconds"] = round(queue_seconds, 3)
            runs.append(figures)
    finally:
        sim.stop()
    summary = _summary(runs)
    base = summary[0]
    rows = [Row(f"outbox delivery, {row['workers']} `vtdui run` workers on PostgreSQL ({ITEMS} queued items "
                f"per run, mean of {row['runs']} runs)",
                f"{row['items_per_second']:.1f} items/s (drain {row['drain_items_per_second']:.1f} items/s)",
                f"{base['items_per_second']:.1f} items/s (drain {base['drain_items_per_second']:.1f} items/s) "
                "with 1 worker",
                f"{ratio(row['ratio_vs_1_worker'])} (drain {ratio(row['drain_ratio_vs_1_worker'])})")
            for row in summary if row["workers"] != base["workers"]]
    path = record("outbox_workers", rows, {
        "description": "outbox throughput of N `vtdui run --no-sync` workers on one PostgreSQL database: a "
                       "backlog of status changes queued by reconciliation, delivered to the simulator "
                       "(mTLS + OAuth2, AuditEvent per delivery in HAPI); seconds from the launch of the "
                       "workers to the last acceptance; summary = mean of the runs of each N",
        "backend": "postgresql", "items_per_run": ITEMS, "decisions": len(timed), "summary": summary,
        "runs": runs})
    print()
    print(f"outbox workers, PostgreSQL, {ITEMS} queued status changes per run ({len(timed)} decisions x 2), "
          f"{os.cpu_count()} CPU(s) shared with HAPI, PostgreSQL and the simulator; every run:")
    print(f"  {'workers':>7}  {'seconds':>8}  {'items/s':>8}  {'drain items/s':>13}  {'1st accept s':>12}  "
          f"{'CPU busy':>8}  {'load':>5}  {'workers CPU s':>13}  sent by worker")
    for run in runs:
        print(f"  {run['workers']:>7}  {run['seconds']:>8.2f}  {run['items_per_second']:>8.1f}  "
              f"{run['drain_items_per_second'] or 0:>13.1f}  {run['first_acceptance_seconds']:>12.2f}  "
              f"{run['machine_cpu_busy_percent']:>7.0f}%  {run['load_average_1min_before']:>5.1f}  "
              f"{run['workers_cpu_seconds']:>13.1f}  {run['sent_by_worker']}")
    print(f"  mean of {REPEATS} run(s) per N ('load': 1-min load average before the run):")
    print(f"  {'workers':>7}  {'items/s':>8}  {'ratio':>6}  {'drain items/s':>13}  {'drain ratio':>11}")
    for row in summary:
        print(f"  {row['workers']:>7}  {row['items_per_second']:>8.1f}  {row['ratio_vs_1_worker']:>6.2f}  "
              f"{row['drain_items_per_second']:>13.1f}  {row['drain_ratio_vs_1_worker']:>11.2f}")
    print(f"  every item accepted exactly once, in its decision's order; figures in {path}")


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean items/s (from launch, and drain) per N, and the ratios against the 1-worker mean."""
    rows: list[dict[str, Any]] = []
    for n in WORKERS:
        mine = [r for r in runs if r["workers"] == n]
        rows.append({"workers": n, "runs": len(mine),
                     "items_per_second": round(statistics.mean(r["items_per_second"] for r in mine), 1),
                     "drain_items_per_second": round(statistics.mean(r["drain_items_per_second"] or 0.0
                                                                     for r in mine), 1),
                     "seconds": round(statistics.mean(r["seconds"] for r in mine), 3)})
    base = rows[0]
    for row in rows:
        row["ratio_vs_1_worker"] = round(row["items_per_second"] / base["items_per_second"], 2)
        row["drain_ratio_vs_1_worker"] = round(row["drain_items_per_second"] / base["drain_items_per_second"], 2)
    return rows
