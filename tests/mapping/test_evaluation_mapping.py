"""The default flux-3 mapping."""

from __future__ import annotations

import base64
import dataclasses

from mapping_helpers import by_type, one

from vtdui import sdo
from vtdui.cda.records import EvaluationDocument
from vtdui.hookcontext import InboundContext
from vtdui.mapping import MappingOptions, map_evaluation_entries, systems
from vtdui.mapping.builtin import map_evaluation


def test_evaluation_document_is_linked_to_its_decision(evaluation_doc: EvaluationDocument, context: InboundContext,
                                                       evaluation_raw: bytes) -> None:
    entries = map_evaluation_entries(evaluation_doc, context, raw=evaluation_raw)
    doc_entry = one(entries, "DocumentReference")
    doc = doc_entry["resource"]
    assert doc_entry["request"]["url"] == (
        f"DocumentReference?identifier={systems.SOURCE_DOCUMENT_SYSTEM}|{evaluation_doc.id_nat_decision}\\|evaluation")
    assert doc["type"]["coding"][0] == {"system": "http://loinc.org", "code": "51848-0"}
    assert doc["content"][0]["attachment"]["title"] == sdo.TITLE_EVALUATION
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == evaluation_raw
    assert doc["context"]["related"] == [
        {"reference": f"Basic?identifier={sdo.ID_NAT_DECISION_SYSTEM}|{evaluation_doc.id_nat_decision}"}]
    assert doc["subject"]["reference"].startswith("Patient?identifier=")


def test_each_coded_item_becomes_one_observation(evaluation_doc: EvaluationDocument,
                                                 context: InboundContext) -> None:
    assert evaluation_doc.observations
    entries = map_evaluation_entries(evaluation_doc, context)
    observations = by_type(entries, "Observation")
    distinct = {(o.entry_template, o.value.code) for o in evaluation_doc.observations}
    assert len(observations) == len(distinct)
    doc_url = one(entries, "DocumentReference")["fullUrl"]
    first = evaluation_doc.observations[0]
    match = next(o["resource"] for o in observations if o["resource"]["code"]["text"] == first.label)
    assert match["valueCodeableConcept"]["coding"][0]["code"] == first.value.code
    assert match["derivedFrom"] == [{"reference": doc_url}]
    assert match["status"] == "final"


def test_duplicate_items_give_one_observation(evaluation_doc: EvaluationDocument, context: InboundContext) -> None:
    item = evaluation_doc.observations[0]
    doubled = dataclasses.replace(evaluation_doc, evaluation=dataclasses.replace(
        evaluation_doc.evaluation, observations=(item, item)))
    assert len(by_type(map_evaluation_entries(doubled, context), "Observation")) == 1


def test_observations_can_be_turned_off(evaluation_doc: EvaluationDocument, context: InboundContext) -> None:
    entries = map_evaluation_entries(evaluation_doc, context, MappingOptions(map_evaluation_observations=False))
    assert [e["resource"]["resourceType"] for e in entries] == ["DocumentReference"]


def test_builtin_hook_declines_a_decision(decision_doc: object, context: InboundContext) -> None:
    assert map_evaluation(document=decision_doc, context=context) is None
