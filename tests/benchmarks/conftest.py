"""Benchmarks: ``bench_*.py`` files, never collected by the default ``python -m pytest`` (pytest only collects
``test_*.py`` by default); run them by naming them (see the README, "Benchmarks"):

    python -m pytest tests/benchmarks -o python_files='bench_*.py' -m benchmark -s

They get the session's HAPI server from ``tests/conftest.py`` exactly as the tests do; the helpers of the
end-to-end tests are importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

_E2E = Path(__file__).resolve().parents[1] / "e2e"
for folder in ("inbound", "outbound"):
    if str(_E2E / folder) not in sys.path:
        sys.path.insert(0, str(_E2E / folder))

# the multi-worker helpers of the soak test (several `vtdui run` processes on one database)
_SOAK = Path(__file__).resolve().parents[1] / "soak"
if str(_SOAK) not in sys.path:
    sys.path.insert(0, str(_SOAK))
