"""Helpers reading and writing the work-list Task."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from vtdui import sdo
from vtdui.mapping import systems, worklist


def _task() -> dict[str, Any]:
    task: dict[str, Any] = {"resourceType": "Task", "status": "requested", "intent": "order",
                            "code": {"coding": [{"system": systems.TASK_KIND_SYSTEM, "code": "worklist-item"}]}}
    task = worklist.set_input(task, sdo.ID_NAT_STRUCT, "1350000017")
    return worklist.set_business_status(task, "39", date="2026-05-10")


def test_set_business_status_writes_both_places_and_keeps_the_argument() -> None:
    task = _task()
    changed = worklist.set_business_status(task, "45", reason="114", date="2026-05-12")
    assert worklist.business_status(task) == "39"  # untouched
    assert worklist.business_status(changed) == "45"
    assert worklist.status_reason(changed) == "114"
    assert worklist.input_value(changed, sdo.STATUT_ESMS) == "45"
    assert worklist.input_value(changed, sdo.MOTIF_ESMS) == "114"
    assert worklist.input_value(changed, sdo.DATE_STATUT_ESMS) == "2026-05-12"
    assert changed["statusReason"]["coding"][0]["system"] == sdo.TRE_R358
    back = worklist.set_business_status(changed, "41")
    assert worklist.status_reason(back) is None
    assert worklist.find_input(back, sdo.MOTIF_ESMS) is None


def test_inputs_use_the_esms_task_codes_and_value_types() -> None:
    task = worklist.set_input(_task(), sdo.ACCUEIL_SEQUENTIEL, True)
    task = worklist.set_input(task, sdo.MODE_PRISE_CHARGE, "46")
    item = worklist.find_input(task, sdo.MODE_PRISE_CHARGE)
    assert item is not None
    assert item["type"]["coding"][0] == {"system": sdo.INPUT_SYSTEM, "code": "modePriseCharge"}
    assert item["valueCodeableConcept"]["coding"][0] == {"system": sdo.TRE_R213, "code": "46"}
    assert worklist.input_value(task, sdo.ACCUEIL_SEQUENTIEL) is True
    assert worklist.find_input(task, sdo.ACCUEIL_SEQUENTIEL)["valueBoolean"] is True  # type: ignore[index]
    assert worklist.id_nat_struct(task) == "1350000017"
    replaced = worklist.set_input(task, sdo.ID_NAT_STRUCT, "1350000025")
    assert [worklist.input_code(i) for i in replaced["input"]].count(sdo.ID_NAT_STRUCT) == 1


def _stored_task() -> dict[str, Any]:
    """A work-list item as read from HAPI: meta, a remote status, a note, a reason and a unit block."""
    task = worklist.set_business_status(_task(), "45", reason="114", date="2026-05-12")
    task = worklist.set_input(task, sdo.ID_UNITE, "U1")
    task = worklist.set_input(task, sdo.STATUT_UNITE, "45")
    return {**task, "id": "42", "meta": {"versionId": "3", "tag": [{"system": "urn:t", "code": "dui"}]},
            "extension": [{"url": systems.EXT_REMOTE_STATUS,
                           "extension": [{"url": systems.RS_TASK_ID, "valueString": "vt-1"}]}],
            "note": [{"authorString": "MDPH", "text": "note"}]}


_SETTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "set_input adds": lambda t: worklist.set_input(t, sdo.MODE_PRISE_CHARGE, "46"),
    "set_input replaces": lambda t: worklist.set_input(t, sdo.ID_NAT_STRUCT, "1350000025"),
    "set_input removes": lambda t: worklist.set_input(t, sdo.STATUT_UNITE, None),
    "set_input removes a missing input": lambda t: worklist.set_input(t, sdo.ACCUEIL_SEQUENTIEL, None),
    "set_business_status with reason and date": lambda t: worklist.set_business_status(
        t, "41", reason="151", date="2026-05-13", display="Contact", reason_display="Motif"),
    "set_business_status without reason": lambda t: worklist.set_business_status(t, "42"),
}


@pytest.mark.parametrize("setter", list(_SETTERS), ids=list(_SETTERS))
def test_setters_leave_the_callers_task_untouched(setter: str) -> None:
    task = _stored_task()
    before = copy.deepcopy(task)
    changed = _SETTERS[setter](task)
    assert task == before  # deep equality: nothing of the argument changed, at any depth
    assert changed is not task
    assert changed != before or setter == "set_input removes a missing input"
    # the caller may then replace members of the result (as screens and the flux-5 mapping do)
    changed["status"] = "in-progress"
    changed["meta"] = {"source": "urn:dui:screen"}
    assert task == before


def test_setters_from_an_empty_task() -> None:
    empty: dict[str, Any] = {"resourceType": "Task"}
    assert worklist.set_input(empty, sdo.NOM_ESMS, None) == empty
    assert "input" not in worklist.set_input(empty, sdo.NOM_ESMS, None)
    only = worklist.set_input(worklist.set_input(empty, sdo.NOM_ESMS, "ESMS"), sdo.NOM_ESMS, None)
    assert "input" not in only
    status = worklist.set_business_status(empty, "39")
    assert empty == {"resourceType": "Task"}
    assert [worklist.input_code(i) for i in status["input"]] == [sdo.STATUT_ESMS]
    assert "statusReason" not in status


def test_missing_values_are_none() -> None:
    empty: dict[str, Any] = {"resourceType": "Task"}
    assert worklist.business_status(empty) is None
    assert worklist.input_value(empty, sdo.STATUT_UNITE) is None
    assert worklist.id_nat_decision(empty) is None
    assert worklist.remote_statuses(empty) == []
    assert not worklist.is_worklist_task(empty)
    assert not worklist.is_worklist_task({"resourceType": "Patient"})


@pytest.mark.parametrize(("id_nat", "expected"), [
    ("VT1", "identifier=urn:vtdui:worklist|VT1\\|350000017"),
    ("A,B|C", "identifier=urn:vtdui:worklist|A\\,B\\|C\\|350000017"),
])
def test_worklist_query_escapes_search_separators(id_nat: str, expected: str) -> None:
    assert worklist.worklist_query(id_nat, "350000017") == expected
