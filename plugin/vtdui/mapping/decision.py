"""Flux 1: an orientation decision (CDA "Individu et décision") → local FHIR resources.

Pure: a :class:`~vtdui.cda.records.DecisionDocument` and an :class:`~vtdui.hookcontext.InboundContext` in,
transaction entries out. Every entry is conditional on a business identifier, so writing the same
decision twice changes nothing, and a new version of it updates the same resources:

* Patient: keyed by INS (NIR/NIA) or MDPH individual id (either matches); updated (PUT);
* Organization of the establishment: idNat_Struct ``1<FINESS EG>`` or FINESS (either matches); created once;
* Organization of the MDPH: its OID; created once;
* ServiceRequest (orientation request): ``urn:vtdui:demande-orientation|<idNat_Decision>``; updated;
* Basic (tddui-basic-decision): idNat_Decision ``urn:oid:1.2.250.1.213.8.1|<id>``; updated;
* DocumentReference (raw CDA): ``urn:vtdui:source-document|<idNat_Decision>|decision``; updated in place
  (HAPI's history keeps every version), ``relatesTo`` names the replaced CDA;
* Task (work-list item): ``urn:vtdui:worklist|<idNat_Decision>|<FINESS EG>``; created once, never touched.

The work-list Task is only ever created here: its status belongs to the DUI's users from then on.
"""

from __future__ import annotations

import base64
from typing import Any

from vtdui import sdo
from vtdui.cda.records import Decision, DecisionDocument, DroitPrestation, InstanceId, Mdph, PriseEnCharge
from vtdui.hookcontext import InboundContext
from vtdui.mapping import systems, worklist
from vtdui.mapping._fhir import (
    Entry,
    Resource,
    cda_concept,
    complex_ext,
    concept,
    create_entry,
    ext,
    fhir_date,
    fhir_instant,
    full_url,
    identifier_query,
    meta,
    put_entry,
)
from vtdui.mapping.options import DEFAULT_OPTIONS, MappingOptions
from vtdui.mapping.person import patient_entry

__all__ = [
    "decision_identifier_query",
    "document_identifier",
    "establishment_query",
    "instance_identifier",
    "map_decision_entries",
    "source_document",
]


# ---------------------------------------------------------------------------------------------------
# Keys


def decision_identifier_query(id_nat_decision: str) -> str:
    """``identifier=urn:oid:1.2.250.1.213.8.1|<idNat_Decision>``: finds the decision Basic."""
    return identifier_query((sdo.ID_NAT_DECISION_SYSTEM, id_nat_decision))


def establishment_query(finess_eg: str) -> str:
    """``identifier=<idNat_Struct>,<FINESS>``: finds the establishment by either, e.g. one the DUI created."""
    return identifier_query((systems.ID_NAT_STRUCT_SYSTEM, sdo.id_nat_struct(finess_eg)),
                            (sdo.FINESS_SYSTEM, finess_eg))


def document_identifier(id_nat_decision: str, kind: str) -> dict[str, str]:
    """``urn:vtdui:source-document`` | ``<idNat_Decision>|<kind>`` (``decision`` or ``evaluation``)."""
    return {"system": systems.SOURCE_DOCUMENT_SYSTEM, "value": f"{id_nat_decision}|{kind}"}


def instance_identifier(ii: InstanceId) -> dict[str, str] | None:
    """A FHIR Identifier for an HL7 II: ``urn:oid:<root>`` (or ``urn:uuid:``) + extension."""
    if not ii.root:
        return {"value": ii.extension} if ii.extension else None
    root = ii.root
    if all(part.isdigit() for part in root.split(".")):
        system = f"urn:oid:{root}"
    elif len(root) == 36 and root.count("-") == 4:
        system = f"urn:uuid:{root.lower()}"
    else:
        system = f"urn:vtdui:cda-root:{root}"
    if ii.extension:
        return {"system": system, "value": ii.extension}
    return {"system": systems.URI_SYSTEM, "value": system}


