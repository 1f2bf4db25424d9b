"""Inbound benchmark (issue 4): ingest throughput of ``vtdui sync`` against posting the same bundles to HAPI.

Run (not part of the default test run: ``bench_*.py`` is not collected by default)::

    python -m pytest tests/benchmarks/bench_inbound.py -m benchmark -s
    VTDUI_BENCH_DECISIONS=10000 python -m pytest tests/benchmarks/bench_inbound.py -m benchmark -s   # 10,000 back-fill

What it measures, in one run, against the session's HAPI server and a simulator over mTLS:

* **warm-up**: :data:`WARM_UP` bundles of other decisions posted first, untimed;
* **baseline**: the final transaction bundles the inbound pipeline produces (CDA parsed, ``map_decision``
  and ``before_store`` of the built-in mapping) for N decisions, POSTed straight to HAPI one after the
  other, as the sync does: the cost of HAPI alone;
* **sync**: ``vtdui sync --once`` in its own process for N *other* decisions of the same generator (so
  HAPI creates as many resources as in the baseline): flux 1.1 search, N reads over mutual TLS, base64 and
  hardened CDA parsing, mapping, state, N transactions. Its decisions/s divided by the baseline's is the
  **ratio** (1.0 = the plugin adds nothing to HAPI's own cost);
* **parse**: decision CDAs parsed per second (:func:`vtdui.cda.parse.parse_decision` alone);
* **peak memory** of the ``vtdui sync`` process (its ``VmHWM``, sampled every 0.2 s until it exits).

The figures are printed, written to ``tests/benchmarks/results/inbound.json`` (``inbound-<N>.json`` for another
N than 500) and recorded as rows of the session's table (:mod:`report`, which says the N measured); nothing is
asserted about speed (only that every decision landed).
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from inbound_helpers import admin, write_config
from report import Row, note_hapi, ratio, record

from vtdui import sdo
from vtdui.cda.parse import parse_decision
from vtdui.config import Establishment, LegalEntity, load_config
from vtdui.hookcontext import InboundContext
from vtdui.plugins import get_plugin_manager
from vtdui.simulator.server import RunningSimulator, start_simulator
from vtdui.store import HapiStore

N = int(os.environ.get("VTDUI_BENCH_DECISIONS", "500"))
#: transactions posted before anything is timed (HAPI's JIT warms up)
WARM_UP = min(100, max(N // 5, 10))

#: about 0.1 s per decision for the baseline and as much for the sync on a 2-core machine, with room to spare
pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(max(600, N * 3 // 10))]
VTDUI = str(Path(sys.executable).with_name("vtdui"))


@pytest.fixture(scope="module")
def bench_sim(tmp_path_factory: pytest.TempPathFactory, hapi_base_url: str) -> Iterator[RunningSimulator]:
    """A simulator with N decisions for the sync's 3 establishments and N for 3 others (the baseline's)."""
    sim = start_simulator(tmp_path_factory.mktemp("bench-sim"), seed=random.SystemRandom().randrange(10**9),
                          n_decisions=0, port=0, admin_port=0, hapi_base_url=hapi_base_url)
    yield sim
    sim.stop()


def _peak_kib(pid: int) -> int:
    """``VmHWM`` (peak resident memory, KiB) of a running process; 0 once it is gone.

    Not ``ru_maxrss`` of the child: it counts the pages of this (large) process mapped by the fork
    before the ``exec``.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _create(sim: RunningSimulator, egs: list[str], n: int) -> list[str]:
    ids: list[str] = []
    for index, eg in enumerate(egs):
        count = n // len(egs) + (1 if index < n % len(egs) else 0)
        response = admin(sim, "POST", "decisions", {"count": count, "notified_to": [eg]})
        assert response.status_code == 201, response.text
        ids += [d["id_nat_decision"] for d in response.json()["decisions"]]
    return ids


def _baseline_bundles(sim: RunningSimulator, entity: dict[str, Any], ests: list[dict[str, Any]],
                      hapi_base_url: str) -> list[list[dict[str, Any]]]:
    """The final transaction entries of the inbound pipeline for every decision of ``ests``."""
    config = load_config(sim.config_path)
    pm = get_plugin_manager(None, load_entrypoints=False)
    establishments = {e["finess_eg"]: Establishment(finess_eg=e["finess_eg"], name=e["name"]) for e in ests}
    legal = LegalEntity(finess_ej=entity["finess_ej"], name=entity["name"],
                        establishments=tuple(establishments.values()))
    bundles: list[list[dict[str, Any]]] = []
    state = sim.context.state
    for stored in list(state.decisions.values()):
        eg = next((e for e in stored.notified_to if e in establishments), None)
        if eg is None:
            continue
        context = InboundContext(config=config, legal_entity=legal, establishment=establishments[eg],
                                 source=sdo.PLUGIN_SOURCE, now=datetime.now(UTC))
        entries = pm.hook.map_decision(document=parse_decision(stored.decision_cda()), context=context)
        pm.hook.before_store(entries=entries, context=context)
        bundles.append(entries)
    return bundles


