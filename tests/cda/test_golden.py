"""The parser extracts exactly the recorded records from the golden documents (see ``make_golden.py``).

The golden file was written by the parser before it was rewritten for speed: any change of output (a value,
a warning, its order, a refusal reason) on these documents fails here, by name.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from make_golden import GOLDEN, outcome

from vtdui.cda.parse import parse_decision, parse_evaluation


def _golden() -> list[dict[str, Any]]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


CASES = _golden()


def test_golden_file_covers_the_tolerant_and_refusing_paths() -> None:
    assert Path(GOLDEN).is_file()
    assert len(CASES) >= 60
    assert sum(1 for case in CASES if "refused" in case) >= 4
    assert sum(1 for case in CASES if case.get("records", {}).get("warnings")) >= 15
    assert {case.get("kind") for case in CASES} >= {"DecisionDocument", "EvaluationDocument"}


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_same_records_as_recorded(case: dict[str, Any]) -> None:
    xml = case["xml_latin1"].encode("latin-1")
    expected = {key: case[key] for key in ("kind", "records", "refused") if key in case}
    assert outcome(xml) == expected
    # the typed entry points give the same records as parse_document
    if case.get("kind") == "DecisionDocument":
        assert parse_decision(xml).as_dict() == case["records"]
    elif case.get("kind") == "EvaluationDocument":
        assert parse_evaluation(xml).as_dict() == case["records"]