def _mdph_system(decision: Decision, document: DecisionDocument, options: MappingOptions) -> str:
    root = decision.id_decision_root
    if not root and document.person.mdph_responsable is not None:
        root = document.person.mdph_responsable.oid
    return f"urn:oid:{root}" if root else options.unknown_mdph_system


# ---------------------------------------------------------------------------------------------------
# Organizations


def establishment_entry(context: InboundContext, options: MappingOptions) -> Entry:
    """The establishment (FINESS EG) as a TDDUIOrganization-shaped Organization, created once."""
    eg = context.establishment
    org: Resource = {
        "resourceType": "Organization",
        "meta": meta(context.source, [systems.PROFILE_TDDUI_ORGANIZATION] if options.claim_profiles else None),
        "identifier": [
            {"use": "official", "type": concept(systems.FR_CORE_V2_0203, systems.ID_TYPE_IDNST),
             "system": systems.ID_NAT_STRUCT_SYSTEM, "value": sdo.id_nat_struct(eg.finess_eg)},
            {"type": concept(systems.INTEROPSANTE_V2_0203, systems.ID_TYPE_FINEG),
             "system": sdo.FINESS_SYSTEM, "value": eg.finess_eg},
        ],
        "active": True,
        "name": eg.name,
    }
    return create_entry(org, full_url("Organization", "finess", eg.finess_eg), establishment_query(eg.finess_eg))


def mdph_entry(mdph: Mdph, context: InboundContext) -> Entry:
    """An MDPH as an Organization identified by its OID, created once."""
    value = f"urn:oid:{mdph.oid}"
    org: Resource = {
        "resourceType": "Organization",
        "meta": meta(context.source),
        "identifier": [{"system": systems.MDPH_SYSTEM, "value": value}],
        "active": True,
        "name": f"MDPH {mdph.label}",
    }
    return create_entry(org, full_url("Organization", "mdph", mdph.oid),
                        identifier_query((systems.MDPH_SYSTEM, value)))


# ---------------------------------------------------------------------------------------------------
# The decision (Basic tddui-basic-decision)


def _prise_en_charge(item: PriseEnCharge, options: MappingOptions) -> dict[str, Any] | None:
    parts: list[dict[str, Any]] = []
    if item.mode is not None:
        mode = item.mode
        system = sdo.TRE_R213 if mode.code_system in (None, "1.2.250.1.213.3.3.13") else options.system_for(
            mode.code_system)
        parts.append(ext("modePriseCharge", valueCodeableConcept=concept(system, mode.code, mode.display)))
    q = item.quantification
    if q is not None:
        sub: list[dict[str, Any]] = []
        if q.nombre == int(q.nombre):
            sub.append(ext("valeurPriseCharge", valueInteger=int(q.nombre)))
        if q.unite is not None:
            quantity: dict[str, Any] = {"value": q.nombre, "code": q.unite.code}
            if q.unite.display:
                quantity["unit"] = q.unite.display
            system = options.system_for(q.unite.code_system)
            if system:
                quantity["system"] = system
            sub.append(ext("unitePriseCharge", valueQuantity=quantity))
        if q.periodicite is not None:
            sub.append(ext("frequencePriseCharge", valueCodeableConcept=cda_concept(q.periodicite, options)))
        if sub:
            parts.append(complex_ext("quantification", sub))
    return complex_ext("priseCharge", parts) if parts else None


