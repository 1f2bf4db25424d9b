"""Simulator benchmark (not collected by pytest): ``.venv/bin/python tests/simulator/bench_simulator.py [N]``.

Starts a simulator with N decisions (default 1000), injects N more through the admin API, then, over real
HTTPS with mutual TLS and one kept-alive connection per legal entity, runs flux 1.1 for every establishment
(``_lastUpdated`` J-30) and flux 1.3 for every id found (2N decisions served). Prints each phase in seconds
and per decision.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sim_helpers import Dui, admin

from vtdui.simulator.server import start_simulator


def bench(n: int = 1000) -> dict[str, float]:
    """Run the benchmark; return the measured seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sim = start_simulator(Path(tmp), seed=2026, n_decisions=n, port=0, admin_port=0)
        started = time.perf_counter() - t0
        try:
            t3 = time.perf_counter()
            response = admin(sim, "POST", "decisions", {"count": n})
            assert response.status_code == 201, response.text
            injected = time.perf_counter() - t3
            since = "gt" + (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="milliseconds")
            search_s = read_s = 0.0
            reads = 0
            bytes_read = 0
            for index in range(len(sim.info["legal_entities"])):
                dui = Dui(sim, index)
                dui.token()
                for eg in dui.egs:
                    t1 = time.perf_counter()
                    bundle = dui.get("DocumentReference", eg, {"type": "57830-2", "_lastUpdated": since,
                                                               "_elements": "id"}).json()
                    search_s += time.perf_counter() - t1
                    t2 = time.perf_counter()
                    for entry in bundle.get("entry", []):
                        response = dui.get(f"DocumentReference/{entry['resource']['id']}", eg)
                        assert response.status_code == 200, response.text
                        bytes_read += len(response.content)
                        reads += 1
                    read_s += time.perf_counter() - t2
                dui.close()
        finally:
            sim.stop()
    print(f"{n} decisions: start {started:.2f} s ({started / n * 1000:.2f} ms/decision)")
    print(f"admin POST /_admin/decisions count={n}: {injected:.2f} s ({injected / n * 1000:.2f} ms/decision)")
    print(f"flux 1.1: {search_s:.2f} s for all establishments")
    print(f"flux 1.3: {reads} reads ({reads / max(2 * n, 1):.2f} per decision, {bytes_read / max(reads, 1):.0f} bytes "
          f"average) in {read_s:.2f} s: {read_s / max(reads, 1) * 1000:.2f} ms/read, {reads / read_s:.0f} reads/s")
    total = started + injected + search_s + read_s
    print(f"total {total:.2f} s for {2 * n} decisions: {total / (2 * n) * 1000:.2f} ms per decision")
    return {"start": started, "inject": injected, "search": search_s, "read": read_s}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
