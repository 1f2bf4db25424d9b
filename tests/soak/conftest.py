"""The soak test's helpers (``soak_helpers``, importable by the benchmarks too: tests/benchmarks/conftest.py) and
the outbound end-to-end helpers they build on (``outbound_e2e_helpers``)."""

from __future__ import annotations

import sys
from pathlib import Path

for _folder in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "e2e" / "outbound"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
