"""Memory benchmark (issue 12): peak RSS of ``vtdui sync`` when ViaTrajectoire serves four 63 MB documents.

Run (not part of the default test run)::

    python -m pytest tests/benchmarks/bench_oversized.py -o python_files='bench_*.py' -m benchmark -s

Against the session's HAPI server and a simulator over mTLS, two ``vtdui sync --once`` processes, each on its
own establishment and state directory:

* **baseline**: :data:`GOOD` regular decisions (a few kB each);
* **oversized**: the same number of regular decisions plus :data:`HUGE` decisions whose CDA is 63 MB (served
  through the admin API, base64 in the DocumentReference: about 84 MB per answer).

Answers are streamed and read up to ``viatrajectoire.max_response_bytes`` (16 MiB by default): the huge ones
are refused (here from their declared ``Content-Length``, before their body is read; an answer without one is
cut at the cap while it streams) and quarantined (``too-large``), the regular ones stored. The peak resident
memory (``VmHWM``) of each process is sampled every 0.1 s; the row compares the oversized run with the
baseline of the same run, and the run fails if the oversized peak exceeds :data:`LIMIT_MIB` (the issue's bound;
before streaming, four such documents took the sync to 1.54 GB).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench_inbound import _peak_kib
from inbound_helpers import admin, write_config
from report import Row, note_hapi, ratio, record

from vtdui.simulator.server import RunningSimulator, start_simulator

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(900)]
VTDUI = str(Path(sys.executable).with_name("vtdui"))

HUGE = 4
GOOD = 4
DOCUMENT_BYTES = 63 * 1000 * 1000
LIMIT_MIB = 150


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, hapi_base_url: str) -> Iterator[RunningSimulator]:
    """A simulator without seeded decisions."""
    running = start_simulator(tmp_path_factory.mktemp("bench-oversized"), seed=random.SystemRandom().randrange(10**9),
                              n_decisions=0, port=0, admin_port=0, hapi_base_url=hapi_base_url)
    yield running
    running.stop()


def _decisions(sim: RunningSimulator, eg: str, count: int) -> list[dict[str, Any]]:
    response = admin(sim, "POST", "decisions", {"count": count, "notified_to": [eg]})
    assert response.status_code == 201, response.text
    found: list[dict[str, Any]] = response.json()["decisions"]
    return found


def _sync(sim: RunningSimulator, config: Path) -> tuple[int, dict[str, Any], int]:
    """Run ``vtdui sync --once --json``; return its exit status, summary and peak RSS (KiB)."""
    out = config.with_suffix(".json")
    with out.open("w") as handle:
        process = subprocess.Popen([VTDUI, "sync", "--once", "--config", str(config), "--json"], stdout=handle,
                                   stderr=subprocess.DEVNULL, env={**os.environ, "VTDUI_PLUGINS": ""})
        peak = 0
        try:
            while process.poll() is None:
                peak = max(peak, _peak_kib(process.pid))
                time.sleep(0.1)
        except BaseException:
            process.kill()
            process.wait()
            raise
    return process.returncode, json.loads(out.read_text()), peak


def test_bench_oversized_documents(sim: RunningSimulator, hapi: Any, hapi_base_url: str, tmp_path: Path) -> None:
    """Peak RSS of a sync meeting four 63 MB documents, against a sync of regular ones (same run)."""
    note_hapi(hapi)
    entity = sim.info["legal_entities"][0]
    baseline_est, oversized_est = entity["establishments"][0], entity["establishments"][1]
    _decisions(sim, baseline_est["finess_eg"], GOOD)
    _decisions(sim, oversized_est["finess_eg"], GOOD)
    huge = _decisions(sim, oversized_est["finess_eg"], HUGE)
    filler = b"<!-- " + b"x" * (DOCUMENT_BYTES - 9) + b" -->"
    for decision in huge:
        response = httpx.put(f"{sim.admin_url}/decisions/{decision['id_nat_decision']}/document",
                             params={"kind": "decision"}, content=filler, timeout=300)
        assert response.status_code == 200, response.text

    runs: dict[str, tuple[int, dict[str, Any], int]] = {}
    for name, est in (("baseline", baseline_est), ("oversized", oversized_est)):
        config = write_config(tmp_path / f"{name}.toml", sim, {entity["finess_ej"]: [est]},
                              state_dir=tmp_path / f"{name}-state", hapi_base_url=hapi_base_url)
        runs[name] = _sync(sim, config)

    code, summary, baseline_kib = runs["baseline"]
    assert code == 0 and summary["establishments"][0]["decisions_stored"] == GOOD, summary
    code, summary, oversized_kib = runs["oversized"]
    report = summary["establishments"][0]
    assert code == 3, summary  # items kept aside: said by the exit status
    assert report["decisions_stored"] == GOOD and report["quarantined"] == HUGE and summary["ok"], summary

    baseline_mib, oversized_mib = baseline_kib / 1024, oversized_kib / 1024
    figures = {"huge_documents": HUGE, "document_bytes": DOCUMENT_BYTES, "regular_documents": GOOD,
               "oversized_peak_rss_mib": round(oversized_mib, 1), "baseline_peak_rss_mib": round(baseline_mib, 1),
               "limit_mib": LIMIT_MIB}
    record("oversized", [Row(f"memory: peak RSS of `vtdui sync` meeting {HUGE} documents of 63 MB (refused unread, "
                             f"quarantined) + {GOOD} regular ones", f"{oversized_mib:.0f} MiB",
                             f"{baseline_mib:.0f} MiB for {GOOD} regular documents only",
                             ratio(oversized_mib / baseline_mib))], figures)
    print(f"\nvtdui sync peak RSS: {oversized_mib:.0f} MiB with {HUGE} x 63 MB documents, "
          f"{baseline_mib:.0f} MiB without")
    assert oversized_mib <= LIMIT_MIB, figures
