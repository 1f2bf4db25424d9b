"""The failure model of the outbound hooks, one path per test, against the real HAPI server and simulator.

A recording plugin implements ``before_send``, ``after_send`` and ``on_send_error``; each test makes one
thing go wrong (a build breaking the IG rules, a ``before_send`` breaking a conformant resource or raising,
a refusal by ViaTrajectoire, passing faults past the retry window) and checks which hook fired, with which
error naming whom, and what reached the simulator. The work-list Tasks are real HAPI versions; the Emitter
is called directly (the REST-hook path has its own tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui import hookimpl, sdo
from vtdui.config import Config, RetrySettings, load_config
from vtdui.emit import Emitter
from vtdui.errors import ConformanceError, RemoteError, RetriableError, VtduiError
from vtdui.hookcontext import OutboundContext
from vtdui.outbox import ItemState, Outbox
from vtdui.plugins import get_plugin_manager
from vtdui.state import StateStore
from vtdui.store import HapiStore
from vtdui.viatrajectoire.client import ViaTrajectoireClient

pytestmark = [pytest.mark.integration, pytest.mark.simulator]


@dataclass
class Recorder:
    """A plugin recording what the send hooks saw; ``break_with`` makes its ``before_send`` misbehave."""

    break_with: str | None = None
    before: list[dict[str, Any]] = field(default_factory=list)
    after: list[dict[str, Any]] = field(default_factory=list)
    errors: list[VtduiError] = field(default_factory=list)

    @hookimpl
    def before_send(self, resource: dict[str, Any], flux: str, context: OutboundContext) -> None:
        self.before.append(resource)
        if self.break_with == "drop-intent":
            del resource["intent"]
        elif self.break_with == "raise":
            raise RuntimeError("vendor journal unavailable")
        elif self.break_with == "note-object":  # Task.note is 0..*: an object is not well-formed FHIR
            resource["note"] = {"text": "vu avec la famille"}

    @hookimpl
    def after_send(self, resource: dict[str, Any], response: dict[str, Any], flux: str,
                   context: OutboundContext) -> None:
        self.after.append(response)

    @hookimpl
    def on_send_error(self, resource: dict[str, Any], error: VtduiError, flux: str,
                      context: OutboundContext) -> None:
        self.errors.append(error)


@dataclass
class BreakingBuild:
    """Wraps the ESMSTask builders and spoils the structure of what they return (a build hook author's slip)."""

    spoil: Callable[[dict[str, Any]], None]

    @hookimpl(wrapper=True)
    def build_esms_task(self, change: Any, context: OutboundContext) -> Generator[None, Any, Any]:
        task = yield
        if task is not None:
            self.spoil(task)
        return task


@dataclass
class Env:
    config: Config
    store: HapiStore
    outbox: Outbox
    emitter: Emitter
    recorder: Recorder
    sim: Any
    fhir: httpx.Client

    def decision(self) -> tuple[str, dict[str, Any]]:
        eg = self.config.establishments()[0][1].finess_eg
        response = httpx.post(f"{self.sim.admin_url}/decisions", json={"notified_to": [eg]}, timeout=30)
        assert response.status_code == 201, response.text
        return eg, response.json()["decisions"][0]

    def change(self, statut: str, motif: str | None) -> tuple[list[Any], str]:
        """Write a work-list Task in HAPI (39 by the plugin, then ``statut`` by a user); enqueue the change."""
        eg, decision = self.decision()
        task_id = f"wl-{uuid.uuid4().hex[:12]}"
        first = self.fhir.put(f"Task/{task_id}", json=_task(task_id, eg, decision, "39", None, sdo.PLUGIN_SOURCE))
        assert first.status_code == 201, first.text
        second = self.fhir.put(f"Task/{task_id}", json=_task(task_id, eg, decision, statut, motif))
        assert second.status_code == 200, second.text
        return self.emitter.enqueue_change(second.json(), first.json()), decision["id_nat_decision"]

    def received(self, id_nat: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.sim.admin_url}/received", timeout=30).json()
        return [r for r in body["requests"] if r["method"] == "POST" and r["path"].endswith("/Task")
                and id_nat in str(r["body"])]

    def fault(self, **rule: Any) -> None:
        response = httpx.post(f"{self.sim.admin_url}/faults", json=rule, timeout=30)
        assert response.status_code == 201, response.text


def _task(task_id: str, eg: str, decision: dict[str, Any], statut: str, motif: str | None,
          source: str | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task", "id": task_id, "status": "in-progress", "intent": "order", "meta": {},
        "identifier": [{"system": "urn:vtdui:worklist", "value": f"{decision['id_nat_decision']}|{eg}"}],
        "code": {"coding": [{"system": "urn:vtdui:task-kind", "code": "worklist-item"}]},
        "owner": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1" + eg}},
        "businessStatus": {"coding": [{"system": sdo.TRE_R357, "code": statut}]},
        "input": [
            {"type": sdo.input_type(sdo.ID_DECISION), "valueIdentifier": {"value": decision["id_decision"]}},
            {"type": sdo.input_type(sdo.ID_NAT_DECISION), "valueIdentifier": {"value": decision["id_nat_decision"]}},
        ],
    }
    if motif:
        task["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": motif}]}
    if source:
        task["meta"]["source"] = source
    return task


