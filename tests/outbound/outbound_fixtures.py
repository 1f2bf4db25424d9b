"""Shared builders of test data for the outbound tests: a configuration, work-list Tasks, local Consents."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from vtdui import sdo
from vtdui.config import Config, Establishment, LegalEntity, RetrySettings, RorUnit
from vtdui.hookcontext import OutboundContext

FINESS_EJ = "750000010"  # not checked here: Config is built directly
FINESS_EG = "750000028"
FINESS_ESAT = "750000036"
ID_NAT = "VT-9f2c1e"
ID_DECISION = "MDPH35-DEC-000123"
UNIT = RorUnit(id_unite="ROR-UNIT-7", nom_unite="Atelier conditionnement", categorie_organisation="12",
               mode_prise_charge="47", temporalite_accueil="02", accueil_sequentiel=False)
UNIT_NIGHT = RorUnit(id_unite="ROR-UNIT-9", nom_unite="Foyer de nuit", categorie_organisation="13",
                     mode_prise_charge="48")
IME = Establishment(finess_eg=FINESS_EG, name="IME Les Tilleuls", units=(UNIT_NIGHT,))
ESAT = Establishment(finess_eg=FINESS_ESAT, name="ESAT Les Ateliers", is_esat=True, units=(UNIT,))
ENTITY = LegalEntity(finess_ej=FINESS_EJ, name="Association", establishments=(IME, ESAT))


def make_config(state_dir: Path, **retry: Any) -> Config:
    return Config(state_dir=state_dir, hooks_dir=None, legal_entities=(ENTITY,),
                  retry=RetrySettings(**retry) if retry else RetrySettings())


def context(config: Config, establishment: Establishment = IME,
            worklist: dict[str, Any] | None = None, decision: dict[str, Any] | None = None) -> OutboundContext:
    return OutboundContext(config=config, legal_entity=ENTITY, establishment=establishment,
                           worklist_task=worklist, decision=decision)


def coded_input(code: str, system: str, value: str) -> dict[str, Any]:
    return {"type": sdo.input_type(code), "valueCodeableConcept": {"coding": [{"system": system, "code": value}]}}


def worklist_task(*, task_id: str = "wl-1", version: str = "2", statut: str | None = None,
                  motif: str | None = None, date: str | None = None, statut_unite: str | None = None,
                  motif_unite: str | None = None, date_unite: str | None = None, unite: str | None = None,
                  finess_eg: str = FINESS_EG, id_nat: str = ID_NAT, source: str | None = None,
                  last_updated: str = "2026-05-12T09:30:00.000+02:00") -> dict[str, Any]:
    """A work-list Task in the default local model (businessStatus / statusReason / input)."""
    meta: dict[str, Any] = {"versionId": version, "lastUpdated": last_updated}
    if source:
        meta["source"] = source
    task: dict[str, Any] = {
        "resourceType": "Task", "id": task_id, "meta": meta, "status": "in-progress", "intent": "order",
        "identifier": [{"system": "urn:vtdui:worklist", "value": f"{id_nat}|{finess_eg}"}],
        "owner": {"identifier": {"system": sdo.FINESS_SYSTEM, "value": finess_eg}},
        "input": [{"type": sdo.input_type(sdo.ID_DECISION), "valueIdentifier": {"value": ID_DECISION}},
                  {"type": sdo.input_type(sdo.ID_NAT_DECISION), "valueIdentifier": {"value": id_nat}}],
    }
    if statut:
        task["businessStatus"] = {"coding": [{"system": sdo.TRE_R357, "code": statut}]}
    if motif:
        task["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": motif}]}
    if date:
        task["input"].append({"type": sdo.input_type(sdo.DATE_STATUT_ESMS), "valueDate": date})
    if unite:
        task["input"].append({"type": sdo.input_type(sdo.ID_UNITE), "valueIdentifier": {"value": unite}})
    if statut_unite:
        task["input"].append(coded_input(sdo.STATUT_UNITE, sdo.TRE_R357, statut_unite))
    if motif_unite:
        task["input"].append(coded_input(sdo.MOTIF_UNITE, sdo.TRE_R358, motif_unite))
    if date_unite:
        task["input"].append({"type": sdo.input_type(sdo.DATE_STATUT_UNITE), "valueDate": date_unite})
    return task


def next_version(task: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The same Task one version later, with ``changes`` applied through :func:`worklist_task`."""
    new = copy.deepcopy(task)
    new["meta"]["versionId"] = str(int(task["meta"]["versionId"]) + 1)
    return new | {k: v for k, v in worklist_task(**changes).items() if k != "meta"} | {"meta": new["meta"]}


def decision_basic(id_nat: str = ID_NAT) -> dict[str, Any]:
    return {"resourceType": "Basic", "id": "dec-1",
            "identifier": [{"system": "urn:oid:1.2.250.1.213.4.1.2.3", "value": ID_DECISION},
                           {"system": sdo.ID_NAT_DECISION_SYSTEM, "value": id_nat}],
            "code": {"text": "decision"}}


def local_consent(*, consent_id: str = "c-1", version: str = "1", status: str = "active",
                  date_time: str | None = "2026-05-11", decision_ref: str = "Basic/dec-1",
                  source: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"versionId": version, "lastUpdated": "2026-05-11T10:00:00.000+02:00"}
    if source:
        meta["source"] = source
    consent: dict[str, Any] = {
        "resourceType": "Consent", "id": consent_id, "meta": meta, "status": status,
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
        "organization": [{"identifier": {"system": sdo.FINESS_SYSTEM, "value": FINESS_EG}}],
        "provision": {"data": [{"meaning": "related", "reference": {"reference": decision_ref}}]},
    }
    if date_time:
        consent["dateTime"] = date_time
    return consent
