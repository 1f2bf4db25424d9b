"""Golden output of the decision mapping: the simulator's dataset mapped now must equal what was recorded.

The recorded files were written from the mapping before its speed work (issue 17: shallow copies in
:mod:`vtdui.mapping.worklist`); any change of what the mapping produces, however small, fails here:

* ``golden/decision_entries.json``: per decision and establishment, the SHA-256 of the whole entry list
  (canonical JSON) and, readable in a failing diff, the work-list Task in full;
* ``golden/remote_status_tasks.json``: the same work-list Tasks after a chain of flux-5 statuses (the other
  caller of the setters): the SHA-256 of each step's result, and the last Task of the first items in full.

After a deliberate change of the mapping, record the files again and review their diff::

    VTDUI_RECORD_GOLDEN=1 python -m pytest tests/mapping/test_decision_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mapping_helpers import NOW, esms_task, make_context

from vtdui.cda.parse import parse_decision
from vtdui.mapping import apply_remote_status, map_decision_entries
from vtdui.simulator.dataset import Dataset

GOLDEN = Path(__file__).resolve().parent / "golden" / "decision_entries.json"
GOLDEN_FLUX5 = GOLDEN.with_name("remote_status_tasks.json")
#: flux-5 statuses applied in turn: (ViaTrajectoire Task id, status, reason, own establishment?, description)
CHAIN = (("vt-a", "41", "151", True, None),  # our own status read back: nothing changes
         ("vt-b", "46", "109", True, "Refus MDPH"), ("vt-c", "54", None, True, None),
         ("vt-d", "41", None, False, None),  # another establishment's status: recorded only
         ("vt-e", "37", "114", False, "Déménagement"))
IN_FULL = 5
SEED = 17
N_DECISIONS = 40


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def mapped_dataset() -> dict[str, Any]:
    """Every decision of the seeded dataset, mapped for each establishment it is notified to."""
    dataset = Dataset.generate(seed=SEED, n_decisions=N_DECISIONS, now=NOW)
    out: dict[str, Any] = {}
    for simulated in dataset.decisions:
        raw = simulated.decision_cda()
        document = parse_decision(raw)
        for finess in simulated.notified_to:
            entries = map_decision_entries(document, make_context(dataset, simulated, finess_eg=finess), raw=raw)
            task = entries[-1]["resource"]
            assert task["resourceType"] == "Task"
            out[f"{document.id_nat_decision}|{finess}"] = {
                "sha256": hashlib.sha256(_canonical(entries).encode("utf-8")).hexdigest(),
                "worklist_task": task,
            }
    return out


def flux5_chain(mapped: dict[str, Any]) -> dict[str, Any]:
    """Each work-list Task (as HAPI would hold it) through :data:`CHAIN`; the steps' digests, some Tasks in full."""
    out: dict[str, Any] = {}
    for index, (key, item) in enumerate(sorted(mapped.items())):
        id_nat, finess = key.split("|")
        task = {**item["worklist_task"], "id": f"wl-{index}", "meta": {"versionId": "1"}}
        steps: list[str | None] = []
        for step, (vt_id, status, motif, own, description) in enumerate(CHAIN):
            event = esms_task(vt_id, id_nat_decision=id_nat, finess=finess if own else "999999999", status=status,
                              motif=motif, description=description, last_updated=f"2026-05-1{step}T08:00:00Z")
            changed = apply_remote_status(task, event)
            steps.append(None if changed is None else hashlib.sha256(_canonical(changed).encode()).hexdigest())
            task = changed if changed is not None else task
        out[key] = {"steps": steps, **({"last": task} if index < IN_FULL else {})}
    return out


def _check(path: Path, current: dict[str, Any]) -> dict[str, Any]:
    """The recorded value of ``path`` (or record ``current`` there when asked to)."""
    if os.environ.get("VTDUI_RECORD_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"golden output recorded in {path.name}")
    recorded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return recorded


def test_decision_mapping_matches_the_recorded_golden_output() -> None:
    current = mapped_dataset()
    recorded = _check(GOLDEN, current)
    assert len(current) >= N_DECISIONS  # every decision maps, some for several establishments
    assert sorted(current) == sorted(recorded)
    for key, expected in recorded.items():
        assert current[key]["worklist_task"] == expected["worklist_task"], key
        assert current[key]["sha256"] == expected["sha256"], key


def test_flux5_statuses_give_the_recorded_work_list_tasks() -> None:
    current = flux5_chain(mapped_dataset())
    recorded = _check(GOLDEN_FLUX5, current)
    assert sorted(current) == sorted(recorded)
    assert any(step is None for item in current.values() for step in item["steps"])  # the read-back case
    for key, expected in recorded.items():
        if "last" in expected:
            assert current[key]["last"] == expected["last"], key
        assert current[key]["steps"] == expected["steps"], key
