"""vtdui.fhir_structure: the R4B structural check of what vtdui sends and receives."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from conformance_examples import consent, document_reference, motif_esms, statut_esms, task
from fhir.resources.R4B.task import Task

from vtdui import sdo
from vtdui.conformance import check_esms_document_reference, check_esms_task, has_errors
from vtdui.fhir_structure import RULE, check_structure, typed_model
from vtdui.simulator.resources import esms_task, operation_outcome, searchset


def _task() -> dict[str, Any]:
    return task(statut_esms("41", "Contact effectué"), motif_esms("152", "L'usager a visité l'ESMS"))


@pytest.mark.parametrize("resource", [_task(), consent(), document_reference("decision"),
                                      document_reference("evaluation")], ids=lambda r: r["resourceType"])
def test_the_ig_examples_are_well_formed(resource: dict[str, Any]) -> None:
    assert check_structure(resource) == []


def test_what_the_simulator_serves_is_well_formed() -> None:
    flux5 = esms_task(id_nat_struct="1350000022", nom_esms="ESAT", id_decision="D-1", id_nat_decision="VT-1",
                      statut_esms=("46", None), motif_esms=("114", None), date_statut_esms=date(2026, 5, 12),
                      unit={"id_unite": "U1", "nom_unite": "Unité", "categorie_organisation": "01",
                            "mode_prise_charge": "46", "temporalite_accueil": "02", "accueil_sequentiel": True},
                      statut_unite=("46", None), last_updated=datetime(2026, 5, 13, 8, tzinfo=UTC))
    flux5["id"] = "tk-1"
    bundle = searchset([flux5], profile=sdo.PROFILE_TASK, base_url="https://vt.example/fhir", total=1,
                       self_url="https://vt.example/fhir/Task?x=1", next_url="https://vt.example/fhir/Task?x=2")
    for resource in (flux5, bundle, operation_outcome("invalid", "refused")):
        assert check_structure(resource) == [], resource["resourceType"]


# each change passes the IG rules (vtdui.conformance does not look there) and breaks the R4 structure
BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "wrong datatype deep in an element": (
        lambda r: r.__setitem__("executionPeriod", {"start": True}), "Task.executionPeriod.start", "datetime"),
    "wrong primitive datatype": (lambda r: r.__setitem__("note", [{"text": 12}]), "Task.note[0].text", "string"),
    "unknown element": (lambda r: r.__setitem__("statut", "41"), "Task.statut", "unknown element"),
    "unknown element in an input": (lambda r: r["input"][0].__setitem__("valeur", "x"), "Task.input[0].valeur",
                                    "unknown element"),
    "a list for a 0..1 element": (lambda r: r.__setitem__("owner", [{"reference": "Organization/o1"}]),
                                  "Task.owner", "single element"),
    "an object for a 0..* element": (lambda r: r.__setitem__("note", {"text": "x"}), "Task.note", "list"),
    "a missing 1..1 element": (lambda r: r.__delitem__("intent"), "Task.intent", "required"),
}


@pytest.mark.parametrize("name", BREAKS)
def test_structural_breaks_are_found_where_the_ig_rules_see_nothing(name: str) -> None:
    change, path, says = BREAKS[name]
    resource = _task()
    change(resource)
    if name != "a missing 1..1 element":  # intent is also an IG rule; the others are structure only
        assert not has_errors(check_esms_task(resource))
    found = check_structure(resource)
    assert [v.path for v in found] == [path]
    assert found[0].rule == RULE and found[0].severity == "error" and says in found[0].message


def test_consent_and_document_reference_breaks() -> None:
    broken = consent()
    broken["provision"]["data"][0]["reference"]["identifier"]["value"] = 123456
    broken["category"] = broken["category"][0]
    assert {v.path for v in check_structure(broken)} == {
        "Consent.provision.data[0].reference.identifier.value", "Consent.category"}
    document = document_reference()
    document["type"]["coding"][0]["userSelected"] = {"value": True}
    assert not has_errors(check_esms_document_reference(document))
    assert [v.path for v in check_structure(document)] == ["DocumentReference.type.coding[0].userSelected"]


def test_messages_never_carry_the_values_found() -> None:
    secret = "Dupont Jean né le 1950-01-01"
    resource = _task()
    resource["input"][1]["valueString"] = {"text": secret}
    resource["note"] = [{"text": 4242424242, "authorString": [secret]}]
    resource["executionPeriod"] = {"start": secret}
    resource[secret] = secret
    found = check_structure(resource)
    assert len(found) >= 4
    for violation in found:
        assert secret not in str(violation) and "4242424242" not in str(violation)
        assert "Dupont" not in violation.message


@pytest.mark.parametrize(("resource", "says"), [
    ({"status": "current"}, "resourceType is missing"),
    ({"resourceType": 3}, "resourceType is missing"),
    ({"resourceType": "NotAResource"}, "is not a FHIR R4 resource"),
])
def test_a_resource_without_a_known_type_is_named(resource: dict[str, Any], says: str) -> None:
    [violation] = check_structure(resource)
    assert says in violation.message and violation.rule == RULE


def test_the_check_leaves_its_input_as_it_was() -> None:
    resource = _task()
    kept = copy.deepcopy(resource)
    check_structure(resource)
    assert resource == kept


def test_typed_model_for_hook_authors() -> None:
    model = typed_model(_task())
    assert isinstance(model, Task) and model.intent == "plan"
    assert model.input is not None and model.input[0].valueIdentifier is not None
