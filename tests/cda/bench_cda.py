"""CDA parsing benchmark: the hardened parsers against a bare ``lxml.etree.fromstring`` of the same bytes.

Standalone: ``.venv/bin/python tests/cda/bench_cda.py [N]`` prints the figures; in the benchmark session
``tests/benchmarks/bench_cda_parse.py`` records them in the table (see the README, "Benchmarks").

Three corpora, each parsed in the same run by both sides:

* ``decision``: ``N`` generated "Individu et décision" documents (:func:`vtdui.cda.parse.parse_decision`);
* ``evaluation``: the ``N`` matching "Evaluation" documents (:func:`vtdui.cda.parse.parse_evaluation`);
* ``legacy sample``: the IG-shaped legacy decision of the CDA tests, ``N`` times.

The baseline is ``lxml.etree.fromstring(xml)``: well-formedness only, with lxml's default parser (no limit
of vtdui's, no extraction). Rounds alternate the two sides so that both see the same machine load; each side's
figure is its best round (the least disturbed one on a shared machine), on the process's CPU clock and on the
wall clock; the ratio is parse rate / bare rate on the CPU clock.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from vtdui.cda.parse import parse_decision, parse_evaluation
from vtdui.simulator.dataset import Dataset

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from cda_helpers import LEGACY  # noqa: E402

NOW = datetime(2026, 5, 10, tzinfo=UTC)


def _time(function: Callable[[bytes], object], documents: list[bytes]) -> tuple[float, float]:
    """CPU and wall seconds to apply ``function`` to every document."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for xml in documents:
        function(xml)
    return time.thread_time() - cpu, time.perf_counter() - wall


def compare(parse: Callable[[bytes], object], documents: list[bytes], rounds: int) -> dict[str, Any]:
    """Alternate bare lxml and ``parse`` over ``documents`` for ``rounds`` rounds; return the figures."""
    bare: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    for xml in documents[:20]:  # warm-up: imports, the per-thread parser, lxml's name dictionary
        etree.fromstring(xml)
        parse(xml)
    for _ in range(rounds):
        bare.append(_time(etree.fromstring, documents))
        ours.append(_time(parse, documents))
    n = len(documents)

    def rate(samples: list[tuple[float, float]], clock: int) -> float:
        return n / min(sample[clock] for sample in samples)

    figures = {
        "documents": n,
        "mean_bytes": round(sum(len(d) for d in documents) / n),
        "rounds": rounds,
        "parse_per_s_cpu": round(rate(ours, 0)),
        "bare_lxml_per_s_cpu": round(rate(bare, 0)),
        "parse_per_s_wall": round(rate(ours, 1)),
        "bare_lxml_per_s_wall": round(rate(bare, 1)),
        "parse_median_us_cpu": round(statistics.median(s[0] for s in ours) / n * 1e6, 1),
        "bare_lxml_median_us_cpu": round(statistics.median(s[0] for s in bare) / n * 1e6, 1),
    }
    figures["ratio_cpu"] = round(figures["parse_per_s_cpu"] / figures["bare_lxml_per_s_cpu"], 3)
    figures["ratio_wall"] = round(figures["parse_per_s_wall"] / figures["bare_lxml_per_s_wall"], 3)
    return figures


def corpora(n: int, seed: int = 2026) -> dict[str, tuple[Callable[[bytes], object], list[bytes]]]:
    """The three corpora: name -> (the vtdui parser to measure, its documents)."""
    dataset = Dataset.generate(seed=seed, n_decisions=n, now=NOW)
    return {
        "decision": (parse_decision, [sim.decision_cda() for sim in dataset.decisions]),
        "evaluation": (parse_evaluation, [sim.evaluation_cda() for sim in dataset.decisions]),
        "legacy sample": (parse_decision, [LEGACY] * n),
    }


def bench(n: int = 500, rounds: int = 7) -> dict[str, dict[str, Any]]:
    """Measure every corpus; print one line each and return the figures by corpus."""
    results = {}
    for name, (parse, documents) in corpora(n).items():
        figures = compare(parse, documents, rounds)
        results[name] = figures
        print(f"{name}: {figures['parse_per_s_cpu']} documents/s parsed by vtdui, "
              f"{figures['bare_lxml_per_s_cpu']}/s bare lxml.etree.fromstring (CPU clock, best of {rounds}): "
              f"ratio {figures['ratio_cpu']:.2f} (wall clock {figures['ratio_wall']:.2f}); "
              f"{figures['documents']} documents of {figures['mean_bytes']} bytes")
    return results


if __name__ == "__main__":
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
