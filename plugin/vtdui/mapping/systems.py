"""Systems, canonical URLs and codes of the local FHIR model that the default mapping writes into HAPI.

Three sources, kept apart so a reader knows how sure each value is:

* **TDDUI** (IG "Transfert de données DUI", ``https://interop.esante.gouv.fr/ig/fhir/tddui``) and FR Core:
  profile canonicals, identifier types and systems, the ``tddui-decision`` extension and its sub-extension
  names, as published in the IG sources;
* **SDO** (:mod:`vtdui.sdo`): IG ans.fhir.fr.sdo 4.0.7 codes reused on the work list;
* **vtdui**: names of our own (``urn:vtdui:…``) where neither IG defines one: the work-list identifier,
  the record of other establishments' statuses, document-version identifiers.

What could not be confirmed from the published material is marked *unconfirmed* and can be replaced
through :class:`vtdui.mapping.options.MappingOptions`.
"""

from __future__ import annotations

from typing import Final

from vtdui import sdo

# ---------------------------------------------------------------------------------------------------
# TDDUI and FR Core

TDDUI_BASE: Final = "https://interop.esante.gouv.fr/ig/fhir/tddui"
PROFILE_TDDUI_PATIENT: Final = f"{TDDUI_BASE}/StructureDefinition/tddui-patient"
PROFILE_TDDUI_PATIENT_INS: Final = f"{TDDUI_BASE}/StructureDefinition/tddui-patient-ins"
PROFILE_TDDUI_ORGANIZATION: Final = f"{TDDUI_BASE}/StructureDefinition/tddui-organization"
PROFILE_TDDUI_BASIC_DECISION: Final = f"{TDDUI_BASE}/StructureDefinition/tddui-basic-decision"
PROFILE_TDDUI_DEMANDE_ORIENTATION: Final = f"{TDDUI_BASE}/StructureDefinition/tddui-service-request-demande-orientation"

#: Complex extension of tddui-basic-decision (typeDecision, dateDecision, …, droitPrestation).
EXT_TDDUI_DECISION: Final = f"{TDDUI_BASE}/StructureDefinition/tddui-decision"
#: Basic.code of a decision: TDDUIBasicType#DECISION (CodeSystem id ``tddui-basic-type``).
TDDUI_BASIC_TYPE: Final = f"{TDDUI_BASE}/CodeSystem/tddui-basic-type"
BASIC_TYPE_DECISION: Final = "DECISION"
#: Identifier.type codes of tddui-basic-decision (CodeSystem id ``tddui-basic-decision-identifier``).
TDDUI_DECISION_IDENTIFIER: Final = f"{TDDUI_BASE}/CodeSystem/tddui-basic-decision-identifier"
ID_TYPE_ID_DECISION: Final = "IDDECISION"
ID_TYPE_ID_DECISION_MAJ: Final = "IDDECISIONMAJ"
ID_TYPE_ID_NAT_DECISION: Final = "IDNATDECISION"
#: Identifier.type of the MDPH's individual number on TDDUIPatientINS (``initialNumber``, code PIN).
TDDUI_IDENTIFIER: Final = f"{TDDUI_BASE}/CodeSystem/tddui-identifier"
ID_TYPE_INITIAL_NUMBER: Final = "PIN"
#: System TDDUI fixes for the orientation request; its value format needs the MDPH's request id, which
#: the SDO CDA does not carry, so the default mapping uses :data:`DEMANDE_ORIENTATION_SYSTEM` instead.
TDDUI_DEMANDE_ORIENTATION_SYSTEM: Final = "https://identifiant-medicosocial-demandeorientation.esante.gouv.fr"

FR_CORE_V2_0203: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
ID_TYPE_INS_NIR: Final = "INS-NIR"
ID_TYPE_INS_NIA: Final = "INS-NIA"
ID_TYPE_IDNST: Final = "IDNST"
#: FINESS EG identifier type (interopsante fr-v2-0203 ``FINEG``).
INTEROPSANTE_V2_0203: Final = "http://interopsante.org/CodeSystem/fr-v2-0203"
ID_TYPE_FINEG: Final = "FINEG"
ID_NAT_STRUCT_SYSTEM: Final = f"urn:oid:{sdo.OID_ID_NAT_STRUCT}"