@contextmanager
def _env(hapi: Any, sim: Any, tmp_path: Path, fhir: httpx.Client, recorder: Recorder,
         retry: RetrySettings | None = None, *extra_plugins: object) -> Iterator[Env]:
    config = load_config(sim.config_path, env={"FHIR_BASE_URL": hapi.base_url})
    if retry is not None:
        config = replace(config, retry=retry)
    store = HapiStore(hapi.base_url)
    state = StateStore(tmp_path / "state")
    outbox = Outbox.open(tmp_path / "state", config.retry)
    pm = get_plugin_manager(None, load_entrypoints=False)
    pm.register(recorder, name="recorder")
    for number, plugin in enumerate(extra_plugins):
        pm.register(plugin, name=f"extra-{number}")
    clients: list[ViaTrajectoireClient] = []

    def client_for(entity: Any) -> ViaTrajectoireClient:
        clients.append(ViaTrajectoireClient(config.viatrajectoire, entity, config.retry))
        return clients[-1]

    try:
        yield Env(config, store, outbox, Emitter(config, outbox, client_for, pm, store, state), recorder, sim, fhir)
    finally:
        httpx.delete(f"{sim.admin_url}/faults", timeout=30)
        for client in clients:
            client.close()
        outbox.close()
        state.close()
        store.close()


@pytest.fixture
def env(hapi: Any, vt_simulator: Any, tmp_path: Path, fhir: httpx.Client) -> Iterator[Env]:
    with _env(hapi, vt_simulator, tmp_path, fhir, Recorder()) as made:
        yield made


def test_a_build_breaking_the_ig_rules_fires_on_send_error_and_never_reaches_before_send(env: Env) -> None:
    # 45 "admission impossible" without its mandatory reason (ASS_A32): the built-in builder copies it as is
    [item], id_nat = env.change("45", None)
    assert item.state is ItemState.FAILED
    [error] = env.recorder.errors
    assert isinstance(error, ConformanceError) and error.culprit == "build"
    assert "build_esms_task" in str(error) and "ASS_A32" in str(error)
    assert env.recorder.before == []

    # an operator retries it unchanged: it fails again, blamed on the build, before_send still not called
    env.outbox.retry(item.id)
    report = env.emitter.run_pending()
    assert report.failed == [item.id] and report.sent == []
    assert env.recorder.before == []
    assert [e.culprit for e in env.recorder.errors if isinstance(e, ConformanceError)] == ["build", "build"]
    assert "before_send was not called" in str(env.recorder.errors[-1])
    # rebuilt from the (unchanged) local Task: still broken, the builder is named again
    assert env.emitter.rebuild(item.id).state is ItemState.FAILED
    assert [e.culprit for e in env.recorder.errors if isinstance(e, ConformanceError)] == ["build"] * 3
    assert "rebuilt by build_esms_task" in str(env.recorder.errors[-1])
    assert env.recorder.before == []
    assert env.received(id_nat) == []


def test_before_send_sees_a_conformant_resource_and_is_blamed_when_it_breaks_it(hapi: Any, vt_simulator: Any,
                                                                                  tmp_path: Path,
                                                                                  fhir: httpx.Client) -> None:
    with _env(hapi, vt_simulator, tmp_path, fhir, Recorder(break_with="drop-intent")) as env:
        [item], id_nat = env.change("41", "152")
        assert item.state is ItemState.PENDING and env.recorder.errors == []
        report = env.emitter.run_pending()
        assert report.failed == [item.id]
        [seen] = env.recorder.before
        assert "intent" not in seen  # it was there when the hook got it: the hook removed it
        [error] = env.recorder.errors
        assert isinstance(error, ConformanceError) and error.culprit == "before_send"
        assert "recorder" in str(error)  # the plugins implementing before_send are named
        assert env.outbox.show(item.id).state is ItemState.FAILED
        assert env.received(id_nat) == []


def test_a_before_send_that_raises_fails_the_item_and_fires_on_send_error(hapi: Any, vt_simulator: Any,
                                                                           tmp_path: Path, fhir: httpx.Client) -> None:
    with _env(hapi, vt_simulator, tmp_path, fhir, Recorder(break_with="raise")) as env:
        [item], id_nat = env.change("41", "152")
        assert env.emitter.run_pending().failed == [item.id]
        [error] = env.recorder.errors
        assert "before_send" in str(error) and "vendor journal unavailable" in str(error)
        assert env.recorder.after == [] and env.received(id_nat) == []


