"""Names, canonical URLs and codes of IG ans.fhir.fr.sdo 4.0.7 used across the package.

Facts restated from the IG (profiles, CodeSystem InputTaskSDOCodeSystem, NOS value sets).
Keep the IG's own vocabulary (idNat_Decision, statutESMS, flux numbers) so readers can find
each name in the specification.
"""

from __future__ import annotations

from typing import Final

IG_BASE: Final = "https://interop.esante.gouv.fr/ig/fhir/sdo"
IG_VERSION: Final = "4.0.7"

# Profiles (StructureDefinition canonicals)
PROFILE_DOCUMENT_REFERENCE: Final = f"{IG_BASE}/StructureDefinition/esms-document-reference"
PROFILE_BUNDLE_DECISION_EVALUATION: Final = (
    f"{IG_BASE}/StructureDefinition/esms-bundle-resultat-recherche-decision-evaluation"
)
PROFILE_CONSENT: Final = f"{IG_BASE}/StructureDefinition/esms-consent"
PROFILE_TASK: Final = f"{IG_BASE}/StructureDefinition/esms-task"
PROFILE_BUNDLE_NOTIFICATION: Final = (
    f"{IG_BASE}/StructureDefinition/esms-bundle-resultat-recherche-notification-esms"
)
LEGACY_PROFILES: Final = frozenset({
    f"{IG_BASE}/StructureDefinition/sdo-task",
    f"{IG_BASE}/StructureDefinition/sdo-document-reference",
    f"{IG_BASE}/StructureDefinition/sdo-bundle-resultat-recherche-notification-esms",
})

# Task.input.type codes (CodeSystem InputTaskSDOCodeSystem)
INPUT_SYSTEM: Final = f"{IG_BASE}/CodeSystem/input-task-sdo-codesystem"
ID_NAT_STRUCT: Final = "idNat_Struct"
NOM_ESMS: Final = "nomESMS"
STATUT_ESMS: Final = "statutESMS"
MOTIF_ESMS: Final = "motifESMS"
DATE_STATUT_ESMS: Final = "dateStatutESMS"
ID_UNITE: Final = "idUnite"
NOM_UNITE: Final = "nomUnite"
CATEGORIE_ORGANISATION: Final = "categorieOrganisation"
TEMPORALITE_ACCUEIL: Final = "temporaliteAccueil"
ACCUEIL_SEQUENTIEL: Final = "accueilSequentiel"
MODE_PRISE_CHARGE: Final = "modePriseCharge"
STATUT_UNITE: Final = "statutUnite"
DATE_STATUT_UNITE: Final = "dateStatutUnite"
MOTIF_UNITE: Final = "motifUnite"
TYPE_DROIT_PRESTATION: Final = "typeDroitPrestation"  # legacy, removed from ESMSTask in 4.0.3
ID_DECISION: Final = "idDecision"
ID_NAT_DECISION: Final = "idNat_Decision"

#: Unit block required when statutUnite is sent (regle-StatutUnite, enforced on codes).
UNIT_BLOCK: Final = (ID_UNITE, NOM_UNITE, CATEGORIE_ORGANISATION, MODE_PRISE_CHARGE, DATE_STATUT_UNITE)

# NOS code systems (Coding.system carries the TRE, never the JDV URL)
NOS: Final = "https://mos.esante.gouv.fr/NOS"
TRE_R357: Final = f"{NOS}/TRE_R357-StatutPersonnePriseCharge/FHIR/TRE-R357-StatutPersonnePriseCharge"
TRE_R358: Final = f"{NOS}/TRE_R358-MotifStatutPersonnePriseCharge/FHIR/TRE-R358-MotifStatutPersonnePriseCharge"
TRE_R213: Final = f"{NOS}/TRE_R213-ModePriseEnCharge/FHIR/TRE-R213-ModePriseEnCharge"
TRE_R240: Final = f"{NOS}/TRE_R240-TemporaliteAccueil/FHIR/TRE-R240-TemporaliteAccueil"
TRE_R244: Final = f"{NOS}/TRE_R244-CategorieOrganisation/FHIR/TRE-R244-CategorieOrganisation"
TRE_R397: Final = "https://smt.esante.gouv.fr/fhir/CodeSystem/tre-r397-categorie-entite-geographique-exercice"

