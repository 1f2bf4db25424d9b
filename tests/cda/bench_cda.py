"""Parse benchmark (not collected by pytest): ``.venv/bin/python tests/cda/bench_cda.py [N]``.

Prints how many generated decision CDAs per second :func:`vtdui.cda.parse.parse_decision` handles.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from vtdui.cda.parse import parse_decision
from vtdui.simulator.dataset import Dataset


def bench(n: int = 1000, seed: int = 2026) -> float:
    """Generate ``n`` decision CDAs, parse them all, print and return documents per second."""
    dataset = Dataset.generate(seed=seed, n_decisions=n, now=datetime(2026, 5, 10, tzinfo=UTC))
    documents = [sim.decision_cda() for sim in dataset.decisions]
    size = sum(len(d) for d in documents)
    start = time.perf_counter()
    for xml in documents:
        parse_decision(xml)
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    print(f"parsed {n} decision CDAs ({size / n:.0f} bytes average) in {elapsed:.3f} s: {rate:.0f} documents/s")
    return rate


if __name__ == "__main__":
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
