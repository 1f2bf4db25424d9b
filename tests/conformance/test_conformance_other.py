"""ESMSConsent, ESMSDocumentReference and the two search Bundles."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conformance_examples import STRUCT, consent, document_reference, statut_esms, task

from vtdui import sdo
from vtdui.conformance import check_bundle, check_esms_consent, check_esms_document_reference, check_resource
from vtdui.errors import RuleViolation
from vtdui.ig_package import IgPackage


def error_rules(found: list[RuleViolation]) -> set[str]:
    return {v.rule for v in found if v.severity == "error"}


def test_consent_positive() -> None:
    assert check_esms_consent(consent(), expected_struct=STRUCT, expected_decision="VT-9f2c1e") == []


def _broken(change: Any) -> dict[str, Any]:
    c = consent()
    change(c)
    return c


@pytest.mark.parametrize(("change", "rule"), [
    (lambda c: c["meta"].pop("source"), "ESMSConsent.meta.source"),
    (lambda c: c.pop("meta"), "ESMSConsent.meta.source"),
    (lambda c: c.update(status="inactive"), "ESMSConsent.status"),
    (lambda c: c["scope"]["coding"][0].update(code="research"), "ESMSConsent.scope"),
    (lambda c: c.pop("category"), "ESMSConsent.category"),
    (lambda c: c["category"].append({"text": "autre"}), "ESMSConsent.category"),
    (lambda c: c.pop("dateTime"), "ESMSConsent.dateTime"),
    (lambda c: c.update(dateTime="11/05/2026"), "ESMSConsent.dateTime"),
    (lambda c: c.update(dateTime="2026-05-11T10:00"), "ESMSConsent.dateTime"),
    (lambda c: c["provision"]["data"].append(copy.deepcopy(c["provision"]["data"][0])),
     "ESMSConsent.provision.data"),
    (lambda c: c.pop("provision"), "ESMSConsent.provision.data"),
    (lambda c: c["provision"]["data"][0].update(meaning="instance"), "ESMSConsent.provision.data.meaning"),
    (lambda c: c["provision"]["data"][0]["reference"]["identifier"].update(use="usual"),
     "ESMSConsent.provision.data.reference.identifier"),
    (lambda c: c["provision"]["data"][0]["reference"]["identifier"].pop("value"),
     "ESMSConsent.provision.data.reference.identifier"),
    (lambda c: c["provision"]["data"][0].update(reference={"reference": "DocumentReference/1"}),
     "ESMSConsent.provision.data.reference.identifier"),
    (lambda c: c.pop("policyRule"), "ppc-1"),
    (lambda c: c.update(resourceType="Task"), "resourceType"),
    (lambda c: c["meta"].update(profile=[sdo.PROFILE_TASK]), "meta.profile"),
])
def test_consent_negative(change: Any, rule: str) -> None:
    assert rule in error_rules(check_esms_consent(_broken(change)))


def test_consent_policy_instead_of_policy_rule_satisfies_ppc1() -> None:
    c = consent()
    del c["policyRule"]
    c["policy"] = [{"uri": "https://example.org/policy"}]
    assert check_esms_consent(c) == []


def test_consent_source_must_be_the_struct() -> None:
    c = consent(struct="urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7")
    assert error_rules(check_esms_consent(c, expected_struct=STRUCT)) == {"ESMSConsent.meta.source"}
    assert error_rules(check_esms_consent(c, expected_struct=STRUCT, source_mismatch="warning")) == set()
    assert error_rules(check_esms_consent(c)) == set()


def test_consent_expected_decision() -> None:
    assert "ESMSConsent.provision.data.reference.identifier" in error_rules(
        check_esms_consent(consent(), expected_decision="VT-other"))


@pytest.mark.parametrize("kind", ["decision", "evaluation"])
def test_document_reference_positive(kind: str) -> None:
    assert check_esms_document_reference(document_reference(kind)) == []


@pytest.mark.parametrize(("change", "rule"), [
    (lambda d: d["identifier"].pop(), "ESMSDocumentReference.identifier"),
    (lambda d: d["identifier"][1].update(use="usual"), "ESMSDocumentReference.identifier"),
    (lambda d: d["identifier"].append({"use": "secondary", "value": "x"}), "ESMSDocumentReference.identifier"),
    (lambda d: d.pop("status"), "ESMSDocumentReference.status"),
    (lambda d: d["type"]["coding"][0].update(code="11488-4"), "binding-type-document-reference-esms-valueset"),
    (lambda d: d["type"]["coding"].append({"system": sdo.LOINC, "code": sdo.TYPE_EVALUATION}),
     "binding-type-document-reference-esms-valueset"),
    (lambda d: d["content"].append(copy.deepcopy(d["content"][0])), "ESMSDocumentReference.content"),
    (lambda d: d["content"][0]["attachment"].pop("title"), "ESMSDocumentReference.content"),
    (lambda d: d["content"][0]["attachment"].update(title="Document évaluation"), "regle-NomPieceJointe-type"),
    (lambda d: d["content"][0]["attachment"].update(data="not base64!"), "ESMSDocumentReference.content.data"),
])
def test_document_reference_negative(change: Any, rule: str) -> None:
    d = document_reference()
    change(d)
    assert rule in error_rules(check_esms_document_reference(d))


def test_document_reference_without_data_warns_unless_subsetted() -> None:
    d = document_reference()
    del d["content"][0]["attachment"]["data"]
    assert [(v.rule, v.severity) for v in check_esms_document_reference(d)] == [("regle-Contenu", "warning")]
    d["meta"]["tag"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                         "code": "SUBSETTED"}]
    assert check_esms_document_reference(d) == []


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]}


def test_notification_bundle() -> None:
    good = task(statut_esms("46"), __import__("conformance_examples").motif_esms("114"))
    assert check_bundle(_bundle(good), "notification") == []
    assert check_bundle(_bundle(), "notification") == []  # an empty searchset is valid
    bad = task(statut_esms("46"))
    del bad["meta"]["lastUpdated"]  # entries come from the server: lastUpdated is required
    found = check_bundle(_bundle(good, bad, consent()), "notification")
    paths = {(v.rule, v.path) for v in found if v.severity == "error"}
    assert ("ESMSTask.meta.lastUpdated", "Bundle.entry[1].resource.meta.lastUpdated") in paths
    assert ("ASS_A32", "Bundle.entry[1].resource.input[4]") in paths
    assert ("Bundle.entry.resource", "Bundle.entry[2].resource") in paths


def test_decision_bundle() -> None:
    assert check_bundle(_bundle(document_reference(), document_reference("evaluation")),
                        "decision-evaluation") == []
    b = _bundle(document_reference())
    b["type"] = "collection"
    assert error_rules(check_bundle(b, "decision-evaluation")) == {"Bundle.type"}


def test_check_resource_dispatch() -> None:
    assert check_resource(consent()) == []
    assert check_resource(_bundle(task(statut_esms("42")))) == []
    assert {v.rule for v in check_resource({"resourceType": "Patient"})} == {"resourceType"}


def test_official_ig_bundle_profiles_fix_searchset(official_ig: IgPackage) -> None:
    # the official profiles say what check_bundle enforces: type searchset, entry resource 1..1 of one type
    for name, rtype in (("notification-esms", "Task"), ("decision-evaluation", "DocumentReference")):
        sd = official_ig.resource(f"StructureDefinition-esms-bundle-resultat-recherche-{name}.json")
        elements = {e["id"]: e for e in sd["snapshot"]["element"]}
        assert elements["Bundle.type"].get("patternCode", elements["Bundle.type"].get("fixedCode")) == "searchset"
        assert elements["Bundle.entry.resource"]["type"][0]["code"] == rtype
