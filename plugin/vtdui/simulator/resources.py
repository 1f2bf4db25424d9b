"""FHIR resources the simulator serves.

ESMSDocumentReference, the two searchset Bundles, OperationOutcome, its CapabilityStatement, and the
ESMSTask of events injected on the admin side.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final

from vtdui import __version__, sdo
from vtdui.simulator.fhir_time import format_instant
from vtdui.simulator.state import StoredDecision

__all__ = [
    "FHIR_JSON",
    "SUBSETTED",
    "capability_statement",
    "document_reference",
    "esms_task",
    "operation_outcome",
    "searchset",
]

FHIR_JSON: Final = "application/fhir+json"
SUBSETTED: Final = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
                    "display": "subsetted"}
_LOINC_DISPLAY: Final = {sdo.TYPE_DECISION: "Admission request Document", sdo.TYPE_EVALUATION: "Evaluation note"}
_CAPABILITY_GESTIONNAIRE: Final = f"{sdo.IG_BASE}/CapabilityStatement/gestionnaire-sdo"


def operation_outcome(code: str, message: str, *, severity: str = "error",
                      expression: str | None = None) -> dict[str, Any]:
    """One-issue OperationOutcome (``code`` from the FHIR IssueType value set)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": message},
                             "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def document_reference(decision: StoredDecision, kind: str, *, subsetted: bool = False) -> dict[str, Any]:
    """The ESMSDocumentReference of a decision's decision (``kind="decision"``) or evaluation document.

    Args:
        decision: the stored decision.
        kind: ``decision`` (LOINC 57830-2) or ``evaluation`` (51848-0).
        subsetted: the flux 1.2 form (``_elements=id``): no ``data``, ``SUBSETTED`` tag, as the IG example
            ``exemple-bundle-resultat-recherche-decision-evaluation-elements`` keeps identifiers/type/title.
    """
    is_decision = kind == "decision"
    code = sdo.TYPE_DECISION if is_decision else sdo.TYPE_EVALUATION
    title = sdo.TITLE_DECISION if is_decision else sdo.TITLE_EVALUATION
    meta: dict[str, Any] = {"versionId": str(decision.version), "lastUpdated": format_instant(decision.last_updated),
                            "profile": [sdo.PROFILE_DOCUMENT_REFERENCE]}
    attachment: dict[str, Any] = {"title": title}
    if subsetted:
        meta = {"lastUpdated": meta["lastUpdated"], "tag": [SUBSETTED]}
    else:
        cda = decision.decision_cda() if is_decision else decision.evaluation_cda()
        attachment = {"contentType": "text/xml", "language": "fr-FR", "title": title,
                      "data": base64.b64encode(cda).decode("ascii")}
    return {
        "resourceType": "DocumentReference",
        "id": decision.docref_id if is_decision else decision.eval_docref_id,
        "meta": meta,
        "identifier": [{"use": "usual", "value": decision.id_decision},
                       {"use": "official", "value": decision.id_nat_decision}],
        "status": "current",
        "type": {"coding": [{"system": sdo.LOINC, "code": code, "display": _LOINC_DISPLAY[code]}]},
        "content": [{"attachment": attachment}],
    }


