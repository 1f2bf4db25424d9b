"""Outbound latency and throughput benchmark (opt-in, not collected by default).

Run::

    python -m pytest tests/e2e/outbound/bench_outbound.py -m benchmark -s

Real components only (the session's HAPI server, the simulator over mTLS + OAuth2, `vtdui run` as a
subprocess). It measures:

* **latency on the Subscription path alone** of 200 status changes (50 work-list items x 4 changes, one every
  0.1 s), `vtdui run` with ``outbox.reconcile_seconds`` at an hour (every item is checked to have come
  through HAPI's delivery, ``origin.via = hook``): from just before the DUI's ``PUT Task`` in HAPI to the
  moment the simulator recorded its answer to the ESMSTask POST (``GET /_admin/received`` ``at``; same host,
  same clock), as p50 / p99;
* **latency on the reconciliation path alone**: 50 changes with vtdui's Subscriptions off and
  ``reconcile_seconds`` = 5 (every item ``origin.via = reconciliation``), p50 / p99, a separate row;
* the **baseline** in the same run: 200 direct ``ViaTrajectoireClient.post_task`` calls of an ESMSTask
  (the network, TLS, token and simulator part alone), as p50 / p99, and the ratios pipeline / baseline;
* the **throughput** of the outbox worker: 100 changes made while `vtdui run` is stopped, queued by one
  reconciliation pass, then delivered by ``Emitter.run_pending`` (items per second).

Figures are printed, written to ``tests/benchmarks/results/outbound.json`` and recorded in the session's table
(``tests/benchmarks/report.py``); nothing is asserted on time (only that every change arrived, once, in order).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from outbound_e2e_helpers import OutboundEnv, ServiceProcess, free_port, status_key, wait_for, wind_down

from vtdui.config import load_config
from vtdui.runtime import Runtime
from vtdui.viatrajectoire.client import ViaTrajectoireClient

_BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCHMARKS not in sys.path:
    sys.path.insert(0, _BENCHMARKS)

import report  # noqa: E402 - tests/benchmarks/report.py: the session's table and results/*.json

pytestmark = [pytest.mark.benchmark, pytest.mark.integration, pytest.mark.simulator]

N_ITEMS = 50
CHANGES = (("41", "150"), ("42", None), ("72", None), ("71", None))
THROUGHPUT_CHANGES = (("47", None), ("48", None))
#: Seconds between two changes of the latency phase (10 changes per second).
PACE = 0.1
#: ``outbox.reconcile_seconds`` of the reconciliation-path row.
RECONCILE_SECONDS = 5
RECONCILE_CHANGES = ("45", "118")


@pytest.fixture(scope="module")
def reconcile_seconds() -> float:
    """An hour: the latency rows of the Subscription path measure HAPI's delivery, never the safety net."""
    return 3600


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _accepted(admin: httpx.Client) -> list[dict[str, Any]]:
    body = admin.get("received").json()
    return [r for r in body["requests"] if r["method"] == "POST" and r["status"] == 201 and r["body"]]


