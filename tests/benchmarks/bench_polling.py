"""Polling benchmark: one worker's daily cycle over 500 establishments, sequential against bounded concurrency.

Run (not part of the default test run: ``bench_*.py`` is not collected by default)::

    python -m pytest tests/benchmarks/bench_polling.py -o python_files='bench_*.py' -m benchmark -s
    VTDUI_BENCH_POLL_ENTITIES=4 VTDUI_BENCH_POLL_PER_ENTITY=25 python -m pytest tests/benchmarks/bench_polling.py ...

What it measures, against the session's HAPI server and a simulator over mutual TLS whose dataset has
``ENTITIES`` legal entities of ``PER_ENTITY`` establishments (10 x 50 = 500 by default):

* **warm-up** (untimed): one decision per establishment, synced once with the default concurrency, so that
  every establishment has its cursors and its organisation in HAPI and HAPI's JIT is warm: what follows is
  a *daily* cycle of an installation in service, not a first connection;
* **sequential** (the baseline): ``DECISIONS`` new decisions per establishment, then one cycle over every
  establishment, all due at once, with ``sync.max_concurrent = 1``;
* **concurrent**: as many new decisions again, then one cycle with the default limits
  (``sync.max_concurrent`` and ``sync.max_concurrent_per_entity`` of :class:`vtdui.config.SyncSettings`).

Each cycle runs in its own process (:func:`main` below: :class:`vtdui.schedule.PollScheduler.run_all`, what
``vtdui run --once`` does for the inbound side) so it does not share the interpreter with the simulator. The
figures (seconds of each cycle, establishments per second, ratio sequential / concurrent) are printed,
written to ``tests/benchmarks/results/polling.json`` and recorded in the session's table (:mod:`report`).
Nothing is asserted about speed; every establishment must complete and every decision land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENTITIES = int(os.environ.get("VTDUI_BENCH_POLL_ENTITIES", "10"))
PER_ENTITY = int(os.environ.get("VTDUI_BENCH_POLL_PER_ENTITY", "50"))
DECISIONS = int(os.environ.get("VTDUI_BENCH_POLL_DECISIONS", "2"))
_TESTS = Path(__file__).resolve().parents[1]


def main(config_path: str) -> None:
    """One cycle over every configured establishment (the child process); prints a JSON summary."""
    from vtdui.config import load_config
    from vtdui.plugins import get_plugin_manager
    from vtdui.runtime import Runtime
    from vtdui.schedule import PollScheduler, SQLitePollSchedule

    config = load_config(Path(config_path))
    with Runtime(config, pm=get_plugin_manager(None, load_entrypoints=False)) as runtime:
        schedule = SQLitePollSchedule.open(config.state_dir)
        try:
            scheduler = PollScheduler(config, schedule, runtime.sync.sync_establishment)
            started = time.perf_counter()
            report = scheduler.run_all()
            seconds = time.perf_counter() - started
        finally:
            schedule.close()
    print(json.dumps({"seconds": seconds, "establishments": len(report.establishments),
                      "failed": [r.finess_eg for r in report.establishments if not r.ok],
                      "decisions_stored": report.total("decisions_stored"),
                      "quarantined": report.total("quarantined"),
                      "max_concurrent": scheduler.max_concurrent, "per_entity": scheduler.per_entity}))


if __name__ == "__main__":
    main(sys.argv[1])
    sys.exit(0)


# -- the benchmark (pytest) ---------------------------------------------------------------------------------

import pytest  # noqa: E402 - the child process above needs none of the test helpers

for _folder in (_TESTS / "schedule", _TESTS / "e2e" / "inbound"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from inbound_helpers import write_config  # noqa: E402
from poll_helpers import create_decisions, simulator_with, sync_section  # noqa: E402
from report import Row, note_hapi, ratio, record  # noqa: E402

from vtdui.config import SyncSettings  # noqa: E402
from vtdui.simulator.server import RunningSimulator  # noqa: E402

#: about 0.1 s per decision written on a 2-core machine, three cycles, with room to spare
pytestmark = [pytest.mark.benchmark,
              pytest.mark.timeout(max(900, ENTITIES * PER_ENTITY * (1 + 2 * DECISIONS) * 3 // 10))]


def _cycle(sim: RunningSimulator, tmp: Path, hapi_base_url: str, name: str, state: Path,
           **sync: object) -> dict[str, Any]:
    """Write a configuration for every establishment of the simulator and run one cycle in a child process."""
    chosen = {e["finess_ej"]: e["establishments"] for e in sim.info["legal_entities"]}
    config = write_config(tmp / f"{name}.toml", sim, chosen, state_dir=state, hapi_base_url=hapi_base_url)
    with config.open("a", encoding="utf-8") as handle:
        handle.write(sync_section(**sync))
    env = {**os.environ, "VTDUI_PLUGINS": ""}
    done = subprocess.run([sys.executable, __file__, str(config)], capture_output=True, text=True, env=env,
                          timeout=3600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["establishments"] == ENTITIES * PER_ENTITY and summary["failed"] == [], summary
    return summary


def _new_decisions(sim: RunningSimulator, count: int) -> int:
    created = 0
    for entity in sim.info["legal_entities"]:
        for establishment in entity["establishments"]:
            created += len(create_decisions(sim, establishment["finess_eg"], count))
    return created


def test_bench_polling(hapi: Any, hapi_base_url: str, tmp_path: Path) -> None:
    """Warm-up, sequential cycle, concurrent cycle; print and record the figures (module docstring)."""
    note_hapi(hapi)
    n = ENTITIES * PER_ENTITY
    defaults = SyncSettings()
    with simulator_with(tmp_path / "sim", ENTITIES, PER_ENTITY, hapi_base_url) as sim:
        state = tmp_path / "state"
        _new_decisions(sim, 1)
        warm = _cycle(sim, tmp_path, hapi_base_url, "warm-up", state)
        assert warm["decisions_stored"] == n

        created = _new_decisions(sim, DECISIONS)
        sequential = _cycle(sim, tmp_path, hapi_base_url, "sequential", state, max_concurrent=1,
                            max_concurrent_per_entity=1)
        assert sequential["decisions_stored"] == created and sequential["quarantined"] == 0

        created = _new_decisions(sim, DECISIONS)
        concurrent = _cycle(sim, tmp_path, hapi_base_url, "concurrent", state)
        assert concurrent["decisions_stored"] == created and concurrent["quarantined"] == 0

    figures = {
        "legal_entities": ENTITIES, "establishments": n, "new_decisions_per_establishment": DECISIONS,
        "warm_up_s": round(warm["seconds"], 2),
        "sequential": {"max_concurrent": 1, "max_concurrent_per_entity": 1,
                       "cycle_s": round(sequential["seconds"], 2),
                       "establishments_per_s": round(n / sequential["seconds"], 2)},
        "concurrent": {"max_concurrent": defaults.max_concurrent,
                       "max_concurrent_per_entity": defaults.max_concurrent_per_entity,
                       "cycle_s": round(concurrent["seconds"], 2),
                       "establishments_per_s": round(n / concurrent["seconds"], 2)},
        "speed_up": round(sequential["seconds"] / concurrent["seconds"], 2),
    }
    path = record("polling", [
        Row(f"daily polling cycle, {n} establishments ({ENTITIES} legal entities, {DECISIONS} new decisions "
            f"each), default concurrency (max_concurrent {defaults.max_concurrent}, per entity "
            f"{defaults.max_concurrent_per_entity})",
            f"{concurrent['seconds']:.1f} s ({n / concurrent['seconds']:.1f} establishments/s)",
            f"{sequential['seconds']:.1f} s ({n / sequential['seconds']:.1f} establishments/s) one at a time "
            "(max_concurrent 1)",
            ratio(sequential["seconds"] / concurrent["seconds"]) + " faster"),
    ], figures)
    print("\npolling benchmark " + json.dumps(figures, indent=2))
    print(f"daily cycle over {n} establishments ({ENTITIES} legal entities, {DECISIONS} new decisions each): "
          f"{sequential['seconds']:.1f} s one at a time, {concurrent['seconds']:.1f} s with max_concurrent "
          f"{defaults.max_concurrent} (per entity {defaults.max_concurrent_per_entity}): "
          f"x{figures['speed_up']:.2f}; figures in {path}")
