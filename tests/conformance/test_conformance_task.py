"""ESMSTask rules: IG-built positive examples pass; each broken rule is reported by name."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conformance_examples import (
    STRUCT,
    coded,
    date_esms,
    item,
    motif_esms,
    motif_unite,
    statut_esms,
    statut_unite,
    task,
    unit_block,
)

from vtdui import sdo
from vtdui.conformance import (
    RULES,
    check_esms_task,
    has_errors,
    raise_for_violations,
    to_operation_outcome,
)
from vtdui.errors import ConformanceError, RuleViolation
from vtdui.terminology import Terminology


def errors(violations: list[RuleViolation]) -> list[RuleViolation]:
    return [v for v in violations if v.severity == "error"]


def rules(violations: list[RuleViolation], severity: str = "error") -> set[str]:
    return {v.rule for v in violations if v.severity == severity}


POSITIVE: dict[str, dict[str, Any]] = {
    "ESMS-only 42": task(statut_esms("42"), date_esms()),
    "41 + 152": task(statut_esms("41", "Contact effectué"), motif_esms("152", "L'usager a visité l'ESMS"),
                     date_esms()),
    "45 + 114": task(statut_esms("45"), motif_esms("114"), date_esms()),
    "unit block 185": task(statut_unite("185"), *unit_block()),
    "188 + 89": task(statut_unite("188"), motif_unite("89"), *unit_block(mode="47")),
    "ESAT 44 / 181 + 84": task(statut_esms("44"), date_esms(), statut_unite("181"), motif_unite("84"),
                               *unit_block(mode="48", categorie="09")),
    "J264 code 238 of TRE_R397": task(statut_unite("186"), *[
        i if i["type"]["text"] != sdo.MODE_PRISE_CHARGE else item(sdo.MODE_PRISE_CHARGE, **coded(sdo.TRE_R397, "238"))
        for i in unit_block()]),
}


@pytest.mark.parametrize("name", list(POSITIVE))
def test_ig_examples_are_accepted_without_errors(name: str) -> None:
    found = check_esms_task(POSITIVE[name], expected_struct=STRUCT)
    assert errors(found) == [], found


def test_clean_example_has_no_warning_either() -> None:
    assert check_esms_task(POSITIVE["41 + 152"], expected_struct=STRUCT) == []


def _without(t: dict[str, Any], code: str) -> dict[str, Any]:
    t = copy.deepcopy(t)
    t["input"] = [i for i in t["input"] if i["type"]["coding"][0]["code"] != code]
    return t


def _replace(t: dict[str, Any], code: str, new: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(t)
    t["input"] = [new if i["type"]["coding"][0]["code"] == code else i for i in t["input"]]
    return t


def _only(violations: list[RuleViolation], rule: str) -> RuleViolation:
    matching = [v for v in violations if v.rule == rule and v.severity == "error"]
    assert matching, f"{rule} not reported: {violations}"
    return matching[0]


def test_status_not_completed() -> None:
    t = task(statut_esms("42"))
    t["status"] = "in-progress"
    v = _only(check_esms_task(t), "ESMSTask.status")
    assert v.path == "Task.status" and "completed" in v.message


def test_intent_not_plan() -> None:
    t = task(statut_esms("42"))
    t["intent"] = "order"
    assert _only(check_esms_task(t), "ESMSTask.intent").path == "Task.intent"


def test_fewer_than_four_inputs() -> None:
    t = task()
    t["input"] = t["input"][:3]
    found = check_esms_task(t)
    assert "3 input(s)" in _only(found, "ESMSTask.input").message


def test_missing_id_nat_decision() -> None:
    t = _without(task(statut_esms("42"), date_esms()), sdo.ID_NAT_DECISION)
    v = _only(check_esms_task(t), "ESMSTask.input.slice-cardinality")
    assert "idNat_Decision" in v.message


def test_duplicated_slice() -> None:
    t = task(statut_esms("42"), statut_esms("43"))
    v = _only(check_esms_task(t), "ESMSTask.input.slice-cardinality")
    assert v.path == "Task.input[5]" and "statutESMS" in v.message


def test_unit_status_without_id_unite() -> None:
    t = _without(task(statut_unite("185"), *unit_block()), sdo.ID_UNITE)
    v = _only(check_esms_task(t), "regle-StatutUnite")
    assert "idUnite" in v.message and v.path == "Task.input[4]"


def test_unit_status_alone_lists_the_whole_block() -> None:
    v = _only(check_esms_task(task(statut_unite("182"))), "regle-StatutUnite")
    for name in sdo.UNIT_BLOCK:
        assert name in v.message


def test_45_without_motif() -> None:
    v = _only(check_esms_task(task(statut_esms("45"))), "ASS_A32")
    assert "45" in v.message and "114" in v.message


def test_41_without_motif_is_only_a_warning() -> None:
    found = check_esms_task(task(statut_esms("41")))
    assert not has_errors(found)
    assert "ASS_A32" in rules(found, "warning")


def test_mandatory_set_is_configurable() -> None:
    term = Terminology.load(motif_error={"41"}, motif_warning=set())
    assert _only(check_esms_task(task(statut_esms("41")), terminology=term), "ASS_A32")
    relaxed = Terminology.load(motif_error=set(), motif_warning=set())
    assert check_esms_task(task(statut_esms("45")), terminology=relaxed) == []


def test_41_with_113_not_allowed() -> None:
    v = _only(check_esms_task(task(statut_esms("41"), motif_esms("113"))), "ASS_A32")
    assert "113" in v.message and "150" in v.message  # says what would be allowed


def test_motif_without_status() -> None:
    v = _only(check_esms_task(task(motif_esms("114"))), "ASS_A32")
    assert "without statutESMS" in v.message


def test_motif_for_a_status_that_has_none() -> None:
    _only(check_esms_task(task(statut_esms("42"), motif_esms("114"))), "ASS_A32")


def test_unit_motif_not_allowed_for_unit_status() -> None:
    t = task(statut_unite("188"), motif_unite("84"), *unit_block())
    _only(check_esms_task(t), "ASS_A32")


def test_unit_status_code_in_statut_esms() -> None:
    v = _only(check_esms_task(task(statut_esms("185"))), "binding-JDV_J252")
    assert "statutUnite" in v.message and v.path == "Task.input[4].valueCodeableConcept"


def test_esms_status_code_in_statut_unite() -> None:
    v = _only(check_esms_task(task(statut_unite("42"), *unit_block())), "binding-JDV_J253")
    assert "statutESMS" in v.message


def test_mode_prise_charge_with_two_codings() -> None:
    two = item(sdo.MODE_PRISE_CHARGE, valueCodeableConcept={"coding": [
        {"system": sdo.TRE_R213, "code": "46"}, {"system": sdo.TRE_R213, "code": "47"}]})
    t = _replace(task(statut_unite("185"), *unit_block()), sdo.MODE_PRISE_CHARGE, two)
    v = _only(check_esms_task(t), "ESMSTask.modePriseCharge.coding")
    assert "2 codings" in v.message


def test_mode_prise_charge_not_in_j264() -> None:
    t = _replace(task(statut_unite("185"), *unit_block()), sdo.MODE_PRISE_CHARGE,
                 item(sdo.MODE_PRISE_CHARGE, **coded(sdo.TRE_R213, "49")))  # removed from J264 in 2026-07
    _only(check_esms_task(t), "binding-JDV_J264")


def test_legacy_mode_prise_charge_rule_is_optional() -> None:
    t = POSITIVE["J264 code 238 of TRE_R397"]
    assert not has_errors(check_esms_task(t))
    _only(check_esms_task(t, legacy_mode_prise_charge=True), "regle-ModePriseEnCharge")


def test_jdv_url_used_as_system() -> None:
    t = task(item(sdo.STATUT_ESMS, **coded(sdo.JDV_J252, "42")))
    found = check_esms_task(t)
    v = _only(found, "Coding.system")
    assert sdo.TRE_R357 in v.message and v.path.endswith(".coding[0].system")
    assert "binding-JDV_J252" in rules(found)


def test_wrong_struct() -> None:
    v = _only(check_esms_task(task(statut_esms("42")), expected_struct="1350000017"), "ESMSTask.idNat_Struct")
    assert "1350000017" in v.message


def test_wrong_value_type_for_slice() -> None:
    t = _replace(task(statut_esms("42")), sdo.ID_NAT_STRUCT, item(sdo.ID_NAT_STRUCT, valueString=STRUCT))
    v = _only(check_esms_task(t), "ESMSTask.input.value")
    assert "valueIdentifier" in v.message


def test_invalid_date() -> None:
    v = _only(check_esms_task(task(statut_esms("42"), date_esms("2026-02-30"))), "ESMSTask.input.date")
    assert v.path == "Task.input[5].valueDate"


def test_unknown_input_code() -> None:
    bad = {"type": {"coding": [{"system": sdo.INPUT_SYSTEM, "code": "statut"}]}, "valueString": "x"}
    _only(check_esms_task(task(statut_esms("42"), bad)), "ESMSTask.input.type")


def test_text_only_input_type_is_the_legacy_form() -> None:
    bad = {"type": {"text": "statutESMS"}, "valueCodeableConcept": coded(sdo.TRE_R357, "42")["valueCodeableConcept"]}
    v = _only(check_esms_task(task(bad)), "ESMSTask.input.type")
    assert "4.0.2" in v.message


def test_unknown_j34_code_of_tre_r244_is_a_warning() -> None:
    t = _replace(task(statut_unite("185"), *unit_block()), sdo.CATEGORIE_ORGANISATION,
                 item(sdo.CATEGORIE_ORGANISATION, **coded(sdo.TRE_R244, "999")))
    found = check_esms_task(t)
    assert not has_errors(found)
    assert "binding-JDV_J34" in rules(found, "warning")


def test_j34_code_of_another_system_is_an_error() -> None:
    t = _replace(task(statut_unite("185"), *unit_block()), sdo.CATEGORIE_ORGANISATION,
                 item(sdo.CATEGORIE_ORGANISATION, **coded(sdo.TRE_R213, "46")))
    _only(check_esms_task(t), "binding-JDV_J34")


def test_temporalite_outside_j30() -> None:
    t = _replace(task(statut_unite("185"), *unit_block()), sdo.TEMPORALITE_ACCUEIL,
                 item(sdo.TEMPORALITE_ACCUEIL, **coded(sdo.TRE_R240, "03")))
    _only(check_esms_task(t), "binding-JDV_J30")


def test_j250_motif_for_esms_status_51_is_the_known_nos_conflict() -> None:
    found = check_esms_task(task(statut_esms("51"), motif_esms("92")))
    assert not has_errors(found), found
    assert "binding-JDV_J251" in rules(found, "warning")


def test_wrong_display_is_a_warning() -> None:
    found = check_esms_task(task(statut_esms("41", "Admission impossible signalée"), motif_esms("152")))
    assert not has_errors(found)
    assert "Coding.display" in rules(found, "warning")


def test_last_updated_depends_on_mode() -> None:
    t = task(statut_esms("42"))
    del t["meta"]["lastUpdated"]
    assert "ESMSTask.meta.lastUpdated" in rules(check_esms_task(t), "warning")
    assert not has_errors(check_esms_task(t))
    _only(check_esms_task(t, mode="server-response"), "ESMSTask.meta.lastUpdated")
    _only(check_esms_task(t, strict=True), "ESMSTask.meta.lastUpdated")  # the profile as written (vtdui validate)
    t["meta"]["lastUpdated"] = "2026-05-12"
    _only(check_esms_task(t), "ESMSTask.meta.lastUpdated")


def test_meta_profile_optional_legacy_tolerated_other_refused() -> None:
    t = task(statut_esms("42"))
    del t["meta"]["profile"]
    assert check_esms_task(t) == []
    t["meta"]["profile"] = [f"{sdo.IG_BASE}/StructureDefinition/sdo-task"]
    assert not has_errors(check_esms_task(t))
    t["meta"]["profile"] = ["http://hl7.org/fhir/StructureDefinition/Task"]
    _only(check_esms_task(t), "meta.profile")


def test_not_a_task() -> None:
    _only(check_esms_task({"resourceType": "Consent"}), "resourceType")


def test_every_reported_rule_is_registered_and_outcome_maps_it() -> None:
    t = task(statut_esms("185"), motif_esms("113"), statut_unite("42"))
    t["status"] = "draft"
    found = check_esms_task(t, expected_struct="1999999999")
    assert all(v.rule in RULES for v in found)
    outcome = to_operation_outcome(found)
    assert outcome["resourceType"] == "OperationOutcome"
    assert len(outcome["issue"]) == len(found)
    by_expr = {i["expression"][0]: i for i in outcome["issue"]}
    assert by_expr["Task.status"]["code"] == "value"
    assert any(i["code"] == "invariant" for i in outcome["issue"])  # regle-StatutUnite / ASS_A32
    assert any(i["code"] == "code-invalid" for i in outcome["issue"])  # bindings
    assert {i["severity"] for i in outcome["issue"]} <= {"error", "warning"}


def test_outcome_of_no_violation_is_informational() -> None:
    assert to_operation_outcome([])["issue"][0]["severity"] == "information"


def test_raise_for_violations() -> None:
    raise_for_violations(check_esms_task(task(statut_esms("41"))))  # warnings only: no raise
    with pytest.raises(ConformanceError) as info:
        raise_for_violations(check_esms_task(task(statut_esms("45"))), "ESMSTask")
    assert [v.rule for v in info.value.violations] == ["ASS_A32"]
    assert "ESMSTask breaks 1 IG rule" in str(info.value)


def test_foreign_input_refused_when_sending_tolerated_on_receipt() -> None:
    foreign = {"type": {"coding": [{"system": "https://example.org/local", "code": "x"}]}, "valueString": "y"}
    t = task(statut_esms("42"), foreign)
    _only(check_esms_task(t), "ESMSTask.input.type")
    found = check_esms_task(t, mode="server-response")
    assert not has_errors(found) and "ESMSTask.input.type" in rules(found, "warning")


@pytest.mark.parametrize("struct", ["12345", "1ABCDEFGHI", "2350000017", "33500000170001"])
def test_malformed_id_nat_struct_is_an_error(struct: str) -> None:
    assert _only(check_esms_task(task(statut_esms("42"), struct=struct)), "ESMSTask.idNat_Struct").severity == "error"
