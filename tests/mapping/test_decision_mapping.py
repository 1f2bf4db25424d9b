"""The default flux-1 mapping: identifiers, codes, conditional requests, idempotency, updates."""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta
from typing import Any

from mapping_helpers import NOW, make_context, one, version_of, with_new_address

from vtdui import sdo
from vtdui.cda.parse import parse_decision
from vtdui.cda.records import DecisionDocument, InstanceId
from vtdui.hookcontext import InboundContext
from vtdui.mapping import MappingOptions, map_decision_entries, systems, worklist
from vtdui.mapping.builtin import map_decision
from vtdui.simulator.dataset import Dataset, SimulatedDecision


def _identifier(resource: dict[str, Any], system: str) -> dict[str, Any]:
    found = [i for i in resource.get("identifier", []) if i.get("system") == system]
    assert len(found) == 1, f"{resource['resourceType']} has {len(found)} identifiers of {system}"
    return found[0]


def test_every_entry_is_conditional_on_a_business_identifier(decision_doc: DecisionDocument,
                                                             context: InboundContext, decision_raw: bytes) -> None:
    entries = map_decision_entries(decision_doc, context, raw=decision_raw)
    kinds = [e["resource"]["resourceType"] for e in entries]
    assert kinds == ["Patient", "Organization", "Organization", "ServiceRequest", "Basic", "DocumentReference",
                     "Task"]
    for entry in entries:
        request = entry["request"]
        assert entry["fullUrl"].startswith("urn:uuid:")
        if request["method"] == "PUT":
            assert request["url"].startswith(f"{entry['resource']['resourceType']}?identifier=")
        else:
            assert request["method"] == "POST"
            assert request["ifNoneExist"].startswith("identifier=")
        assert entry["resource"]["meta"]["source"] == context.source
    # the work list and the organizations are created once and never overwritten by a sync
    assert one(entries, "Task")["request"]["method"] == "POST"
    assert {e["request"]["method"] for e in entries if e["resource"]["resourceType"] == "Organization"} == {"POST"}


def test_patient_is_keyed_by_ins_or_mdph_individual_id(decision_doc: DecisionDocument,
                                                       context: InboundContext) -> None:
    person = decision_doc.person
    assert person.ins_nir and person.mdph_individual_id is not None
    patient = one(map_decision_entries(decision_doc, context), "Patient")
    nir = _identifier(patient["resource"], sdo.INS_NIR_SYSTEM)
    assert nir["value"] == person.ins_nir
    assert nir["use"] == "official"
    assert nir["type"]["coding"][0] == {"system": systems.FR_CORE_V2_0203, "code": "INS-NIR"}
    mdph = _identifier(patient["resource"], f"urn:oid:{person.mdph_individual_id.root}")
    assert mdph["value"] == person.mdph_individual_id.extension
    assert mdph["type"]["coding"][0]["code"] == "PIN"
    # comma = OR: a person first received without INS still matches by the MDPH id
    assert patient["request"]["url"] == (
        f"Patient?identifier={sdo.INS_NIR_SYSTEM}|{person.ins_nir},"
        f"urn:oid:{person.mdph_individual_id.root}|{person.mdph_individual_id.extension}")
    resource = patient["resource"]
    assert person.birth_date is not None
    assert resource["birthDate"] == person.birth_date.isoformat()
    assert resource["gender"] in {"male", "female", "unknown"}
    assert resource["name"][0]["use"] == "official"
    assert resource["name"][0]["family"] == person.birth_name


def test_person_without_ins_is_keyed_by_mdph_id_only(decision_doc: DecisionDocument, context: InboundContext) -> None:
    doc = dataclasses.replace(decision_doc, person=dataclasses.replace(decision_doc.person, ins=None))
    patient = one(map_decision_entries(doc, context), "Patient")
    assert all(i["system"] != sdo.INS_NIR_SYSTEM for i in patient["resource"]["identifier"])
    assert patient["request"]["url"].count("|") == 1


def test_person_with_nia_gets_a_temporary_ins(decision_doc: DecisionDocument, context: InboundContext) -> None:
    nia = InstanceId(sdo.OID_INS_NIA, "199999999999999")
    doc = dataclasses.replace(decision_doc, person=dataclasses.replace(decision_doc.person, ins=nia))
    patient = one(map_decision_entries(doc, context), "Patient")["resource"]
    assert _identifier(patient, sdo.INS_NIA_SYSTEM)["use"] == "temp"


