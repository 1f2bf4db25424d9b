"""The sync's defences against answers of a wrong JSON shape, and its quarantine backoff (pure functions)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vtdui import sdo
from vtdui.errors import DocumentError
from vtdui.state import QuarantineItem
from vtdui.sync import (
    _attachment,
    _check_document_structure,
    _structure_problem,
    id_nat_decision_of_task,
    quarantine_due,
    quarantine_next_try,
    task_shape_error,
)


def _task() -> dict[str, Any]:
    def inp(code: str, **value: Any) -> dict[str, Any]:
        return {"type": {"coding": [{"system": sdo.INPUT_SYSTEM, "code": code}]}, **value}

    return {"resourceType": "Task", "id": "tk-1", "meta": {"lastUpdated": "2026-05-13T08:00:00.000+02:00"},
            "input": [inp(sdo.ID_NAT_STRUCT, valueIdentifier={"value": "1350000022"}),
                      inp(sdo.NOM_ESMS, valueString="ESAT"),
                      inp(sdo.ID_NAT_DECISION, valueIdentifier={"value": "VT-1"})]}


def test_a_well_formed_task_passes_and_gives_its_decision() -> None:
    assert task_shape_error(_task()) is None
    assert id_nat_decision_of_task(_task()) == "VT-1"


def test_an_input_typed_by_text_only_is_read() -> None:
    task = _task()
    task["input"][2]["type"] = {"text": sdo.ID_NAT_DECISION}
    assert task_shape_error(task) is None and id_nat_decision_of_task(task) == "VT-1"


@pytest.mark.parametrize(("change", "says"), [
    (lambda t: t.__setitem__("meta", "v1"), "Task.meta is not an object"),
    (lambda t: t.__setitem__("input", "idNat_Decision"), "Task.input is not a list"),
    (lambda t: t["input"].__setitem__(0, "idNat_Struct"), "Task.input[0] is not an object"),
    (lambda t: t["input"][0].__setitem__("type", "idNat_Struct"), "Task.input[0].type is not an object"),
    (lambda t: t["input"][0]["type"].__setitem__("coding", "x"), "Task.input[0].type.coding"),
    (lambda t: t["input"][2].__setitem__("valueIdentifier", "VT-1"), "Task.input[2].valueIdentifier"),
    (lambda t: t.__delitem__("id"), "Task.id"),
    (lambda t: t["input"].pop(2), "no input idNat_Decision"),
])
def test_every_wrong_shape_is_named_and_nothing_raises(change: Any, says: str) -> None:
    task = copy.deepcopy(_task())
    change(task)
    problem = task_shape_error(task)
    assert problem is not None and says in problem
    id_nat_decision_of_task(task)  # never raises, whatever the shape


@pytest.mark.parametrize("document", [
    {"content": [{"attachment": {"data": 12345}}]}, {"content": [{"attachment": {"data": ["x"]}}]},
    {"content": {"attachment": {"data": "x"}}}, {"content": [{"attachment": [{"data": "x"}]}]},
    {"meta": "v1", "content": [{"attachment": {"data": "x"}}]}, {"content": ["attachment"]},
])
def test_a_document_reference_of_a_wrong_shape_is_a_document_error(document: dict[str, Any]) -> None:
    with pytest.raises(DocumentError) as caught:
        _attachment(document)
    assert caught.value.reason == "malformed-resource"


def test_attachment_of_a_regular_document_reference() -> None:
    assert _attachment({"content": [{"attachment": {"data": "PD94", "contentType": "text/xml"}}]}) == ("PD94",
                                                                                                     "text/xml")
    assert _attachment({"content": []}) == (None, None)


def _item(attempts: int, last_tried: datetime) -> QuarantineItem:
    return QuarantineItem("k", "350000022", "1", "dec-1", None, "read-forbidden", "403", None,
                          last_tried.isoformat(), last_tried.isoformat(), attempts, None)


def test_backoff_doubles_up_to_the_ceiling_and_never_gives_up() -> None:
    now = datetime(2026, 5, 13, 8, 0, tzinfo=UTC)
    waits = [(quarantine_next_try(_item(n, now), 300, 86400) or now) - now for n in (1, 2, 3, 10, 50, 100_000)]
    assert waits == [timedelta(seconds=300), timedelta(seconds=600), timedelta(seconds=1200),
                     timedelta(seconds=86400), timedelta(seconds=86400), timedelta(seconds=86400)]
    assert not quarantine_due(_item(50, now), now + timedelta(hours=23), 300, 86400)
    assert quarantine_due(_item(50, now), now + timedelta(days=1), 300, 86400)  # still tried after 50 failures
    assert quarantine_due(_item(1, datetime(1970, 1, 1, tzinfo=UTC)), now, 300, 86400)  # `quarantine retry`


# -- the FHIR R4 structural check, after the hand-written shape checks -------------------------------------------


@pytest.mark.parametrize(("change", "path"), [
    (lambda t: t["input"][1].__setitem__("valueString", {"text": "ESAT"}), "Task.input[1].valueString"),
    (lambda t: t.__setitem__("statut", "41"), "Task.statut"),
    (lambda t: t.__setitem__("for", [{"reference": "Patient/p1"}]), "Task.for"),
    (lambda t: t["input"][0]["valueIdentifier"].__setitem__("period", {"end": ["2026"]}),
     "Task.input[0].valueIdentifier.period.end"),
])
def test_a_task_the_shape_checks_pass_is_malformed_for_the_structural_check(change: Any, path: str) -> None:
    task = {**_task(), "status": "completed", "intent": "plan"}
    change(task)
    assert task_shape_error(task) is None  # the hand-written checks do not look there
    problem = _structure_problem(task)
    assert problem is not None and problem.startswith("not well-formed FHIR R4 (fhir-structure): ")
    assert problem.split(": ", 2)[1] == path, problem
    assert "ESAT" not in problem and "Patient/p1" not in problem


def test_a_well_formed_task_has_no_structural_problem() -> None:
    assert _structure_problem({**_task(), "status": "completed", "intent": "plan"}) is None


def _document() -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": "dr-1", "status": "current",
            "type": {"coding": [{"system": sdo.LOINC, "code": sdo.TYPE_DECISION}]},
            "content": [{"attachment": {"contentType": "text/xml", "data": "PD94"}}]}


def test_a_document_reference_deep_datatype_error_is_a_malformed_resource() -> None:
    _check_document_structure(_document())
    document = _document()
    document["type"]["coding"][0]["code"] = {"code": sdo.TYPE_DECISION}
    with pytest.raises(DocumentError) as caught:
        _check_document_structure(document)
    assert caught.value.reason == "malformed-resource"
    assert "DocumentReference.type.coding[0].code" in str(caught.value)


def test_the_attachment_data_is_left_to_the_decoder() -> None:
    document = _document()
    document["content"][0]["attachment"]["data"] = "not base64 at all: the CDA decoder says so, with its size cap"
    _check_document_structure(document)
    assert document["content"][0]["attachment"]["data"].startswith("not base64")  # the document is not changed