@pytest.mark.timeout(1800)
def test_outbound_latency_and_throughput(env: tuple[OutboundEnv, dict[str, dict[str, Any]]], hapi: Any,
                                         pytestconfig: pytest.Config) -> None:
    report.register(pytestconfig)  # the table is printed even when this file runs alone
    report.note_hapi(hapi)
    outbound, _ = env
    admin = httpx.Client(base_url=outbound.sim.admin_url + "/", timeout=30)
    decisions = [outbound.new_decision(outbound.other_eg) for _ in range(N_ITEMS)]
    port = int(next(line.split("=")[1] for line in outbound.config_path.read_text().splitlines()
                    if line.startswith("port =")))
    service = ServiceProcess(outbound.config_path, outbound.tmp, port, hapi.bind_host)
    service.start()
    try:
        tasks = {d["id_nat_decision"]: wait_for(lambda d=d: outbound.worklist_task(d["id_nat_decision"],
                                                                                    outbound.other_eg),
                                                "the work list", timeout=180) for d in decisions}
        # -- pipeline latency: one change every PACE seconds (open loop), each timed on its own ---------
        latencies: list[float] = []
        internal: list[float] = []
        for round_index, (statut, motif) in enumerate(CHANGES):
            started: dict[str, datetime] = {}
            for id_nat, task in tasks.items():
                tick = time.monotonic()
                started[id_nat] = datetime.now().astimezone()
                tasks[id_nat] = outbound.user_change(task, statut, motif)
                time.sleep(max(PACE - (time.monotonic() - tick), 0))

            def done(r: int = round_index, started: dict[str, datetime] = started) -> dict[str, datetime] | None:
                found: dict[str, datetime] = {}
                for request in _accepted(admin):
                    values = status_key(request["body"])
                    id_nat = next((i["valueIdentifier"]["value"] for i in request["body"]["input"]
                                   if i["type"]["coding"][0]["code"] == "idNat_Decision"), None)
                    if id_nat in started and values[:2] == CHANGES[r]:
                        found[id_nat] = datetime.fromisoformat(request["at"])
                return found if len(found) == len(started) else None

            arrived = wait_for(done, f"the ESMSTasks of round {round_index + 1}", 300, 0.5)
            latencies += [(arrived[i] - started[i]).total_seconds() for i in started]
            for id_nat in started:  # vtdui's own part: queued by the receiver -> accepted
                [item] = [i for i in outbound.outbox_items(id_nat) if status_key(i.payload)[:2] == CHANGES[round_index]]
                assert item.origin["via"] == "hook", item.origin
                internal.append((arrived[id_nat] - item.first_enqueued_at).total_seconds())
        for id_nat in tasks:
            assert [s[0] for s in (status_key(r["body"]) for r in outbound.received(id_nat))] == \
                [c[0] for c in CHANGES]
        # -- direct POST baseline ----------------------------------------------------------------------
        config = load_config(outbound.config_path)
        entity, establishment = config.establishment(outbound.other_eg)
        sample = outbound.received(next(iter(tasks)))[-1]["body"]
        direct: list[float] = []
        with ViaTrajectoireClient(config.viatrajectoire, entity, config.retry) as client:
            client.post_task(establishment.finess_eg, sample)  # token and connection, as the service has them
            for _ in range(len(latencies)):
                t0 = time.perf_counter()
                created = client.post_task(establishment.finess_eg, sample)
                direct.append(time.perf_counter() - t0)
                assert created.status == 201
        assert service.stop() == 0
        # -- the reconciliation path alone: Subscriptions off, a short reconciliation ------------------------
        outbound.cli("setup", "--off")
        slow = outbound.config_path.with_name("vtdui-reconcile.toml")
        slow.write_text(outbound.config_path.read_text().replace("reconcile_seconds = 3600",
                                                                 f"reconcile_seconds = {RECONCILE_SECONDS}"))
        slow.chmod(0o600)
        # on a port of its own: a delivery HAPI would still make while it takes the Subscriptions off cannot
        # reach this receiver, so only the reconciliation can bring these changes
        service_r = ServiceProcess(slow, outbound.tmp, port, hapi.bind_host)
        service_r.start("--no-sync", "--port", str(free_port(hapi.bind_host)))
        try:
            started_r: dict[str, datetime] = {}
            for id_nat, task in tasks.items():
                tick = time.monotonic()
                started_r[id_nat] = datetime.now().astimezone()
                tasks[id_nat] = outbound.user_change(task, *RECONCILE_CHANGES)
                time.sleep(max(PACE - (time.monotonic() - tick), 0))

            def done_r() -> dict[str, datetime] | None:
                found: dict[str, datetime] = {}
                for request in _accepted(admin):
                    id_nat = next((i["valueIdentifier"]["value"] for i in request["body"]["input"]
                                   if i["type"]["coding"][0]["code"] == "idNat_Decision"), None)
                    if id_nat in started_r and status_key(request["body"])[:2] == RECONCILE_CHANGES:
                        found[id_nat] = datetime.fromisoformat(request["at"])
                return found if len(found) == len(started_r) else None

            arrived_r = wait_for(done_r, "the ESMSTasks found by the reconciliation", 300, 0.5)
            reconciled = [(arrived_r[i] - started_r[i]).total_seconds() for i in started_r]
            for id_nat in started_r:
                [item] = [i for i in outbound.outbox_items(id_nat)
                          if status_key(i.payload)[:2] == RECONCILE_CHANGES]
                assert item.origin["via"] == "reconciliation", item.origin
        finally:
            service_r.stop()
        outbound.cli("setup", "--json")  # the Subscriptions back on for wind_down
        # -- worker throughput ---------------------------------------------------------------------------
        for statut, motif in THROUGHPUT_CHANGES:
            for id_nat, task in tasks.items():
                tasks[id_nat] = outbound.user_change(task, statut, motif)
        with Runtime(config) as runtime:
            t0 = time.perf_counter()
            queued = runtime.reconciler.run_once()
            enqueue_s = time.perf_counter() - t0
            sent = 0
            t1 = time.perf_counter()
            while (batch := runtime.emitter.run_pending(500)).attempted:
                assert not batch.failed and not batch.rescheduled
                sent += len(batch.sent)
            deliver_s = time.perf_counter() - t1
        assert sent == len(THROUGHPUT_CHANGES) * N_ITEMS, (sent, len(queued.items))
    finally:
        admin.close()
        wind_down(outbound, service)
    p50, p99 = statistics.median(latencies), _quantile(latencies, 0.99)
    d50, d99 = statistics.median(direct), _quantile(direct, 0.99)
    print()
    print(f"outbound latency, PUT Task in HAPI -> accepted by the simulator, {len(latencies)} changes:")
    print(f"  pipeline  p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   max {max(latencies) * 1000:7.1f} ms")
    i50, i99 = statistics.median(internal), _quantile(internal, 0.99)
    print(f"  in vtdui  p50 {i50 * 1000:7.1f} ms   p99 {i99 * 1000:7.1f} ms"
          "   (queued in the outbox -> accepted; the rest is HAPI's subscription processing)")
    print(f"  direct    p50 {d50 * 1000:7.1f} ms   p99 {d99 * 1000:7.1f} ms   (ViaTrajectoireClient.post_task alone)")
    print(f"  ratio     p50 x{p50 / d50:.1f}   p99 x{p99 / d99:.1f}   (pipeline / direct)")
    print(f"  ratio     p50 x{i50 / d50:.1f}   p99 x{i99 / d99:.1f}"
          "   (in vtdui / direct)")
    r50, r99 = statistics.median(reconciled), _quantile(reconciled, 0.99)
    print(f"  reconciliation path alone (Subscriptions off, reconcile_seconds {RECONCILE_SECONDS}), "
          f"{len(reconciled)} changes: p50 {r50 * 1000:7.1f} ms   p99 {r99 * 1000:7.1f} ms")
    print(f"outbox worker: {sent} items queued by one reconciliation pass in {enqueue_s:.2f} s "
          f"({sent / enqueue_s:.0f} items/s), delivered in {deliver_s:.2f} s ({sent / deliver_s:.0f} items/s)")
    direct_rate = len(direct) / sum(direct)
    n = len(latencies)
    direct_label = f"direct `ViaTrajectoireClient.post_task`, {len(direct)} calls"
    path = report.record("outbound", [
        report.Row(f"outbound latency p50, Subscription path alone (reconciliation at 1 h), PUT Task in HAPI → "
                   f"accepted by the simulator, {n} changes",
                   f"{p50 * 1000:.1f} ms", f"{d50 * 1000:.1f} ms p50, {direct_label}", report.ratio(p50 / d50, 1)),
        report.Row(f"outbound latency p99, Subscription path alone (reconciliation at 1 h), PUT Task in HAPI → "
                   f"accepted by the simulator, {n} changes",
                   f"{p99 * 1000:.1f} ms", f"{d99 * 1000:.1f} ms p99, {direct_label}", report.ratio(p99 / d99, 1)),
        report.Row(f"outbound latency p50 / p99, reconciliation path alone (Subscriptions off, reconcile_seconds "
                   f"{RECONCILE_SECONDS}), PUT Task in HAPI → accepted, {len(reconciled)} changes",
                   f"{r50 * 1000:.1f} ms / {r99 * 1000:.1f} ms", "—", "—"),
        report.Row(f"outbound latency p50 in vtdui, queued in the outbox → accepted, {n} changes",
                   f"{i50 * 1000:.1f} ms", f"{d50 * 1000:.1f} ms p50, {direct_label}", report.ratio(i50 / d50, 1)),
        report.Row(f"outbound latency p99 in vtdui, queued in the outbox → accepted, {n} changes",
                   f"{i99 * 1000:.1f} ms", f"{d99 * 1000:.1f} ms p99, {direct_label}", report.ratio(i99 / d99, 1)),
        report.Row(f"outbox worker throughput, one worker (`Emitter.run_pending`), {sent} items",
                   f"{sent / deliver_s:.1f} items/s",
                   f"{direct_rate:.1f} posts/s, the {len(direct)} direct `post_task` calls one after the other",
                   report.ratio((sent / deliver_s) / direct_rate)),
    ], {"changes": n, "pace_seconds": PACE, "path": "subscription (reconcile_seconds 3600)",
        "reconciliation_path_ms": {"changes": len(reconciled), "reconcile_seconds": RECONCILE_SECONDS,
                                   "p50": round(r50 * 1000, 1), "p99": round(r99 * 1000, 1)},
        "pipeline_ms": {"p50": round(p50 * 1000, 1), "p99": round(p99 * 1000, 1),
                        "max": round(max(latencies) * 1000, 1)},
        "in_vtdui_ms": {"p50": round(i50 * 1000, 1), "p99": round(i99 * 1000, 1)},
        "direct_post_ms": {"p50": round(d50 * 1000, 1), "p99": round(d99 * 1000, 1)},
        "direct_posts_per_s": round(direct_rate, 1),
        "throughput": {"items": sent, "queued_by_reconciliation_s": round(enqueue_s, 3),
                       "delivered_s": round(deliver_s, 3), "items_per_s": round(sent / deliver_s, 1)}})
    print(f"figures in {path}")