def _detail(right: DroitPrestation, options: MappingOptions) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if right.temporalite_accueil is not None:
        t = right.temporalite_accueil
        parts.append(ext("temporaliteAccueil", valueCodeableConcept=concept(sdo.TRE_R240, t.code, t.display)))
    if right.precision_orientation is not None:
        parts.append(ext("precisionOrientation",
                         valueCodeableConcept=cda_concept(right.precision_orientation, options)))
    if right.accueil_sequentiel is not None:
        parts.append(ext("accueilSequentiel", valueBoolean=right.accueil_sequentiel))
    if right.formations:
        parts.append(ext("formation", valueString="; ".join(right.formations)))
    if right.qualification is not None:
        parts.append(ext("qualificationOrientation", valueCodeableConcept=cda_concept(right.qualification, options)))
    for id_nat in right.id_nat_structs:
        # designated establishments: a logical reference by idNat_Struct, resolvable whatever the DUI holds
        parts.append(ext("structureAccueil", valueReference={
            "identifier": {"system": systems.ID_NAT_STRUCT_SYSTEM, "value": id_nat}}))
    for item in right.prises_en_charge:
        pec = _prise_en_charge(item, options)
        if pec is not None:
            parts.append(pec)
    return complex_ext("detailPrestation", parts)


def _droit(right: DroitPrestation, options: MappingOptions) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        # the category is the part of the right type before the dot; its code system is unconfirmed
        ext("categorieDroitPrestation", valueCodeableConcept={"text": right.category}),
        ext("typeDroitPrestation", valueCodeableConcept=cda_concept(right.type_droit, options)),
    ]
    if right.nature is not None:
        parts.append(ext("natureDroitPrestation", valueCodeableConcept=cda_concept(right.nature, options)))
    if right.date_ouverture is not None:
        parts.append(ext("dateOuverture", valueDate=fhir_date(right.date_ouverture)))
    if right.date_echeance is not None:
        parts.append(ext("dateEcheance", valueDate=fhir_date(right.date_echeance)))
    if right.existence_pag is not None:
        parts.append(ext("existencePAG", valueBoolean=right.existence_pag))
    if right.motif_fin_pag is not None:
        parts.append(ext("motifFinPAG", valueCodeableConcept=cda_concept(right.motif_fin_pag, options)))
    if right.amendement_creton is not None:
        parts.append(ext("creton", valueBoolean=right.amendement_creton))
    parts.append(_detail(right, options))
    return complex_ext("droitPrestation", parts)


def decision_extension(decision: Decision, options: MappingOptions) -> dict[str, Any]:
    """The ``tddui-decision`` complex extension (decision type, dates, motivations, rights)."""
    parts: list[dict[str, Any]] = []
    if decision.type_decision is not None:
        parts.append(ext("typeDecision", valueCodeableConcept=cda_concept(decision.type_decision, options)))
    if decision.date_effet_cloture is not None:
        parts.append(ext("dateEffetCloture", valueDate=fhir_date(decision.date_effet_cloture)))
    if decision.date_decision is not None:
        parts.append(ext("dateDecision", valueDate=fhir_date(decision.date_decision)))
    parts += [ext("motivation", valueCodeableConcept=cda_concept(m, options)) for m in decision.motivations]
    parts += [ext("motivationLocale", valueString=text) for text in decision.motivations_locales]
    if decision.precision_locale:
        parts.append(ext("commentaire", valueString=decision.precision_locale))
    # TDDUI allows one droitPrestation; the SDO CDA too, but a document with more keeps them all
    parts += [_droit(right, options) for right in decision.rights]
    return complex_ext(systems.EXT_TDDUI_DECISION, parts)


def decision_identifiers(document: DecisionDocument, options: MappingOptions) -> list[dict[str, Any]]:
    """Return idDecision (MDPH OID as system), idNat_Decision and idDecisionMAJ as tddui-basic-decision types them."""
    decision = document.decision
    out: list[dict[str, Any]] = [
        {"use": "official", "type": concept(systems.TDDUI_DECISION_IDENTIFIER, systems.ID_TYPE_ID_DECISION),
         "system": _mdph_system(decision, document, options), "value": decision.id_decision},
        {"type": concept(systems.TDDUI_DECISION_IDENTIFIER, systems.ID_TYPE_ID_NAT_DECISION),
         "system": sdo.ID_NAT_DECISION_SYSTEM, "value": decision.id_nat_decision},
    ]
    for related in decision.related_decisions:
        if not related.extension:
            continue
        out.append({"type": concept(systems.TDDUI_DECISION_IDENTIFIER, systems.ID_TYPE_ID_DECISION_MAJ),
                    "system": f"urn:oid:{related.root}" if related.root else options.unknown_mdph_system,
                    "value": related.extension})
    return out