def test_a_refusal_by_viatrajectoire_fires_on_send_error_with_its_outcome(env: Env) -> None:
    env.fault(route="POST /fhir/Task", action="status", status=422, count=1)
    [item], id_nat = env.change("41", "152")
    report = env.emitter.run_pending()
    assert report.failed == [item.id]
    assert env.received(id_nat) == []  # the injected refusal stored nothing
    assert len(env.recorder.before) == 1 and env.recorder.after == []
    [error] = env.recorder.errors
    assert isinstance(error, RemoteError) and error.status == 422
    assert not isinstance(error, ConformanceError)  # no local rule broken: nobody of ours is blamed
    assert env.outbox.show(item.id).outcome is not None


def test_retries_given_up_fire_on_send_error_once(hapi: Any, vt_simulator: Any, tmp_path: Path,
                                                  fhir: httpx.Client) -> None:
    retry = RetrySettings(attempts=1, base_delay=0.01, max_delay=0.01, max_age_seconds=0.0)
    with _env(hapi, vt_simulator, tmp_path, fhir, Recorder(), retry) as env:
        env.fault(route="POST /fhir/Task", action="status", status=503, count=5)
        [item], _ = env.change("41", "152")
        report = env.emitter.run_pending()
        assert report.failed == [item.id] and report.rescheduled == []
        [error] = env.recorder.errors
        assert isinstance(error, RetriableError)
        assert "gave up" in (env.outbox.show(item.id).last_error or "")
        assert env.recorder.after == []


def test_an_accepted_resource_fires_after_send_only(env: Env) -> None:
    [item], id_nat = env.change("41", "152")
    assert env.emitter.run_pending().sent == [item.id]
    assert len(env.recorder.before) == 1 and len(env.recorder.after) == 1 and env.recorder.errors == []
    assert len(env.received(id_nat)) == 1


# -- FHIR R4 structure (vtdui.fhir_structure), checked with the IG rules: the same failure path ------------------

STRUCTURE_BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "wrong datatype deep in an element": (
        lambda t: t.__setitem__("executionPeriod", {"start": {"date": "2026-05-12"}}), "Task.executionPeriod.start"),
    "unknown element": (lambda t: t.__setitem__("statutESMS", "41"), "Task.statutESMS"),
    "a list for a 0..1 element": (lambda t: t.__setitem__("owner", [{"reference": "Organization/o1"}]),
                                  "Task.owner"),
}


@pytest.mark.parametrize("kind", STRUCTURE_BREAKS)
def test_a_build_that_is_not_well_formed_fhir_is_refused_before_sending(hapi: Any, vt_simulator: Any,
                                                                        tmp_path: Path, fhir: httpx.Client,
                                                                        kind: str) -> None:
    spoil, path = STRUCTURE_BREAKS[kind]
    with _env(hapi, vt_simulator, tmp_path, fhir, Recorder(), None, BreakingBuild(spoil)) as env:
        [item], id_nat = env.change("41", "152")  # conformant to the IG rules: only the structure is broken
        assert item.state is ItemState.FAILED
        [error] = env.recorder.errors
        assert isinstance(error, ConformanceError) and error.culprit == "build"
        assert "is not well-formed FHIR R4 (fhir-structure)" in str(error) and "build_esms_task" in str(error)
        assert [(v.rule, v.path) for v in error.violations if v.severity == "error"] == [("fhir-structure", path)]
        assert "fhir-structure" in (env.outbox.show(item.id).last_error or "")
        assert env.recorder.before == []

        env.outbox.retry(item.id)  # retried unchanged: refused again at delivery, before_send still not called
        assert env.emitter.run_pending().failed == [item.id]
        assert [e.culprit for e in env.recorder.errors if isinstance(e, ConformanceError)] == ["build", "build"]
        assert env.recorder.before == [] and env.received(id_nat) == []


def test_a_before_send_that_spoils_the_structure_is_blamed(hapi: Any, vt_simulator: Any, tmp_path: Path,
                                                           fhir: httpx.Client) -> None:
    with _env(hapi, vt_simulator, tmp_path, fhir, Recorder(break_with="note-object")) as env:
        [item], id_nat = env.change("41", "152")
        assert item.state is ItemState.PENDING
        assert env.emitter.run_pending().failed == [item.id]
        [error] = env.recorder.errors
        assert isinstance(error, ConformanceError) and error.culprit == "before_send"
        assert [(v.rule, v.path) for v in error.violations] == [("fhir-structure", "Task.note")]
        assert "vu avec la famille" not in str(error)  # the path and the kind of problem, never the value
        assert env.received(id_nat) == []