def test_bench_inbound(bench_sim: RunningSimulator, hapi: Any, hapi_base_url: str, tmp_path: Path) -> None:
    """Measure baseline, sync, parse and memory; print and record the figures (see the module docstring)."""
    note_hapi(hapi)
    info = bench_sim.info
    first, second = info["legal_entities"]
    sync_ests = [first["establishments"][0], first["establishments"][1], second["establishments"][0]]
    base_ests = [first["establishments"][2], first["establishments"][3]]
    assert sync_ests[0]["is_esat"]

    base_ids = _create(bench_sim, [e["finess_eg"] for e in base_ests], N + WARM_UP)
    bundles = _baseline_bundles(bench_sim, first, base_ests, hapi_base_url)
    assert len(bundles) == len(base_ids) == N + WARM_UP
    warm_up, bundles = bundles[:WARM_UP], bundles[WARM_UP:]
    entries = sum(len(b) for b in bundles)
    with HapiStore(hapi_base_url) as store:
        for bundle in warm_up:  # a JVM just started runs its first transactions much slower: not timed
            store.transaction(bundle)
        started = time.perf_counter()
        for bundle in bundles:
            store.transaction(bundle)
        baseline_s = time.perf_counter() - started

    sync_ids = _create(bench_sim, [e["finess_eg"] for e in sync_ests], N)
    documents = [bench_sim.context.state.decisions[n].decision_cda() for n in sync_ids]
    started = time.perf_counter()
    for raw in documents:
        parse_decision(raw)
    parse_s = time.perf_counter() - started

    config = write_config(tmp_path / "vtdui.toml", bench_sim,
                          {first["finess_ej"]: sync_ests[:2], second["finess_ej"]: sync_ests[2:]},
                          state_dir=tmp_path / "state", hapi_base_url=hapi_base_url)
    out = tmp_path / "sync.json"
    env = {**os.environ, "VTDUI_PLUGINS": ""}
    started = time.perf_counter()
    with out.open("w") as handle:
        process = subprocess.Popen([VTDUI, "sync", "--once", "--config", str(config), "--json"], stdout=handle,
                                   stderr=subprocess.DEVNULL, env=env)
        peak_kib = 0
        try:
            while process.poll() is None:
                peak_kib = max(peak_kib, _peak_kib(process.pid))
                time.sleep(0.2)
        except BaseException:
            process.kill()
            process.wait()
            raise
    wall_s = time.perf_counter() - started
    assert process.returncode == 0, out.read_text()
    summary = json.loads(out.read_text())
    stored = sum(e["decisions_stored"] for e in summary["establishments"])
    assert summary["ok"] and stored == N
    cycle_s = float(summary["seconds"])

    baseline_rate = N / baseline_s
    sync_rate = N / cycle_s
    peak_mib = peak_kib / 1024
    figures = {
        "decisions": N, "establishments": len(sync_ests), "entries_per_bundle": round(entries / N, 2),
        "baseline_s": round(baseline_s, 2), "baseline_decisions_per_s": round(baseline_rate, 1),
        "sync_cycle_s": round(cycle_s, 2), "sync_process_wall_s": round(wall_s, 2),
        "sync_decisions_per_s": round(sync_rate, 1), "ratio_sync_to_baseline": round(sync_rate / baseline_rate, 3),
        "parse_documents_per_s": round(N / parse_s, 1),
        "sync_process_peak_rss_mib": round(peak_mib, 1),
        "bench_process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    name = "inbound" if N == 500 else f"inbound-{N}"
    path = record(name, [
        Row(f"inbound ingest, `vtdui sync --once`, N={N} decisions ({len(sync_ests)} establishments)",
            f"{sync_rate:.1f} decisions/s (sync cycle; {N / wall_s:.1f}/s on the process's wall clock)",
            f"{baseline_rate:.1f} decisions/s posting the same final bundles straight to HAPI",
            ratio(sync_rate / baseline_rate)),
        Row(f"CDA parse (`parse_decision`), N={N} documents", f"{N / parse_s:.0f} documents/s"),
        Row(f"memory: peak RSS (VmHWM) of the `vtdui sync` process, N={N} decisions", f"{peak_mib:.0f} MiB"),
    ], figures)
    print("\ninbound benchmark " + json.dumps(figures, indent=2) + f"\nfigures in {path}")
    print(f"ingest: {sync_rate:.1f} decisions/s through vtdui sync vs {baseline_rate:.1f} decisions/s posting the "
          f"same bundles straight to HAPI: ratio {sync_rate / baseline_rate:.2f}; parse {N / parse_s:.0f} CDA/s; "
          f"vtdui sync peak memory {peak_mib:.0f} MiB")
