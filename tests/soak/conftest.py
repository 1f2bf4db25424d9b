"""The soak test's helpers (``soak_helpers``) are importable by the benchmarks too (tests/benchmarks/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
