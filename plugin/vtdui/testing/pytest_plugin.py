"""pytest fixtures of the vtdui testing kit (registered through the ``pytest11`` entry point ``vtdui``).

=============================  =========  ================================================================
fixture                        scope      what
=============================  =========  ================================================================
``vtdui_plugin_manager``       function   factory: ``vtdui_plugin_manager(my_plugin, ...)`` (see
                                          :func:`vtdui.testing.plugin_manager`)
``vtdui_config``               function   :func:`vtdui.testing.sample_config` (no certificate, no file)
``vtdui_inbound_context``      function   :func:`vtdui.testing.inbound_context`
``vtdui_outbound_context``     function   :func:`vtdui.testing.outbound_context`
``vtdui_decision_cda``         function   a flux-1 CDA (bytes) built by the simulator
``vtdui_evaluation_cda``       function   a flux-3 CDA (bytes) of the same decision
``vtdui_decision``             function   the decision CDA parsed (what ``map_decision`` receives)
``vtdui_evaluation``           function   the evaluation CDA parsed (what ``map_evaluation`` receives)
``vtdui_simulator``            session    a :class:`vtdui.testing.SimulatorSession` (in-process, real HTTP)
``vtdui_hapi``                 session    FHIR base URL of a real HAPI server: ``$FHIR_BASE_URL``, else the
                                          project's launcher (built once by ``vtdui hapi build``); the
                                          tests using it are skipped when neither is available
``vtdui_runtime``              function   factory: a :class:`vtdui.runtime.Runtime` of your plugins against
                                          ``vtdui_simulator`` and ``vtdui_hapi``
=============================  =========  ================================================================
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pluggy
import pytest

from vtdui import testing
from vtdui.cda.records import DecisionDocument, EvaluationDocument
from vtdui.config import Config, load_config
from vtdui.errors import VtduiError
from vtdui.hookcontext import InboundContext, OutboundContext
from vtdui.runtime import Runtime

RuntimeFactory = Callable[..., Runtime]


@pytest.fixture
def vtdui_plugin_manager() -> Callable[..., pluggy.PluginManager]:
    """Factory of plugin managers holding your plugins (arguments of :func:`vtdui.testing.plugin_manager`)."""
    return testing.plugin_manager


@pytest.fixture
def vtdui_config() -> Config:
    """A configuration of the sample establishments (two legal entities, ROR units), without certificates."""
    return testing.sample_config()


@pytest.fixture
def vtdui_inbound_context(vtdui_config: Config) -> InboundContext:
    """The context of an inbound hook, for the first sample establishment."""
    return testing.inbound_context(vtdui_config)


@pytest.fixture
def vtdui_outbound_context(vtdui_config: Config) -> OutboundContext:
    """The context of an outbound hook, for the first sample establishment."""
    return testing.outbound_context(vtdui_config)


@pytest.fixture
def vtdui_decision_cda() -> bytes:
    """A flux-1 "Individu et décision" CDA, as ViaTrajectoire serves it (built by the simulator)."""
    return testing.sample_decision_cda()


@pytest.fixture
def vtdui_evaluation_cda() -> bytes:
    """The flux-3 "Evaluation" CDA of the same decision."""
    return testing.sample_evaluation_cda()


@pytest.fixture
def vtdui_decision() -> DecisionDocument:
    """The sample decision, parsed."""
    return testing.sample_decision()


@pytest.fixture
def vtdui_evaluation() -> EvaluationDocument:
    """The sample evaluation, parsed."""
    return testing.sample_evaluation()


@pytest.fixture(scope="session")
def vtdui_hapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FHIR base URL of a real HAPI server for the session (``$FHIR_BASE_URL``, else the launcher)."""
    url = testing.hapi_base_url()
    if url is not None:
        yield url
        return
    from vtdui import hapi_server

    if shutil.which("java") is None:
        pytest.skip("no HAPI server: FHIR_BASE_URL is not set and there is no Java for vtdui's launcher")
    state_dir = tmp_path_factory.mktemp("vtdui-hapi")
    try:
        info = hapi_server.start(port=hapi_server.free_port(), data_dir=None, memory="1g", state_dir=state_dir,
                                 owner_pid=os.getpid(), timeout=float(os.environ.get("VTDUI_HAPI_START_TIMEOUT",
                                                                                       "300")))
    except VtduiError as exc:
        pytest.skip(f"no HAPI server: FHIR_BASE_URL is not set and vtdui's launcher did not start: {exc}")
    try:
        yield info.base_url
    finally:
        hapi_server.stop(state_dir=state_dir)


@pytest.fixture(scope="session")
def vtdui_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.SimulatorSession]:
    """The ViaTrajectoire simulator in this process, with no decision yet (publish them with ``new_decisions``).

    Its seed is random (``vtdui_simulator.seed``), so that its decisions and establishments never collide
    with what an earlier run left in a long-lived HAPI server.
    """
    seed = random.SystemRandom().randrange(10**9)
    with testing.SimulatorSession(tmp_path_factory.mktemp("vtdui-simulator"), seed=seed) as sim:
        yield sim


@pytest.fixture
def vtdui_runtime(vtdui_simulator: testing.SimulatorSession, vtdui_hapi: str,
                  tmp_path: Path) -> Iterator[RuntimeFactory]:
    """Factory: ``vtdui_runtime(my_plugin, establishments=[finess_eg])`` → a Runtime against the simulator and HAPI.

    ``runtime.sync.run_once()`` then runs a sync cycle (flux 1, 3, 5) with your plugins loaded, and
    ``runtime.store`` reads HAPI back. Every Runtime is closed at the end of the test.
    """
    made: list[Runtime] = []

    def factory(*plugins: object, establishments: Sequence[str] | None = None,
                hooks_dir: Path | None = None) -> Runtime:
        where = tmp_path / f"runtime-{len(made)}"
        path = vtdui_simulator.write_config(where / "vtdui.toml", hapi_base_url=vtdui_hapi, state_dir=where / "state",
                                            establishments=establishments, hooks_dir=hooks_dir)
        config = load_config(path)
        runtime = Runtime(config, pm=testing.plugin_manager(*plugins, hooks_dir=hooks_dir))
        made.append(runtime)
        return runtime

    yield factory
    for runtime in made:
        runtime.close()