# ---------------------------------------------------------------------------------------------------
# The whole decision


def _raw_of(document: DecisionDocument, raw: bytes | None) -> bytes | None:
    if raw is not None:
        return raw
    value = getattr(document, "raw", None)  # the parser may keep the bytes on the record
    return value if isinstance(value, bytes) and value else None


def source_document(kind: str, id_nat: str, id_decision: str | None, id_decision_system: str | None,
                    header_id: InstanceId, version: int, replaces: InstanceId | None, created: str | None,
                    raw: bytes | None, context: InboundContext) -> Resource:
    """A DocumentReference keeping a raw CDA, identified as ESMSDocumentReference does (usual/official)."""
    is_decision = kind == "decision"
    attachment: dict[str, Any] = {
        "contentType": "text/xml",
        "language": "fr-FR",
        "title": sdo.TITLE_DECISION if is_decision else sdo.TITLE_EVALUATION,
    }
    if raw is not None:
        attachment["data"] = base64.b64encode(raw).decode("ascii")
        attachment["size"] = len(raw)
    if created:
        attachment["creation"] = created
    identifiers: list[dict[str, Any]] = []
    if id_decision:
        usual: dict[str, Any] = {"use": "usual", "value": id_decision}
        if id_decision_system:
            usual["system"] = id_decision_system
        identifiers.append(usual)
    identifiers += [{"use": "official", "system": sdo.ID_NAT_DECISION_SYSTEM, "value": id_nat},
                    {"use": "secondary", **document_identifier(id_nat, kind)}]
    doc: Resource = {
        "resourceType": "DocumentReference",
        "meta": meta(context.source),
        "identifier": identifiers,
        "status": "current",
        "docStatus": "final",
        "type": concept(sdo.LOINC, sdo.TYPE_DECISION if is_decision else sdo.TYPE_EVALUATION),
        "content": [{"attachment": attachment}],
    }
    master = instance_identifier(header_id)
    if master is not None:
        doc["masterIdentifier"] = master
    if version > 1:
        target = instance_identifier(replaces) if replaces is not None else None
        if target is None:
            target = {"system": systems.SOURCE_DOCUMENT_SYSTEM, "value": f"{id_nat}|{kind}|v{version - 1}"}
        doc["relatesTo"] = [{"code": "replaces", "target": {"identifier": target,
                                                            "display": f"version {version - 1}"}}]
    return doc


def _worklist_task(document: DecisionDocument, context: InboundContext, options: MappingOptions, *,
                   patient_ref: str | None, basic_ref: str, org_ref: str) -> Entry:
    decision = document.decision
    eg = context.establishment
    notified = context.now.date().isoformat()
    task: Resource = {
        "resourceType": "Task",
        "meta": meta(context.source),
        "identifier": [worklist.worklist_identifier(decision.id_nat_decision, eg.finess_eg,
                                                    options.worklist_system)],
        "status": "requested",
        "intent": "order",
        "code": concept(systems.TASK_KIND_SYSTEM, systems.TASK_KIND_WORKLIST),
        "description": f"Notification d'orientation {decision.id_decision}",
        "focus": {"reference": basic_ref},
        "authoredOn": context.now.isoformat(),
        "owner": {"reference": org_ref, "display": eg.name},
    }
    if patient_ref:
        task["for"] = {"reference": patient_ref}
    task = worklist.set_input(task, sdo.ID_NAT_STRUCT, sdo.id_nat_struct(eg.finess_eg))
    task = worklist.set_input(task, sdo.NOM_ESMS, eg.name)
    task = worklist.set_business_status(task, sdo.STATUS_NOTIFICATION_SENT, date=notified)
    task = worklist.set_input(task, sdo.ID_DECISION, decision.id_decision)
    task = worklist.set_input(task, sdo.ID_NAT_DECISION, decision.id_nat_decision)
    query = worklist.worklist_query(decision.id_nat_decision, eg.finess_eg, options.worklist_system)
    return create_entry(task, full_url("Task", "worklist", decision.id_nat_decision, eg.finess_eg), query)


