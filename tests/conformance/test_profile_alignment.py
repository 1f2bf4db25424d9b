"""The rules of vtdui.conformance follow the official StructureDefinitions (``official_ig``: skipped without it)."""

from __future__ import annotations

from typing import Any

from vtdui import conformance, sdo
from vtdui.ig_package import IgPackage


def _differential(ig: IgPackage, name: str) -> dict[str, dict[str, Any]]:
    sd = ig.resource(f"StructureDefinition-{name}.json")
    assert sd["version"] == sdo.IG_VERSION
    return {e["id"]: e for e in sd["differential"]["element"]}


def test_task_slices_match_the_official_profile(official_ig: IgPackage) -> None:
    elements = _differential(official_ig, "esms-task")
    slices = {e["sliceName"]: e for e in elements.values() if e.get("path") == "Task.input" and "sliceName" in e}
    assert set(slices) == set(conformance._SLICE_VALUE)
    required = {name for name, e in slices.items() if e.get("min", 0) == 1}
    assert required == set(conformance._REQUIRED_SLICES)
    assert all(e["max"] == "1" for e in slices.values())
    for name in slices:
        value = elements[f"Task.input:{name}.value[x]"]
        assert "value" + value["type"][0]["code"][0].upper() + value["type"][0]["code"][1:] == \
            conformance._SLICE_VALUE[name]
        binding = value.get("binding")
        if binding:
            assert binding["strength"] == "required"
            assert conformance._BINDINGS[name][0] == binding["valueSet"]
        else:
            assert name not in conformance._BINDINGS
    assert elements["Task.input"]["min"] == 4
    assert elements["Task.status"]["patternCode"] == "completed"
    assert elements["Task.intent"]["patternCode"] == "plan"
    assert elements["Task.input:modePriseCharge.value[x].coding"]["max"] == "1"
    assert [c["key"] for c in elements["Task"]["constraint"]] == ["regle-StatutUnite"]


def test_input_codes_match_the_official_codesystem(official_ig: IgPackage) -> None:
    cs = official_ig.resource("CodeSystem-input-task-sdo-codesystem.json")
    assert cs["url"] == sdo.INPUT_SYSTEM
    assert {c["code"] for c in cs["concept"]} == set(conformance._KNOWN_INPUTS)


def test_consent_and_document_reference_fixed_values(official_ig: IgPackage) -> None:
    consent = _differential(official_ig, "esms-consent")
    assert consent["Consent.status"]["patternCode"] == "active"
    assert consent["Consent.provision.data.meaning"]["patternCode"] == "related"
    assert consent["Consent.provision.data.reference.identifier.use"]["patternCode"] == "official"
    scope = consent["Consent.scope"]["patternCodeableConcept"]["coding"][0]
    assert (scope["system"], scope["code"]) == (sdo.CONSENT_SCOPE_SYSTEM, sdo.CONSENT_SCOPE_CODE)
    docref = _differential(official_ig, "esms-document-reference")
    assert docref["DocumentReference.type"]["binding"]["valueSet"] == sdo.DOCUMENT_TYPE_VALUESET
    assert (docref["DocumentReference.identifier"]["min"], docref["DocumentReference.identifier"]["max"]) == (2, "2")
    vs = official_ig.resource("ValueSet-type-document-reference-esms-valueset.json")
    codes = {(i["system"], c["code"]) for i in vs["compose"]["include"] for c in i["concept"]}
    assert codes == {(sdo.LOINC, sdo.TYPE_DECISION), (sdo.LOINC, sdo.TYPE_EVALUATION)}
