"""The example custom mapper of ``hooks/examples/vendor_worklist.py``, tested as an integrator would.

Only the installed testing kit is used (``vtdui.testing`` and its pytest fixtures), nothing of ``tests/``:
the hook alone on a sample decision, then a sync cycle against the simulator and a real HAPI server where
one establishment runs the built-in mapping only and another the example loaded from ``hooks/examples``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from vtdui import testing
from vtdui.cda.records import DecisionDocument
from vtdui.hookcontext import InboundContext
from vtdui.plugins import describe_plugins
from vtdui.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parents[3] / "hooks" / "examples"
TAG_SYSTEM = "https://dui.example.org/tags"
EXTENSION = "https://dui.example.org/fhir/StructureDefinition/orientation-type"
DOSSIER = "https://dui.example.org/dossier"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_worklist_example", EXAMPLES / "vendor_worklist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_wrapper_amends_the_builtin_mapping(vtdui_decision: DecisionDocument,
                                                     vtdui_inbound_context: InboundContext) -> None:
    example = _example()
    pm = testing.plugin_manager(example)
    task = testing.worklist_task(pm.hook.map_decision(document=vtdui_decision, context=vtdui_inbound_context))
    right = vtdui_decision.decision.rights[0].type_droit
    assert [e["valueCoding"]["code"] for e in task["extension"] if e["url"] == EXTENSION] == [right.code]
    assert {"system": DOSSIER, "value": vtdui_decision.decision.id_decision} in task["identifier"]
    plain = testing.worklist_task(testing.plugin_manager().hook.map_decision(document=vtdui_decision,
                                                                           context=vtdui_inbound_context))
    assert not [e for e in plain.get("extension", []) if e["url"] == EXTENSION]


@pytest.mark.integration
@pytest.mark.simulator
def test_example_mapper_tags_and_extends_what_lands_in_hapi(vtdui_simulator: testing.SimulatorSession,
                                                            vtdui_runtime: Callable[..., Runtime]) -> None:
    entity = vtdui_simulator.info["legal_entities"][0]
    plain_eg, vendor_eg = entity["establishments"][0]["finess_eg"], entity["establishments"][1]["finess_eg"]
    plain_ids = [d["id_nat_decision"] for d in vtdui_simulator.new_decisions([plain_eg], count=2)]
    vendor_ids = [d["id_nat_decision"] for d in vtdui_simulator.new_decisions([vendor_eg], count=2)]

    plain = vtdui_runtime(establishments=[plain_eg])
    assert plain.sync.run_once().ok
    plain_tasks = [plain.store.worklist_item(n, plain_eg) for n in plain_ids]

    vendor = vtdui_runtime(establishments=[vendor_eg], hooks_dir=EXAMPLES)
    loaded = {p.name: p for p in describe_plugins(vendor.pm)}
    assert loaded["hooks-dir:vendor_worklist"].hooks == ("before_store", "map_decision")
    assert loaded["hooks-dir:vendor_worklist"].wrappers == ("map_decision",)
    report = vendor.sync.run_once()
    assert report.ok and report.total("decisions_stored") == 2
    store = vendor.store
    for id_nat in vendor_ids:
        task = store.worklist_item(id_nat, vendor_eg)
        assert task is not None
        decision = store.read("Basic", task["focus"]["reference"].split("/")[1])
        assert decision is not None
        assert [e["valueCoding"]["code"] for e in task.get("extension", []) if e["url"] == EXTENSION]
        dossier = [i["value"] for i in task["identifier"] if i.get("system") == DOSSIER]
        assert len(dossier) == 1
        assert store.search("Task", {"identifier": f"{DOSSIER}|{dossier[0]}"})[0]["id"] == task["id"]
        # the tag is on every resource of the decision's transaction, found with a _tag search
        patient_id = task["for"]["reference"].split("/")[1]
        assert store.search("Patient", {"_id": patient_id, "_tag": f"{TAG_SYSTEM}|viatrajectoire"})
        assert store.search("Basic", {"_id": decision["id"], "_tag": f"{TAG_SYSTEM}|viatrajectoire"})
        assert [t["code"] for t in task["meta"]["tag"] if t["system"] == TAG_SYSTEM] == ["viatrajectoire"]
    for task in plain_tasks:  # the built-in mapping alone writes none of it
        assert task is not None
        assert not [e for e in task.get("extension", []) if e["url"] == EXTENSION]
        assert not [i for i in task["identifier"] if i.get("system") == DOSSIER]
        assert not [t for t in task.get("meta", {}).get("tag", []) if t.get("system") == TAG_SYSTEM]