def test_unidentified_person_gives_no_patient_and_no_dangling_reference(decision_doc: DecisionDocument,
                                                                        context: InboundContext) -> None:
    person = dataclasses.replace(decision_doc.person, ins=None, mdph_individual_id=None)
    entries = map_decision_entries(dataclasses.replace(decision_doc, person=person), context)
    assert [e for e in entries if e["resource"]["resourceType"] == "Patient"] == []
    assert "for" not in one(entries, "Task")["resource"]
    assert "subject" not in one(entries, "DocumentReference")["resource"]


def test_decision_basic_carries_tddui_identifiers_and_rights(decision_doc: DecisionDocument,
                                                             context: InboundContext) -> None:
    decision = decision_doc.decision
    basic = one(map_decision_entries(decision_doc, context), "Basic")
    resource = basic["resource"]
    assert basic["request"]["url"] == f"Basic?identifier={sdo.ID_NAT_DECISION_SYSTEM}|{decision.id_nat_decision}"
    assert resource["code"]["coding"][0] == {"system": systems.TDDUI_BASIC_TYPE, "code": "DECISION",
                                             "display": "Décision"}
    nat = _identifier(resource, "urn:oid:1.2.250.1.213.8.1")
    assert nat["value"] == decision.id_nat_decision
    assert nat["type"]["coding"][0]["code"] == "IDNATDECISION"
    id_dec = _identifier(resource, f"urn:oid:{decision.id_decision_root}")
    assert id_dec["value"] == decision.id_decision
    assert id_dec["type"]["coding"][0]["code"] == "IDDECISION"
    (tddui,) = resource["extension"]
    assert tddui["url"] == "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-decision"
    parts = {p["url"]: p for p in tddui["extension"]}
    assert parts["typeDecision"]["valueCodeableConcept"]["coding"][0]["code"] == "1"
    assert decision.date_decision is not None
    assert parts["dateDecision"]["valueDate"] == decision.date_decision.isoformat()
    right = parts["droitPrestation"]
    right_parts = {p["url"]: p for p in right["extension"]}
    assert right_parts["typeDroitPrestation"]["valueCodeableConcept"]["coding"][0]["code"] == (
        decision.rights[0].type_droit.code)
    detail = right_parts["detailPrestation"]["extension"]
    designated = [p["valueReference"]["identifier"]["value"] for p in detail if p["url"] == "structureAccueil"]
    assert designated == list(decision.rights[0].id_nat_structs)


def test_document_reference_keeps_the_raw_cda(decision_doc: DecisionDocument, context: InboundContext,
                                              decision_raw: bytes) -> None:
    doc = one(map_decision_entries(decision_doc, context, raw=decision_raw), "DocumentReference")["resource"]
    assert doc["type"]["coding"][0] == {"system": "http://loinc.org", "code": "57830-2"}
    attachment = doc["content"][0]["attachment"]
    assert base64.b64decode(attachment["data"]) == decision_raw
    assert attachment["title"] == "Document Individu et décision"
    uses = {i["use"]: i["value"] for i in doc["identifier"] if i["use"] in ("usual", "official")}
    assert uses == {"usual": decision_doc.decision.id_decision, "official": decision_doc.id_nat_decision}
    assert "relatesTo" not in doc  # version 1 replaces nothing


def test_worklist_task_is_created_in_status_39_for_the_establishment(decision_doc: DecisionDocument,
                                                                     context: InboundContext) -> None:
    entries = map_decision_entries(decision_doc, context)
    task_entry = one(entries, "Task")
    task = task_entry["resource"]
    eg = context.establishment
    assert task_entry["request"]["ifNoneExist"] == (
        f"identifier=urn:vtdui:worklist|{decision_doc.id_nat_decision}\\|{eg.finess_eg}")
    assert task["identifier"] == [{"system": "urn:vtdui:worklist",
                                   "value": f"{decision_doc.id_nat_decision}|{eg.finess_eg}"}]
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["businessStatus"]["coding"][0]["system"] == sdo.TRE_R357
    assert worklist.business_status(task) == "39"
    assert "statusReason" not in task
    assert worklist.input_value(task, "statutESMS") == "39"
    assert worklist.input_value(task, "idNat_Struct") == "1" + eg.finess_eg
    assert worklist.input_value(task, "idNat_Decision") == decision_doc.id_nat_decision
    assert worklist.input_value(task, "idDecision") == decision_doc.decision.id_decision
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in entries}
    assert task["for"]["reference"] == urls["Patient"]
    assert task["focus"]["reference"] == urls["Basic"]
    owner = next(e for e in entries if e["fullUrl"] == task["owner"]["reference"])["resource"]
    assert _identifier(owner, "urn:oid:1.2.250.1.71.4.2.2")["value"] == "1" + eg.finess_eg
    assert worklist.is_worklist_task(task)


