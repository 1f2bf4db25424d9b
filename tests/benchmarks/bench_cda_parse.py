"""CDA parsing benchmark: vtdui's hardened parsers against a bare ``lxml.etree.fromstring`` of the same bytes.

Run (not part of the default test run)::

    python -m pytest tests/benchmarks/bench_cda_parse.py -o python_files='bench_*.py' -m benchmark -s
    VTDUI_BENCH_CDA_DOCUMENTS=2000 python -m pytest tests/benchmarks/bench_cda_parse.py ...

What it measures is described in ``tests/cda/bench_cda.py`` (the same code, also runnable as a script): for
the generated decisions, their evaluations and the IG-shaped legacy decision, documents per second through
:func:`vtdui.cda.parse.parse_decision` / :func:`~vtdui.cda.parse.parse_evaluation` (all limits, hardening and
the full extraction) and through a bare ``lxml.etree.fromstring`` in the same run, rounds alternating. No HAPI
server, no network: the parser alone, in this process. Nothing is asserted about speed; every document must
parse, and the generated ones without a warning.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from report import Row, ratio, record

_CDA_TESTS = str(Path(__file__).resolve().parents[1] / "cda")
if _CDA_TESTS not in sys.path:
    sys.path.insert(0, _CDA_TESTS)

from bench_cda import compare, corpora  # noqa: E402

N = int(os.environ.get("VTDUI_BENCH_CDA_DOCUMENTS", "500"))
ROUNDS = int(os.environ.get("VTDUI_BENCH_CDA_ROUNDS", "7"))

pytestmark = pytest.mark.benchmark

_LABELS = {
    "decision": ("`parse_decision`", "generated decisions"),
    "evaluation": ("`parse_evaluation`", "generated evaluations"),
    "legacy sample": ("`parse_decision`", "copies of the IG-shaped legacy decision"),
}


def test_bench_cda_parse() -> None:
    rows = []
    figures = {}
    for name, (parse, documents) in corpora(N).items():
        for xml in documents:  # every document parses; the generated ones are clean
            document = parse(xml)
            if name != "legacy sample":
                assert document.warnings == (), name  # type: ignore[attr-defined]
        result = compare(parse, documents, ROUNDS)
        figures[name] = result
        function, corpus = _LABELS[name]
        rows.append(Row(
            f"CDA parse, {function} (all limits and hardening, full extraction), N={N} {corpus} "
            f"({result['mean_bytes']} bytes), best of {ROUNDS} alternating rounds, CPU clock",
            f"{result['parse_per_s_cpu']} documents/s (wall clock {result['parse_per_s_wall']}/s)",
            f"{result['bare_lxml_per_s_cpu']} documents/s, bare `lxml.etree.fromstring` of the same bytes "
            f"(wall clock {result['bare_lxml_per_s_wall']}/s)",
            f"{ratio(result['ratio_cpu'])} (wall clock {ratio(result['ratio_wall'])})",
        ))
    path = record("cda", rows, figures)
    print("\ncda benchmark " + json.dumps(figures, indent=2) + f"\nfigures in {path}")
