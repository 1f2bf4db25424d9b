"""Benchmarks: ``bench_*.py`` files, never collected by the default ``python -m pytest`` (pytest only collects
``test_*.py`` by default); run them all by naming them (see the README, "Benchmarks"):

    python -m pytest tests/benchmarks tests/e2e/outbound/bench_outbound.py -o python_files='bench_*.py' \\
        -m benchmark -s

They get the session's HAPI server from ``tests/conftest.py`` exactly as the tests do; the helpers of the
end-to-end tests are importable. :mod:`report` is registered as a plugin: the rows the benchmarks record are
printed as one table at the end of the session (and written to ``results/table.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_E2E = Path(__file__).resolve().parents[1] / "e2e"
for folder in ("inbound", "outbound"):
    if str(_E2E / folder) not in sys.path:
        sys.path.insert(0, str(_E2E / folder))

# the multi-worker helpers of the soak test (several `vtdui run` processes on one database)
_SOAK = Path(__file__).resolve().parents[1] / "soak"
if str(_SOAK) not in sys.path:
    sys.path.insert(0, str(_SOAK))

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import report  # noqa: E402 - after the path set-up above


def pytest_configure(config: pytest.Config) -> None:
    """Register :mod:`report` (its ``pytest_terminal_summary`` prints the session's benchmark table)."""
    report.register(config)