def test_same_decision_maps_to_the_same_entries_whatever_the_cycle_time(
        dataset: Dataset, simulated: SimulatedDecision, decision_doc: DecisionDocument) -> None:
    first = map_decision_entries(decision_doc, make_context(dataset, simulated, now=NOW))
    later = map_decision_entries(decision_doc, make_context(dataset, simulated, now=NOW + timedelta(days=3)))
    assert len(first) == len(later)
    for a, b in zip(first, later, strict=True):
        assert a["fullUrl"] == b["fullUrl"]
        assert a["request"] == b["request"]
        if a["resource"]["resourceType"] != "Task":  # only the created-once Task records when it was notified
            assert a["resource"] == b["resource"]


def test_updated_decision_updates_in_place_and_never_resets_the_worklist(
        simulated: SimulatedDecision, decision_doc: DecisionDocument, context: InboundContext) -> None:
    raw2, doc2 = version_of(simulated, 2, with_new_address)
    v1 = {e["resource"]["resourceType"] + e["fullUrl"]: e for e in map_decision_entries(decision_doc, context)}
    v2_entries = map_decision_entries(doc2, context, raw=raw2)
    v2 = {e["resource"]["resourceType"] + e["fullUrl"]: e for e in v2_entries}
    assert v1.keys() == v2.keys()  # same person, same decision, same work-list item
    assert one(v2_entries, "Patient")["resource"]["address"][0]["city"] == "RENNES"
    task = one(v2_entries, "Task")
    assert task["request"]["method"] == "POST" and "ifNoneExist" in task["request"]
    doc = one(v2_entries, "DocumentReference")["resource"]
    (relation,) = doc["relatesTo"]
    assert relation["code"] == "replaces"
    replaced = decision_doc.header.document_id
    assert relation["target"]["identifier"]["value"] in {replaced.extension, f"urn:oid:{replaced.root}",
                                                         f"urn:uuid:{(replaced.root or '').lower()}"}


def test_options_claim_tddui_profiles(decision_doc: DecisionDocument, context: InboundContext) -> None:
    plain = map_decision_entries(decision_doc, context)
    assert all("profile" not in e["resource"]["meta"] for e in plain)
    claimed = map_decision_entries(decision_doc, context, MappingOptions(claim_profiles=True))
    basic = one(claimed, "Basic")["resource"]
    assert basic["meta"]["profile"] == [systems.PROFILE_TDDUI_BASIC_DECISION]
    assert one(claimed, "Patient")["resource"]["meta"]["profile"] == [systems.PROFILE_TDDUI_PATIENT_INS]


def test_options_map_cda_code_systems(decision_doc: DecisionDocument, context: InboundContext) -> None:
    options = MappingOptions(code_systems={"1.2.250.1.213.3.3.202": "https://example.org/type-decision"})
    basic = one(map_decision_entries(decision_doc, context, options), "Basic")["resource"]
    parts = {p["url"]: p for p in basic["extension"][0]["extension"]}
    assert parts["typeDecision"]["valueCodeableConcept"]["coding"][0]["system"] == "https://example.org/type-decision"


def test_builtin_hook_declines_what_is_not_a_decision(context: InboundContext) -> None:
    assert map_decision(document={"not": "a decision"}, context=context) is None


def test_second_establishment_gets_its_own_worklist_item(dataset: Dataset, decision_doc: DecisionDocument) -> None:
    multi = next(d for d in dataset.decisions if len(d.notified_to) > 1)
    doc = parse_decision(multi.decision_cda())
    first = one(map_decision_entries(doc, make_context(dataset, multi, finess_eg=multi.notified_to[0])), "Task")
    second = one(map_decision_entries(doc, make_context(dataset, multi, finess_eg=multi.notified_to[1])), "Task")
    assert first["fullUrl"] != second["fullUrl"]
    assert first["request"]["ifNoneExist"] != second["request"]["ifNoneExist"]
