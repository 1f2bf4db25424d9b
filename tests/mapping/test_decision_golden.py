"""Golden output of the decision mapping: the simulator's dataset mapped now must equal what was recorded.

The recorded file (``golden/decision_entries.json``) was written from the mapping before its speed work
(issue 17: shallow copies in :mod:`vtdui.mapping.worklist`); any change of the entries a decision maps to,
however small, fails here. Per decision it keeps the SHA-256 of the whole entry list (canonical JSON) and,
readable in a failing diff, the work-list Task in full.

After a deliberate change of the mapping, record the file again and review its diff::

    VTDUI_RECORD_GOLDEN=1 python -m pytest tests/mapping/test_decision_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mapping_helpers import NOW, make_context

from vtdui.cda.parse import parse_decision
from vtdui.mapping import map_decision_entries
from vtdui.simulator.dataset import Dataset

GOLDEN = Path(__file__).resolve().parent / "golden" / "decision_entries.json"
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


def test_decision_mapping_matches_the_recorded_golden_output() -> None:
    current = mapped_dataset()
    if os.environ.get("VTDUI_RECORD_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(current, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        pytest.skip(f"golden output recorded in {GOLDEN.name}")
    recorded = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(current) >= N_DECISIONS  # every decision maps, some for several establishments
    assert sorted(current) == sorted(recorded)
    for key, expected in recorded.items():
        assert current[key]["worklist_task"] == expected["worklist_task"], key
        assert current[key]["sha256"] == expected["sha256"], key
