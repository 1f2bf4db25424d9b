"""Flux 3: an evaluation (CDA "Evaluation") → DocumentReference + one Observation per coded item.

* DocumentReference (LOINC 51848-0) keyed ``urn:vtdui:source-document|<idNat_Decision>|evaluation``,
  updated in place when a newer evaluation arrives (HAPI's history keeps the previous ones), linked to the
  decision (``context.related`` → the Basic, found by idNat_Decision) and to the person;
* Observation per coded entry, keyed ``urn:vtdui:evaluation-item|<idNat_Decision>|<entry template>|<code>``:
  ``code`` = the CDA label (``PathologiePrincipale`` …), ``value`` = the CNSA code, ``derivedFrom`` the
  DocumentReference.

The decision and the person are referenced conditionally (``Basic?identifier=…``), so HAPI refuses an
evaluation whose decision it does not hold yet: the sync engine fetches evaluations only for stored
decisions and retries otherwise.
"""

from __future__ import annotations

from typing import Any

from vtdui.cda.records import EvaluationDocument
from vtdui.hookcontext import InboundContext
from vtdui.mapping import systems
from vtdui.mapping._fhir import (
    Entry,
    Resource,
    cda_concept,
    concept,
    fhir_date,
    fhir_instant,
    full_url,
    identifier_query,
    meta,
    put_entry,
)
from vtdui.mapping.decision import decision_identifier_query, document_identifier, source_document
from vtdui.mapping.options import DEFAULT_OPTIONS, MappingOptions
from vtdui.mapping.person import patient_query

__all__ = ["map_evaluation_entries"]


def map_evaluation_entries(document: EvaluationDocument, context: InboundContext,
                           options: MappingOptions = DEFAULT_OPTIONS, *, raw: bytes | None = None) -> list[Entry]:
    """Map one evaluation document to transaction entries.

    Args:
        document: the parsed evaluation.
        context: the establishment, ``source`` and time of the cycle.
        options: mapping choices (``map_evaluation_observations`` turns the Observations off).
        raw: the CDA bytes to keep (default: ``document.raw`` when the record carries it).
    """
    id_nat = document.id_nat_decision
    header = document.header
    version = max(header.version_number, 1)
    if raw is None:
        value = getattr(document, "raw", None)
        raw = value if isinstance(value, bytes) and value else None
    doc = source_document("evaluation", id_nat, None, None, header.document_id, version, header.replaces,
                          fhir_instant(header.effective_time), raw, context)
    person = patient_query(document.person)
    subject = {"reference": f"Patient?{person}"} if person else None
    if subject:
        doc["subject"] = subject
    if header.effective_time is not None and header.effective_time.tzinfo is not None:
        doc["date"] = header.effective_time.isoformat()
    doc["context"] = {"related": [{"reference": f"Basic?{decision_identifier_query(id_nat)}"}]}
    ident = document_identifier(id_nat, "evaluation")
    doc_url = full_url("DocumentReference", id_nat, "evaluation")
    entries: list[Entry] = [put_entry(doc, doc_url, identifier_query((ident["system"], ident["value"])))]
    if not options.map_evaluation_observations:
        return entries

    effective = fhir_date(document.evaluation.date_mise_a_jour)
    seen: set[str] = set()
    for item in document.observations:
        key = f"{id_nat}|{item.entry_template}|{item.value.code}"
        if key in seen:  # the same coded answer twice: one Observation
            continue
        seen.add(key)
        observation: Resource = {
            "resourceType": "Observation",
            "meta": meta(context.source),
            "identifier": [{"system": systems.EVALUATION_ITEM_SYSTEM, "value": key}],
            "status": "final",
            "code": {**concept(systems.EVALUATION_LABEL_SYSTEM, item.label), "text": item.label},
            "valueCodeableConcept": cda_concept(item.value, options),
            "derivedFrom": [{"reference": doc_url}],
        }
        if subject:
            observation["subject"] = subject
        if effective:
            observation["effectiveDateTime"] = effective
        extra: dict[str, Any] = {}
        if item.nomenclature:
            extra["text"] = item.nomenclature
        if extra:
            observation["valueCodeableConcept"] = {**observation["valueCodeableConcept"], **extra}
        entries.append(put_entry(observation, full_url("Observation", key),
                                 identifier_query((systems.EVALUATION_ITEM_SYSTEM, key))))
    return entries
