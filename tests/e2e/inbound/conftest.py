"""Fixtures of the inbound end-to-end tests: one simulator, one DUI configuration, one back-fill.

The module's simulator is seeded with 800 decisions notified over the last 33 days (so some lie before
the J-30 window) and refuses ``_lastUpdated`` bounds older than 30 days, like ViaTrajectoire; decisions
are added through its admin port until :data:`TARGET_DECISIONS` are notified to the DUI's three
establishments (one ESAT, two legal entities) within J-30, some of them to two establishments. The seed is
random, so the FINESS numbers and decision ids never collide with what other tests left in the session's
HAPI server. ``backfill`` is the first ``SyncEngine.run_once`` (J-30, about 500 decisions); tests that
change data create their own decisions and run a cycle themselves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from inbound_helpers import TARGET_DECISIONS, Backfill, InboundEnv, new_decisions, write_config

from vtdui.config import load_config
from vtdui.plugins import get_plugin_manager
from vtdui.runtime import Runtime
from vtdui.simulator.server import start_simulator

#: Figures measured by the fixtures, printed at the end of the session.
_FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the measured back-fill figures."""
    for line in _FIGURES:
        terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def inbound_env(hapi_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InboundEnv]:
    """The simulator (mTLS + OAuth2, J-30 enforced, 100 ids per page) and the DUI's configuration."""
    tmp = tmp_path_factory.mktemp("inbound")
    seed = random.SystemRandom().randrange(1, 10**9)
    sim = start_simulator(tmp / "simulator", seed=seed, n_decisions=800, port=0, admin_port=0,
                          hapi_base_url=hapi_base_url, page_size=100, max_lookback_days=30)
    try:
        info = sim.info
        first, second = info["legal_entities"][0], info["legal_entities"][1]
        esat = first["establishments"][0]
        assert esat["is_esat"], "the simulator's first establishment is an ESAT"
        chosen = {first["finess_ej"]: first["establishments"][:2], second["finess_ej"]: second["establishments"][:1]}
        egs = [e["finess_eg"] for group in chosen.values() for e in group]
        env = InboundEnv(sim=sim, config_path=tmp / "vtdui.toml", egs=egs, esat=esat["finess_eg"],
                         started=datetime.now(UTC), hapi_base_url=hapi_base_url, tmp=tmp)
        present = set().union(*env.in_window(datetime.now(UTC))[0].values())
        missing = TARGET_DECISIONS - len(present)
        # top up: mostly one establishment each, every fifth one notified to two of ours (shared decision)
        patterns = [[egs[0]], [egs[1]], [egs[2]], [egs[0]], [egs[1], egs[2]]]
        for index in range(max(missing, 0)):
            new_decisions(sim, patterns[index % len(patterns)])
        write_config(env.config_path, sim, chosen, state_dir=tmp / "dui-state", hapi_base_url=hapi_base_url)
        yield env
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def runtime(inbound_env: InboundEnv) -> Iterator[Runtime]:
    """The DUI process: state store, HAPI store, ViaTrajectoire clients, sync engine (built-in mapping only)."""
    config = load_config(inbound_env.config_path)
    with Runtime(config, pm=get_plugin_manager(None, load_entrypoints=False)) as rt:
        yield rt


@pytest.fixture(scope="module")
def backfill(inbound_env: InboundEnv, runtime: Runtime) -> Backfill:
    """Run the first cycle (J-30 back-fill of about 500 decisions over three establishments)."""
    at = datetime.now(UTC)
    expected, before_window = inbound_env.in_window(at)
    started = time.perf_counter()
    report = runtime.sync.run_once()
    seconds = time.perf_counter() - started
    pairs = sum(len(v) for v in expected.values())
    decisions = len(set().union(*expected.values()))
    _FIGURES.append(f"inbound back-fill: {decisions} decisions, {pairs} work-list items over {len(expected)} "
                    f"establishments (one ESAT) in {seconds:.1f} s ({pairs / seconds:.1f} items/s)")
    return Backfill(report=report, seconds=seconds, expected=expected, before_window=before_window, at=at)
