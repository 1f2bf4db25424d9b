"""ESMSTask / ESMSConsent bodies built from the IG rules (brief §4.4, §5.3, §5.4, §6), for the tests."""

from __future__ import annotations

import copy
from typing import Any

from vtdui import sdo

STRUCT = "1750000123"
DISPLAYS = {"41": "Contact effectué", "152": "L'usager a visité l'ESMS"}


def item(code: str, **value: Any) -> dict[str, Any]:
    return {"type": sdo.input_type(code), **value}


def coded(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"valueCodeableConcept": {"coding": [coding]}}


def task(*extra: dict[str, Any], struct: str = STRUCT) -> dict[str, Any]:
    """A minimal ESMSTask with the four mandatory inputs plus ``extra`` inputs."""
    return {
        "resourceType": "Task",
        "meta": {"profile": [sdo.PROFILE_TASK], "lastUpdated": "2026-05-12T09:30:00+02:00"},
        "status": "completed",
        "intent": "plan",
        "input": [
            item(sdo.ID_NAT_STRUCT, valueIdentifier={"value": struct}),
            item(sdo.NOM_ESMS, valueString="IME Les Tilleuls"),
            item(sdo.ID_DECISION, valueIdentifier={"value": "MDPH35-DEC-000123"}),
            item(sdo.ID_NAT_DECISION, valueIdentifier={"value": "VT-9f2c1e"}),
            *copy.deepcopy(list(extra)),
        ],
    }


def statut_esms(code: str, display: str | None = None) -> dict[str, Any]:
    return item(sdo.STATUT_ESMS, **coded(sdo.TRE_R357, code, display))


def motif_esms(code: str, display: str | None = None) -> dict[str, Any]:
    return item(sdo.MOTIF_ESMS, **coded(sdo.TRE_R358, code, display))


def statut_unite(code: str) -> dict[str, Any]:
    return item(sdo.STATUT_UNITE, **coded(sdo.TRE_R357, code))


def motif_unite(code: str) -> dict[str, Any]:
    return item(sdo.MOTIF_UNITE, **coded(sdo.TRE_R358, code))


def date_esms(value: str = "2026-05-12") -> dict[str, Any]:
    return item(sdo.DATE_STATUT_ESMS, valueDate=value)


def unit_block(*, mode: str = "46", categorie: str = "01", temporalite: str | None = "02") -> list[dict[str, Any]]:
    """idUnite, nomUnite, categorieOrganisation, modePriseCharge, dateStatutUnite (+ optional extras)."""
    block = [
        item(sdo.ID_UNITE, valueIdentifier={"value": "ROR-UNIT-0042"}),
        item(sdo.NOM_UNITE, valueString="Internat"),
        item(sdo.CATEGORIE_ORGANISATION, **coded(sdo.TRE_R244, categorie)),
        item(sdo.MODE_PRISE_CHARGE, **coded(sdo.TRE_R213, mode)),
        item(sdo.DATE_STATUT_UNITE, valueDate="2026-05-12"),
    ]
    if temporalite:
        block.append(item(sdo.TEMPORALITE_ACCUEIL, **coded(sdo.TRE_R240, temporalite)))
        block.append(item(sdo.ACCUEIL_SEQUENTIEL, valueBoolean=False))
    return block


def consent(decision: str = "VT-9f2c1e", struct: str = STRUCT) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "meta": {"profile": [sdo.PROFILE_CONSENT], "source": struct},
        "status": "active",
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
        "dateTime": "2026-05-11",
        "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]},
        "provision": {"data": [{"meaning": "related",
                                "reference": {"identifier": {"use": "official", "value": decision}}}]},
    }


def document_reference(kind: str = "decision") -> dict[str, Any]:
    code, title = ((sdo.TYPE_DECISION, sdo.TITLE_DECISION) if kind == "decision"
                   else (sdo.TYPE_EVALUATION, sdo.TITLE_EVALUATION))
    return {
        "resourceType": "DocumentReference",
        "id": "dr-1",
        "meta": {"profile": [sdo.PROFILE_DOCUMENT_REFERENCE]},
        "identifier": [{"use": "usual", "value": "MDPH35-DEC-000123"},
                       {"use": "official", "value": "VT-9f2c1e"}],
        "status": "current",
        "type": {"coding": [{"system": sdo.LOINC, "code": code}]},
        "content": [{"attachment": {"contentType": "text/xml", "title": title,
                                    "data": "PENsaW5pY2FsRG9jdW1lbnQvPg=="}}],
    }
