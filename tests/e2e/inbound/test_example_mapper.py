"""The example custom mapper of ``hooks/examples/vendor_worklist.py`` changes what lands in HAPI.

A small simulator of its own (two decisions per establishment): one establishment is synced with the
built-in mapping only, another with the example loaded from ``hooks/examples``; only the second one's
resources carry the vendor's tag, extension and identifier.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inbound_helpers import new_decisions, write_config

from vtdui.config import load_config
from vtdui.plugins import describe_plugins, get_plugin_manager
from vtdui.runtime import Runtime
from vtdui.simulator.server import RunningSimulator, start_simulator

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

EXAMPLES = Path(__file__).resolve().parents[3] / "hooks" / "examples"
TAG_SYSTEM = "https://dui.example.org/tags"
EXTENSION = "https://dui.example.org/fhir/StructureDefinition/orientation-type"
DOSSIER = "https://dui.example.org/dossier"


@pytest.fixture(scope="module")
def small_sim(tmp_path_factory: pytest.TempPathFactory, hapi_base_url: str) -> Iterator[RunningSimulator]:
    sim = start_simulator(tmp_path_factory.mktemp("example-sim"), seed=random.SystemRandom().randrange(10**9),
                          n_decisions=0, port=0, admin_port=0, hapi_base_url=hapi_base_url)
    yield sim
    sim.stop()


def _runtime(sim: RunningSimulator, tmp: Path, hapi_base_url: str, eg: dict[str, Any], ej: str,
             hooks: Path | None) -> Runtime:
    tmp.mkdir(parents=True, exist_ok=True)
    path = write_config(tmp / "vtdui.toml", sim, {ej: [eg]}, state_dir=tmp / "state", hapi_base_url=hapi_base_url)
    return Runtime(load_config(path), pm=get_plugin_manager(hooks, load_entrypoints=False))


def test_example_mapper_tags_and_extends_what_lands_in_hapi(small_sim: RunningSimulator, tmp_path: Path,
                                                            hapi_base_url: str) -> None:
    entity = small_sim.info["legal_entities"][0]
    plain_eg, vendor_eg = entity["establishments"][0], entity["establishments"][1]
    plain_ids = [d["id_nat_decision"] for d in new_decisions(small_sim, [plain_eg["finess_eg"]], count=2)]
    vendor_ids = [d["id_nat_decision"] for d in new_decisions(small_sim, [vendor_eg["finess_eg"]], count=2)]

    with _runtime(small_sim, tmp_path / "plain", hapi_base_url, plain_eg, entity["finess_ej"], None) as plain:
        assert plain.sync.run_once().ok
        plain_tasks = [plain.store.worklist_item(n, plain_eg["finess_eg"]) for n in plain_ids]
    with _runtime(small_sim, tmp_path / "vendor", hapi_base_url, vendor_eg, entity["finess_ej"], EXAMPLES) as vendor:
        loaded = {p.name: p.hooks for p in describe_plugins(vendor.pm)}
        assert loaded["hooks-dir:vendor_worklist"] == ("before_store", "map_decision")
        report = vendor.sync.run_once()
        assert report.ok and report.total("decisions_stored") == 2
        store = vendor.store
        state = small_sim.context.state
        for id_nat in vendor_ids:
            task = store.worklist_item(id_nat, vendor_eg["finess_eg"])
            assert task is not None
            expected = state.decisions[id_nat].sim.decision.rights[0].type_droit.code
            assert [e["valueCoding"]["code"] for e in task.get("extension", []) if e["url"] == EXTENSION] == [expected]
            dossier = [i["value"] for i in task["identifier"] if i.get("system") == DOSSIER]
            assert dossier == [state.decisions[id_nat].id_decision]
            assert store.search("Task", {"identifier": f"{DOSSIER}|{dossier[0]}"})[0]["id"] == task["id"]
            # the tag is on every resource of the decision's transaction, found with a _tag search
            patient_id = task["for"]["reference"].split("/")[1]
            assert store.search("Patient", {"_id": patient_id, "_tag": f"{TAG_SYSTEM}|viatrajectoire"})
            assert store.search("Basic", {"_id": task["focus"]["reference"].split("/")[1],
                                          "_tag": f"{TAG_SYSTEM}|viatrajectoire"})
            assert [t["code"] for t in task["meta"]["tag"] if t["system"] == TAG_SYSTEM] == ["viatrajectoire"]
    for task in plain_tasks:  # the built-in mapping alone writes none of it
        assert task is not None
        assert not [e for e in task.get("extension", []) if e["url"] == EXTENSION]
        assert not [i for i in task["identifier"] if i.get("system") == DOSSIER]
        assert not [t for t in task.get("meta", {}).get("tag", []) if t.get("system") == TAG_SYSTEM]