def map_decision_entries(document: DecisionDocument, context: InboundContext,
                         options: MappingOptions = DEFAULT_OPTIONS, *, raw: bytes | None = None) -> list[Entry]:
    """Map one decision document to transaction entries (see the module docstring for the model).

    Args:
        document: the parsed decision.
        context: the establishment the decision was read for, ``source`` and time of the cycle.
        options: mapping choices.
        raw: the CDA bytes to keep in the DocumentReference (default: ``document.raw`` when the
            record carries it).

    Returns:
        Entries in dependency order: Patient, Organizations, ServiceRequest, Basic, DocumentReference, Task.
    """
    decision = document.decision
    id_nat = decision.id_nat_decision
    entries: list[Entry] = []
    patient = patient_entry(document.person, context, options)
    patient_ref = patient["fullUrl"] if patient is not None else None
    if patient is not None:
        entries.append(patient)
    establishment = establishment_entry(context, options)
    entries.append(establishment)
    mdph = document.person.mdph_responsable
    mdph_ref: str | None = None
    if options.mdph_organizations and mdph is not None:
        mdph_org = mdph_entry(mdph, context)
        mdph_ref = mdph_org["fullUrl"]
        entries.append(mdph_org)

    request: Resource = {
        "resourceType": "ServiceRequest",
        "meta": meta(context.source,
                     [systems.PROFILE_TDDUI_DEMANDE_ORIENTATION] if options.claim_profiles else None),
        "identifier": [{"system": options.demande_orientation_system, "value": id_nat}],
        "status": "completed",
        "intent": "order",
    }
    if patient_ref:
        request["subject"] = {"reference": patient_ref}
    else:
        request["subject"] = {"display": "personne non identifiée"}
    if decision.date_decision is not None:
        request["occurrencePeriod"] = {"end": fhir_date(decision.date_decision)}
    request_url = full_url("ServiceRequest", id_nat)
    entries.append(put_entry(request, request_url,
                             identifier_query((options.demande_orientation_system, id_nat))))

    basic: Resource = {
        "resourceType": "Basic",
        "meta": meta(context.source, [systems.PROFILE_TDDUI_BASIC_DECISION] if options.claim_profiles else None),
        "extension": [decision_extension(decision, options)],
        "identifier": decision_identifiers(document, options),
        "code": concept(systems.TDDUI_BASIC_TYPE, systems.BASIC_TYPE_DECISION, "Décision"),
        "subject": {"reference": request_url},
    }
    created = fhir_date(decision.date_decision)
    if created:
        basic["created"] = created
    if mdph_ref:
        basic["author"] = {"reference": mdph_ref}
    basic_url = full_url("Basic", id_nat)
    entries.append(put_entry(basic, basic_url, decision_identifier_query(id_nat)))

    header = document.header
    version = max(header.version_number, decision.version_number or 0, 1)
    doc = source_document("decision", id_nat, decision.id_decision, _mdph_system(decision, document, options),
                          header.document_id, version, header.replaces, fhir_instant(header.effective_time),
                          _raw_of(document, raw), context)
    if patient_ref:
        doc["subject"] = {"reference": patient_ref}
    effective = header.effective_time
    if effective is not None and effective.tzinfo is not None:
        doc["date"] = effective.isoformat()
    doc["context"] = {"related": [{"reference": basic_url}, {"reference": request_url}]}
    ident = document_identifier(id_nat, "decision")
    entries.append(put_entry(doc, full_url("DocumentReference", id_nat, "decision"),
                             identifier_query((ident["system"], ident["value"]))))

    entries.append(_worklist_task(document, context, options, patient_ref=patient_ref, basic_ref=basic_url,
                                  org_ref=establishment["fullUrl"]))
    return entries