def searchset(resources: Sequence[dict[str, Any]], *, profile: str, base_url: str, total: int,
              self_url: str, next_url: str | None = None) -> dict[str, Any]:
    """A searchset Bundle of the given profile, ``total`` and ``self``/``next`` links."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "meta": {"profile": [profile]},
        "type": "searchset",
        "total": total,
        "link": links,
    }
    if resources:
        bundle["entry"] = [{"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}", "resource": r,
                            "search": {"mode": "match"}} for r in resources]
    return bundle


def _input(code: str, value_key: str, value: Any) -> dict[str, Any]:
    return {"type": sdo.input_type(code), value_key: value}


def _coded(system: str, code: str, display: str | None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def esms_task(*, id_nat_struct: str, nom_esms: str, id_decision: str, id_nat_decision: str,
              statut_esms: tuple[str, str | None] | None = None, motif_esms: tuple[str, str | None] | None = None,
              date_statut_esms: date | None = None, unit: dict[str, Any] | None = None,
              statut_unite: tuple[str, str | None] | None = None, motif_unite: tuple[str, str | None] | None = None,
              date_statut_unite: date | None = None, description: str | None = None,
              last_updated: datetime | None = None) -> dict[str, Any]:
    """An ESMSTask for an injected event (MDPH event, another establishment's status).

    Codes are ``(code, display)`` pairs; ``unit`` holds ``id_unite``, ``nom_unite``, ``categorie_organisation``,
    ``mode_prise_charge`` and optionally ``temporalite_accueil``, ``accueil_sequentiel``.
    """
    inputs = [
        _input(sdo.ID_NAT_STRUCT, "valueIdentifier", {"value": id_nat_struct}),
        _input(sdo.NOM_ESMS, "valueString", nom_esms),
    ]
    if statut_esms:
        inputs.append(_input(sdo.STATUT_ESMS, "valueCodeableConcept", _coded(sdo.TRE_R357, *statut_esms)))
    if motif_esms:
        inputs.append(_input(sdo.MOTIF_ESMS, "valueCodeableConcept", _coded(sdo.TRE_R358, *motif_esms)))
    if date_statut_esms:
        inputs.append(_input(sdo.DATE_STATUT_ESMS, "valueDate", date_statut_esms.isoformat()))
    if unit:
        inputs.append(_input(sdo.ID_UNITE, "valueIdentifier", {"value": unit["id_unite"]}))
        inputs.append(_input(sdo.NOM_UNITE, "valueString", unit["nom_unite"]))
        inputs.append(_input(sdo.CATEGORIE_ORGANISATION, "valueCodeableConcept",
                             _coded(sdo.TRE_R244, unit["categorie_organisation"], None)))
        if unit.get("temporalite_accueil"):
            inputs.append(_input(sdo.TEMPORALITE_ACCUEIL, "valueCodeableConcept",
                                 _coded(sdo.TRE_R240, unit["temporalite_accueil"], None)))
        if unit.get("accueil_sequentiel") is not None:
            inputs.append(_input(sdo.ACCUEIL_SEQUENTIEL, "valueBoolean", bool(unit["accueil_sequentiel"])))
        mode = str(unit["mode_prise_charge"])
        mode_system = sdo.TRE_R397 if mode == "238" else sdo.TRE_R213
        inputs.append(_input(sdo.MODE_PRISE_CHARGE, "valueCodeableConcept", _coded(mode_system, mode, None)))
    if statut_unite:
        inputs.append(_input(sdo.STATUT_UNITE, "valueCodeableConcept", _coded(sdo.TRE_R357, *statut_unite)))
    if date_statut_unite:
        inputs.append(_input(sdo.DATE_STATUT_UNITE, "valueDate", date_statut_unite.isoformat()))
    if motif_unite:
        inputs.append(_input(sdo.MOTIF_UNITE, "valueCodeableConcept", _coded(sdo.TRE_R358, *motif_unite)))
    inputs.append(_input(sdo.ID_DECISION, "valueIdentifier", {"value": id_decision}))
    inputs.append(_input(sdo.ID_NAT_DECISION, "valueIdentifier", {"value": id_nat_decision}))
    task: dict[str, Any] = {"resourceType": "Task", "meta": {"profile": [sdo.PROFILE_TASK]}}
    if last_updated is not None:
        task["meta"]["lastUpdated"] = format_instant(last_updated)
    task["status"] = "completed"
    task["intent"] = "plan"
    if description:
        task["description"] = description
    task["input"] = inputs
    return task


def capability_statement(base_url: str, software_date: str) -> dict[str, Any]:
    """The simulator's CapabilityStatement: the gestionnaire-sdo requirements, as an instance."""
    def resource(kind: str, profile: str, interactions: Sequence[str],
                 params: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {"type": kind, "profile": profile,
                               "interaction": [{"code": code} for code in interactions]}
        if params:
            out["searchParam"] = [{"name": n, "type": t} for n, t in params]
        return out

    return {
        "resourceType": "CapabilityStatement",
        "id": "vtdui-simulator",
        "url": f"{base_url}/metadata",
        "name": "VtduiViaTrajectoireSimulator",
        "title": "ViaTrajectoire simulator (SI-SdO Gestionnaire) of vtdui",
        "status": "active",
        "experimental": True,
        "date": software_date,
        "publisher": "vtdui",
        "kind": "instance",
        "instantiates": [_CAPABILITY_GESTIONNAIRE],
        "software": {"name": "vtdui ViaTrajectoire simulator", "version": __version__},
        "implementation": {"description": "Simulator of the SI-SdO Gestionnaire (IG ans.fhir.fr.sdo 4.0.7)",
                           "url": base_url},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "implementationGuide": [sdo.IG_BASE],
        "rest": [{
            "mode": "server",
            "documentation": "Flux 1 and 3 (decision and evaluation documents), flux 2 (consent), flux 4 and 5 "
                             "(statuses). mTLS with the legal entity's certificate, OAuth2 client credentials, "
                             "header struct_idnat = '1' + FINESS EG.",
            "security": {"cors": False, "description": "mTLS + OAuth2 client_credentials (Bearer) + struct_idnat"},
            "resource": [
                resource("Consent", sdo.PROFILE_CONSENT, ["create"]),
                resource("DocumentReference", sdo.PROFILE_DOCUMENT_REFERENCE, ["search-type", "read"],
                         [("type", "token"), ("_lastUpdated", "date"), ("identifier", "token"),
                          ("_elements", "string"), ("_count", "number")]),
                resource("Task", sdo.PROFILE_TASK, ["create", "search-type", "read"],
                         [("_lastUpdated", "date"), ("_count", "number")]),
            ],
        }],
    }
