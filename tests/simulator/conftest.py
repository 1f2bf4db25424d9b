"""Fixtures of the simulator contract tests: a running simulator and mTLS clients of the DUI side.

``simulator`` is session-scoped (one PKI, one dataset for the whole run); tests that need their own
settings start one with :func:`start_simulator` on ``tmp_path``. Tests that write to the shared
simulator create their own decisions through the admin API, so they never depend on each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_helpers import Dui

from vtdui.simulator.server import RunningSimulator, start_simulator


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    """A simulator for the whole session (random free ports, 12 seeded decisions)."""
    sim = start_simulator(Path(tmp_path_factory.mktemp("vt-simulator")), seed=7, n_decisions=12,
                          port=0, admin_port=0)
    yield sim
    sim.stop()


@pytest.fixture
def dui(simulator: RunningSimulator) -> Iterator[Dui]:
    client = Dui(simulator, 0)
    yield client
    client.close()


@pytest.fixture
def other_dui(simulator: RunningSimulator) -> Iterator[Dui]:
    client = Dui(simulator, 1)
    yield client
    client.close()