# ---------------------------------------------------------------------------------------------------
# HL7

LOINC: Final = sdo.LOINC
V3_ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
EXT_BIRTH_PLACE: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
URI_SYSTEM: Final = "urn:ietf:rfc:3986"

# ---------------------------------------------------------------------------------------------------
# vtdui's own names

#: Task.identifier of a work-list item; value ``<idNat_Decision>|<FINESS EG>``.
WORKLIST_SYSTEM: Final = "urn:vtdui:worklist"
#: Task.code of a work-list item (tells it apart from other Tasks of the DUI).
TASK_KIND_SYSTEM: Final = "urn:vtdui:task-kind"
TASK_KIND_WORKLIST: Final = "worklist-item"
#: DocumentReference.identifier of a stored CDA; value ``<idNat_Decision>|decision`` or ``|evaluation``.
SOURCE_DOCUMENT_SYSTEM: Final = "urn:vtdui:source-document"
#: ServiceRequest.identifier of the orientation request answered by a decision; value idNat_Decision.
DEMANDE_ORIENTATION_SYSTEM: Final = "urn:vtdui:demande-orientation"
#: Observation.identifier of an evaluation item; value ``<idNat_Decision>|<entry template>|<code>``.
EVALUATION_ITEM_SYSTEM: Final = "urn:vtdui:evaluation-item"
#: Observation.code system of evaluation items: the CDA ``code/originalText`` label (``PathologiePrincipale``).
EVALUATION_LABEL_SYSTEM: Final = "urn:vtdui:evaluation-label"
#: Organization.identifier of an MDPH: its root OID as a URI.
MDPH_SYSTEM: Final = URI_SYSTEM

#: Complex extension on the work-list Task: one per status read in flux 5 (other ESMS, MDPH events).
EXT_REMOTE_STATUS: Final = "urn:vtdui:fhir:extension:remote-status"
#: Sub-extensions of :data:`EXT_REMOTE_STATUS` (the status fields carry the ESMSTask input codes).
RS_TASK_ID: Final = "vtTaskId"
RS_LAST_UPDATED: Final = "lastUpdated"
RS_ID_NAT_STRUCT: Final = sdo.ID_NAT_STRUCT
RS_NOM_ESMS: Final = sdo.NOM_ESMS
RS_STATUT_ESMS: Final = sdo.STATUT_ESMS
RS_MOTIF_ESMS: Final = sdo.MOTIF_ESMS
RS_DATE_STATUT_ESMS: Final = sdo.DATE_STATUT_ESMS
RS_STATUT_UNITE: Final = sdo.STATUT_UNITE
RS_MOTIF_UNITE: Final = sdo.MOTIF_UNITE
RS_DATE_STATUT_UNITE: Final = sdo.DATE_STATUT_UNITE
RS_NOM_UNITE: Final = sdo.NOM_UNITE
RS_DESCRIPTION: Final = "description"
RS_APPLIED: Final = "applied"
#: True on a record of this establishment's own status entered in ViaTrajectoire's screens ("mode reprise").
RS_REPRISE: Final = "reprise"
#: The work-list item's initial status: "Notification envoyée".
STATUS_NOTIFIED: Final = "39"

# ---------------------------------------------------------------------------------------------------
# MDPH events (TRE_R357 codes) and what they do to the work-list item

#: MDPH / ViaTrajectoire events that change the local item's status when they concern this establishment.
MDPH_EVENTS: Final = frozenset({"37", "46", "49", "54"})
#: Events that concern every establishment notified of the decision, whatever idNat_Struct they carry.
DECISION_WIDE_EVENTS: Final = frozenset({"37"})
#: Task.status of the work-list item after each MDPH event.
TASK_STATUS_AFTER_EVENT: Final = {"37": "cancelled", "46": "rejected", "49": "cancelled", "54": "requested"}

__all__ = [name for name in dir() if name.isupper()]
