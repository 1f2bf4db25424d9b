"""Fixtures of the benchmarks: the session's HAPI server, exactly as the tests get it.

``benchmarks/`` is outside ``testpaths``, so ``python -m pytest`` never runs it; run a benchmark by naming
it, e.g. ``python -m pytest benchmarks/bench_inbound.py -m benchmark -s``. The ``hapi`` fixtures come from
``tests/conftest.py`` (``$FHIR_BASE_URL``, Docker, or the local launcher), and the helpers of the inbound
end-to-end tests are importable.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT / "tests" / "e2e" / "inbound"))

_spec = importlib.util.spec_from_file_location("vtdui_tests_conftest", _ROOT / "tests" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_tests_conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _tests_conftest  # dataclasses look their module up while the file executes
_spec.loader.exec_module(_tests_conftest)

hapi = _tests_conftest.hapi
hapi_base_url = _tests_conftest.hapi_base_url
docker_compose_file = _tests_conftest.docker_compose_file
pytest_terminal_summary = _tests_conftest.pytest_terminal_summary