# NOS value sets bound by ESMSTask
JDV_J252: Final = f"{NOS}/JDV_J252-StatutPersonnePriseChargeESMS/FHIR/JDV-J252-StatutPersonnePriseChargeESMS"
JDV_J253: Final = f"{NOS}/JDV_J253-StatutPersonnePriseChargeUnite/FHIR/JDV-J253-StatutPersonnePriseChargeUnite"
JDV_J251: Final = (
    f"{NOS}/JDV_J251-MotifStatutPersonnePriseChargeESMS/FHIR/JDV-J251-MotifStatutPersonnePriseChargeESMS"
)
JDV_J250: Final = (
    f"{NOS}/JDV_J250-MotifStatutPersonnePriseChargeUnite/FHIR/JDV-J250-MotifStatutPersonnePriseChargeUnite"
)
JDV_J264: Final = f"{NOS}/JDV_J264-ModeEtCentreDePriseEnCharge-MDPH/FHIR/JDV-J264-ModeEtCentreDePriseEnCharge-MDPH"
JDV_J30: Final = f"{NOS}/JDV_J30-TemporaliteAccueil-ROR/FHIR/JDV-J30-TemporaliteAccueil-ROR"
JDV_J34: Final = f"{NOS}/JDV_J34-CategorieOrganisation-ROR/FHIR/JDV-J34-CategorieOrganisation-ROR"
ASS_A32: Final = f"{NOS}/ASS_A32-StatutMotifPersonnePriseCharge/FHIR/ASS-A32-StatutMotifPersonnePriseCharge"

# Document types and titles (ESMSDocumentReference, regle-NomPieceJointe-type)
LOINC: Final = "http://loinc.org"
TYPE_DECISION: Final = "57830-2"
TYPE_EVALUATION: Final = "51848-0"
TITLE_DECISION: Final = "Document Individu et décision"
TITLE_EVALUATION: Final = "Document évaluation"
DOCUMENT_TYPE_VALUESET: Final = f"{IG_BASE}/ValueSet/type-document-reference-esms-valueset"

# ESMSConsent fixed values
CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_SCOPE_CODE: Final = "patient-privacy"
CONSENT_CATEGORY_CODE: Final = "59284-0"
ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OPTIN: Final = "OPTIN"

# Identifiers
OID_VIATRAJECTOIRE: Final = "1.2.250.1.213.8.1"
ID_NAT_DECISION_SYSTEM: Final = f"urn:oid:{OID_VIATRAJECTOIRE}"
OID_ID_NAT_STRUCT: Final = "1.2.250.1.71.4.2.2"
OID_INS_NIR: Final = "1.2.250.1.213.1.4.8"
INS_NIR_SYSTEM: Final = f"urn:oid:{OID_INS_NIR}"
OID_INS_NIA: Final = "1.2.250.1.213.1.4.9"
INS_NIA_SYSTEM: Final = f"urn:oid:{OID_INS_NIA}"
FINESS_SYSTEM: Final = "http://finess.sante.gouv.fr"

#: ``meta.source`` of every resource the plugin writes into HAPI: changes carrying it are never emitted.
PLUGIN_SOURCE: Final = "urn:vtdui:plugin"

# Statuses that matter to the work list (TRE_R357)
STATUS_NOTIFICATION_SENT: Final = "39"

# CDA
CDA_NS: Final = "urn:hl7-org:v3"
CNSA_NS: Final = "urn:cnsaSDO"
TEMPLATE_DECISION: Final = "1.2.250.1.213.1.1.1.4.8"
TEMPLATE_EVALUATION: Final = "1.2.250.1.213.1.1.1.4.9"


def id_nat_struct(finess: str) -> str:
    """Return the idNat_Struct of a FINESS (``"1" + FINESS``), as in ``struct_idnat``."""
    return finess if len(finess) == 10 and finess.startswith("1") else "1" + finess


def input_type(code: str) -> dict[str, object]:
    """Return the ``Task.input.type`` CodeableConcept for an input slice code.

    ``text`` repeats the code so that validators evaluating the published (text-based)
    expression of regle-StatutUnite see a consistent resource.
    """
    return {"coding": [{"system": INPUT_SYSTEM, "code": code}], "text": code}

#: ``value[x]`` member of each ESMSTask ``input`` slice (InputTaskSDOCodeSystem code -> element name).
INPUT_VALUE_ELEMENT: Final[dict[str, str]] = {
    ID_NAT_STRUCT: "valueIdentifier",
    NOM_ESMS: "valueString",
    STATUT_ESMS: "valueCodeableConcept",
    MOTIF_ESMS: "valueCodeableConcept",
    DATE_STATUT_ESMS: "valueDate",
    ID_UNITE: "valueIdentifier",
    NOM_UNITE: "valueString",
    CATEGORIE_ORGANISATION: "valueCodeableConcept",
    TEMPORALITE_ACCUEIL: "valueCodeableConcept",
    ACCUEIL_SEQUENTIEL: "valueBoolean",
    MODE_PRISE_CHARGE: "valueCodeableConcept",
    STATUT_UNITE: "valueCodeableConcept",
    DATE_STATUT_UNITE: "valueDate",
    MOTIF_UNITE: "valueCodeableConcept",
    ID_DECISION: "valueIdentifier",
    ID_NAT_DECISION: "valueIdentifier",
}
