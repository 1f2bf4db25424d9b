"""Typed, immutable records of what the two SDO CDA documents carry.

The records follow the IG's "Individu et décision" (template 1.2.250.1.213.1.1.1.4.8) and
"Evaluation" (1.2.250.1.213.1.1.1.4.9) documents. Field names are English; the docstrings give the
IG/CNSA element each field comes from so a reader can find it in the specification.

Coded values keep the raw code even when vtdui does not know it (:class:`Code`); the parser records
such surprises in the document's ``warnings`` instead of failing.

Every record offers :meth:`Record.as_dict`, a JSON-ready view (dates as ISO strings, tuples as lists).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

__all__ = [
    "Address",
    "Caracterisation",
    "Code",
    "Death",
    "Decision",
    "DecisionDocument",
    "DocumentHeader",
    "DroitPrestation",
    "Evaluation",
    "EvaluationDocument",
    "EvaluationObservation",
    "Guardian",
    "InstanceId",
    "Mdph",
    "Parent",
    "Person",
    "PersonName",
    "PriseEnCharge",
    "Quantification",
    "Record",
    "Telecom",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """Return ``value`` with records turned into dicts, tuples into lists, dates into ISO strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("json", True)}
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class Record:
    """Mixin giving every record a JSON-ready dictionary view."""

    def as_dict(self) -> dict[str, Any]:
        """Return the record as plain JSON types (dates as ISO 8601 strings, tuples as lists)."""
        result = to_jsonable(self)
        assert isinstance(result, dict)
        return result


@dataclass(frozen=True)
class Code(Record):
    """A coded value (HL7 CD/CE): the code as sent, its code system OID and display name.

    Attributes:
        code: the code exactly as in ``@code`` (never normalised, e.g. ``"02"`` stays ``"02"``).
        code_system: ``@codeSystem`` OID, if given.
        display: ``@displayName``, if given.
    """

    code: str
    code_system: str | None = None
    display: str | None = None


@dataclass(frozen=True)
class InstanceId(Record):
    """An HL7 instance identifier (II).

    Attributes:
        root: ``@root`` OID (or UUID); ``None`` only for legacy text-form identifiers.
        extension: ``@extension``, the identifier within ``root``.
    """

    root: str | None
    extension: str | None = None


@dataclass(frozen=True)
class Address(Record):
    """A postal address (``addr``).

    Attributes:
        use: ``PHYS`` (home) or ``PST`` (domiciliation body for homeless people).
        street: ``streetAddressLine`` (number, street, complements concatenated).
        postal_code: ``postalCode``.
        city: ``city``.
        additional_locator: ``additionalLocator`` = name of the domiciliation body (``PST`` only).
    """

    use: str | None = None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    additional_locator: str | None = None


@dataclass(frozen=True)
class Telecom(Record):
    """A telecom address: ``value`` is a URI such as ``tel:0601020304`` or ``mailto:a@b.fr``."""

    value: str
    use: str | None = None


@dataclass(frozen=True)
class Mdph(Record):
    """An MDPH (departmental house for disabled people), as in the IG annex "OID MDPH".

    Attributes:
        oid: root OID ``1.2.250.1.213.7.<n>``.
        label: identifier string ``<code>-<NAME>``, e.g. ``35-ILLE ET VILAINE``.
    """

    oid: str
    label: str

    @property
    def department(self) -> str:
        """The department code before the first ``-`` of the label (``35``, ``2A``, ``69M``, ``974``)."""
        return self.label.split("-", 1)[0]


@dataclass(frozen=True)
class PersonName(Record):
    """Name of a guardian or parent (``name`` with ``prefix``/``family``/``given``).

    Attributes:
        family: family name.
        given: first name, if any.
        prefix: civility code from JDV_J245-Civilite-CISIS (e.g. ``MME``), if any.
    """

    family: str
    given: str | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class Guardian(Record):
    """A legal protection measure (``patient/guardian``, SFE ``MesureProtection``).

    Exactly one of ``person`` (natural person appointed by the judge) and ``organization_name``
    (legal person) is normally set.

    Attributes:
        measure: ``code`` from No_Type_mesure_protection (1.2.250.1.213.3.3.208), e.g. ``1`` Tutelle.
        address: ``addr`` (1..1 in the IG).
        telecoms: up to three ``telecom``.
        person: ``guardianPerson/name``.
        organization_name: ``guardianOrganization/name``.
    """

    measure: Code
    address: Address | None = None
    telecoms: tuple[Telecom, ...] = ()
    person: PersonName | None = None
    organization_name: str | None = None


@dataclass(frozen=True)
class Parent(Record):
    """A parent of the person (``informant/relatedEntity``, Decision document only).

    Attributes:
        relationship: ``code`` from TRE_R216-HL7RoleCode (``MTH``, ``FTH`` ...) or TRE_R217.
        name: ``relatedPerson/name``.
        address: ``addr`` (1..1 in the IG).
        telecoms: up to three ``telecom``.
        parental_authority: ``cnsaSDO:autoriteParentale/@value``; ``None`` if absent.
    """

    relationship: Code
    name: PersonName
    address: Address | None = None
    telecoms: tuple[Telecom, ...] = ()
    parental_authority: bool | None = None


@dataclass(frozen=True)
class Death(Record):
    """Death section (template 1.2.250.1.213.1.1.2.228).

    Attributes:
        status: ``value`` from No_Statut_deces (1.2.250.1.213.3.3.100), e.g. ``1`` Certifié.
        date_deces: ``effectiveTime/@value``, if given.
    """

    status: Code | None = None
    date_deces: date | None = None


@dataclass(frozen=True)
class Person(Record):
    """The person the document is about (``recordTarget/patientRole``) and their family context.

    In the Evaluation document ``patient`` is optional, so the identity fields may be ``None`` there.

    Attributes:
        ins: INS matricule, root 1.2.250.1.213.1.4.8 (NIR) or 1.2.250.1.213.1.4.9 (NIA), if any.
        mdph_individual_id: id of the individual in the MDPH that created the file (root = MDPH OID).
        other_ids: any other ``patientRole/id``.
        birth_name: ``family[@qualifier='BR']`` (nom de naissance).
        usage_name: ``family[@qualifier='CL']`` (nom d'usage).
        given_names: ``given`` without qualifier: the birth-certificate first names.
        first_given_name: ``given[@qualifier='BR']``: first birth first name.
        used_given_name: ``given[@qualifier='CL']``: used first name.
        prefix: civility code (JDV_J245), if any.
        gender: ``administrativeGenderCode/@code`` (``M``, ``F``, ``U``).
        birth_date: ``birthTime`` (unknown day/month are encoded by the IG rule, e.g. ``yyyymm01``).
        birth_place_code: INSEE code of the birth commune (``birthplace/place/addr/county``).
        birth_place_city: birth city name.
        address: ``patientRole/addr``.
        telecoms: ``patientRole/telecom`` (0..3).
        insurer_name: ``cnsaSDO:nomOrganismeAM`` (CPAM, MSA ...).
        social_security: ``cnsaSDO:numSecuriteSocialeOuvrantDroit`` (root .4.13 NIR / .4.14 NIA);
            root ``None`` when a legacy document sends it as text.
        file_transfer_date: ``cnsaSDO:dateTransfertDossier``.
        mdph_responsable: ``cnsaSDO:idMDPHResponsable`` (1..1), ``None`` only if missing (warned).
        mdph_accueil: ``cnsaSDO:idMDPHAccueil`` during an ongoing file transfer.
        guardians: legal protection measures.
        parents: parents (document ``informant``s).
        death: death section, if any.
    """

    mdph_individual_id: InstanceId | None
    ins: InstanceId | None = None
    other_ids: tuple[InstanceId, ...] = ()
    birth_name: str | None = None
    usage_name: str | None = None
    given_names: tuple[str, ...] = ()
    first_given_name: str | None = None
    used_given_name: str | None = None
    prefix: str | None = None
    gender: str | None = None
    birth_date: date | None = None
    birth_place_code: str | None = None
    birth_place_city: str | None = None
    address: Address | None = None
    telecoms: tuple[Telecom, ...] = ()
    insurer_name: str | None = None
    social_security: InstanceId | None = None
    file_transfer_date: date | None = None
    mdph_responsable: Mdph | None = None
    mdph_accueil: Mdph | None = None
    guardians: tuple[Guardian, ...] = ()
    parents: tuple[Parent, ...] = ()
    death: Death | None = None

    @property
    def ins_nir(self) -> str | None:
        """The INS-NIR matricule (15 characters) if the INS is a NIR."""
        if self.ins is not None and self.ins.root == "1.2.250.1.213.1.4.8":
            return self.ins.extension
        return None

    @property
    def ins_nia(self) -> str | None:
        """The INS-NIA matricule if the INS is a NIA."""
        if self.ins is not None and self.ins.root == "1.2.250.1.213.1.4.9":
            return self.ins.extension
        return None


@dataclass(frozen=True)
class Caracterisation(Record):
    """``cnsaSDO:caracterisation``: priority level of the right.

    Attributes:
        niveau: No_Caracterisation (1.2.250.1.213.3.3.98), e.g. ``4`` Priorité 4.
        motif: No_Motif_caracterisation (1.2.250.1.213.3.3.141).
        date_mise_a_jour: ``dateMiseAJour``.
    """

    niveau: Code
    motif: Code | None = None
    date_mise_a_jour: date | None = None


@dataclass(frozen=True)
class Quantification(Record):
    """``cnsaSDO:quantification``: ``nombre`` × ``unite`` per ``periodicite`` (e.g. 15 days a month)."""

    nombre: float
    unite: Code | None = None
    periodicite: Code | None = None


@dataclass(frozen=True)
class PriseEnCharge(Record):
    """``cnsaSDO:priseEnCharge``: a care mode (TRE_R213 46/47/48) and its optional quantity."""

    mode: Code | None = None
    quantification: Quantification | None = None


@dataclass(frozen=True)
class DroitPrestation(Record):
    """A right or benefit granted by the decision (``cnsaSDO:droitPrestation``).

    Attributes:
        type_droit: ``typeDroitOuPrestation``, No_Type_droit_prestation (1.2.250.1.213.3.3.204),
            e.g. ``7.1`` IME, ``13.2`` EAM/FAM, ``11.5`` ESAT.
        nature: ``natureDroit``, No_Nature_droit (1.2.250.1.213.3.3.151), e.g. ``1`` Nouveau droit.
        date_ouverture: ``dateOuvertureDuDroit``.
        date_echeance: ``dateEcheanceDuDroit``.
        qualification: No_Qualification (1.2.250.1.213.3.3.171): ``1`` cible, ``2`` alternative.
        amendement_creton: ``amendementCreton``, for child-ESMS orientations.
        existence_pag: ``existencePAG``: linked to a Plan d'Accompagnement Global.
        motif_fin_pag: ``motifFinPAG``.
        caracterisation: ``caracterisation``.
        precision_orientation: ``detailTypeDroitPrestation/precisionOrientation`` (CNSA code).
        precision_orientation_locale: ``precisionOrientationLocale`` (local code or free text).
        temporalite_accueil: TRE_R240 (1.2.250.1.213.3.3.31): ``01`` Temporaire, ``02`` Permanent.
        accueil_sequentiel: ``accueilSequentiel``.
        id_nat_structs: designated ESMS, ``idNat/@extension`` = ``"1"`` + FINESS (or ``"3"`` + SIRET).
        categorie_etablissement: TRE_R66-CategorieEtablissement (FINESS category).
        categorie_organisation: TRE_R244-CategorieOrganisation (1.2.250.1.213.3.3.39).
        specialisation: ``specialisationPriseEnCharge``, TRE_R245.
        formations: ``formation`` texts (mandatory for 11.1 ESRP).
        mode_entree_ditep: No_Mode_entree_DITEP (mandatory for 7.7).
        nb_jours_derogation: ``nbJoursDerogationAccueilTemporaire`` (max 90).
        prises_en_charge: ``priseEnCharge`` list.
    """

    type_droit: Code
    nature: Code | None = None
    date_ouverture: date | None = None
    date_echeance: date | None = None
    qualification: Code | None = None
    amendement_creton: bool | None = None
    existence_pag: bool | None = None
    motif_fin_pag: Code | None = None
    caracterisation: Caracterisation | None = None
    precision_orientation: Code | None = None
    precision_orientation_locale: str | None = None
    temporalite_accueil: Code | None = None
    accueil_sequentiel: bool | None = None
    id_nat_structs: tuple[str, ...] = ()
    categorie_etablissement: Code | None = None
    categorie_organisation: Code | None = None
    specialisation: Code | None = None
    formations: tuple[str, ...] = ()
    mode_entree_ditep: Code | None = None
    nb_jours_derogation: int | None = None
    prises_en_charge: tuple[PriseEnCharge, ...] = ()

    @property
    def category(self) -> str:
        """The right's category: the part of ``type_droit`` before the dot (``7``, ``13``, ``11`` ...)."""
        return self.type_droit.code.split(".", 1)[0]

    @property
    def modes_prise_en_charge(self) -> tuple[Code, ...]:
        """The care modes of every ``priseEnCharge``, in document order."""
        return tuple(p.mode for p in self.prises_en_charge if p.mode is not None)

    @property
    def finess_list(self) -> tuple[str, ...]:
        """The designated establishments' FINESS numbers (``id_nat_structs`` with prefix ``1`` removed)."""
        return tuple(v[1:] for v in self.id_nat_structs if v.startswith("1") and len(v) == 10)


@dataclass(frozen=True)
class Decision(Record):
    """An orientation decision of the CDAPH (``cnsaSDO:decision``) and its national identifier.

    Attributes:
        id_nat_decision: national id generated by ViaTrajectoire (``setId/@extension``).
        id_decision: ``identifiantDecision/@extension``: id within the issuing MDPH.
        id_decision_root: ``identifiantDecision/@root``: OID of the issuing MDPH.
        type_decision: No_Type_Decision (1.2.250.1.213.3.3.202): ``1`` Attribution, ``5`` Clôture.
        date_decision: ``dateDeDecision`` (CDAPH date).
        date_effet_cloture: ``dateEffetDeLaDecisionDeCloture`` (mandatory for type 5).
        related_decisions: ``identifiantDesDecisionsReviseesRenouveleesCloturees``.
        id_nat_tiers: ``idNat`` of the third party who asked for the revision.
        motivations: ``motivation`` (No_Motivation 1.2.250.1.213.3.3.148), 1..N.
        motivations_locales: ``motivationLocale`` (with code 9999 "Autre").
        precision_reponse_revision: ``precisionReponseRevisionTiers``.
        precision_locale: ``precisionLocale``.
        rights: the ``droitPrestation`` elements (0..1 in the IG; all kept if more are sent).
        version_number: ``versionNumber/@value`` of the document that carried the decision.
    """

    id_nat_decision: str
    id_decision: str
    id_decision_root: str | None
    type_decision: Code | None = None
    date_decision: date | None = None
    date_effet_cloture: date | None = None
    related_decisions: tuple[InstanceId, ...] = ()
    id_nat_tiers: str | None = None
    motivations: tuple[Code, ...] = ()
    motivations_locales: tuple[str, ...] = ()
    precision_reponse_revision: Code | None = None
    precision_locale: str | None = None
    rights: tuple[DroitPrestation, ...] = ()
    version_number: int | None = None

    @property
    def id_nat_structs(self) -> tuple[str, ...]:
        """Every designated establishment (``"1"`` + FINESS ...) over all rights, first seen first."""
        seen: dict[str, None] = {}
        for right in self.rights:
            for value in right.id_nat_structs:
                seen.setdefault(value, None)
        return tuple(seen)


@dataclass(frozen=True)
class DocumentHeader(Record):
    """The CDA header fields common to both documents.

    Attributes:
        template_id: first ``templateId/@root`` (…1.1.1.4.8 decision, …1.1.1.4.9 evaluation).
        document_id: ``id`` of this document instance.
        set_id: ``setId`` (``extension`` = idNat_Decision).
        version_number: ``versionNumber/@value`` (1 when absent).
        effective_time: ``effectiveTime/@value`` (naive when the document gives no UTC offset).
        title: ``title``.
        confidentiality: ``confidentialityCode/@code``.
        language: ``languageCode/@code``.
        replaces: ``relatedDocument[@typeCode='RPLC']/parentDocument/id``.
        author_id: ``author/assignedAuthor/id``.
        author_time: ``author/time/@value``.
        custodian_id: ``custodian/…/representedCustodianOrganization/id``.
    """

    template_id: str
    document_id: InstanceId
    set_id: InstanceId
    version_number: int = 1
    effective_time: datetime | None = None
    title: str | None = None
    confidentiality: str | None = None
    language: str | None = None
    replaces: InstanceId | None = None
    author_id: InstanceId | None = None
    author_time: datetime | None = None
    custodian_id: InstanceId | None = None

    @property
    def id_nat_decision(self) -> str:
        """The idNat_Decision carried by ``setId/@extension``."""
        return self.set_id.extension or ""


@dataclass(frozen=True)
class DecisionDocument(Record):
    """A parsed "Individu et décision" document (flux 1.4 payload).

    Attributes:
        header: CDA header.
        person: the person, parents, protection measures and death section.
        decision: the decision.
        digest: SHA-256 (hex) of the raw XML bytes: detects a changed document with the same version.
        warnings: non-fatal findings (unknown codes, missing optional-but-expected data); never personal data.
        raw: the document bytes as received (kept in the DocumentReference; left out of :meth:`as_dict`).
    """

    header: DocumentHeader
    person: Person
    decision: Decision
    digest: str
    warnings: tuple[str, ...] = field(default=())
    raw: bytes = field(default=b"", repr=False, compare=False, metadata={"json": False})

    @property
    def id_nat_decision(self) -> str:
        """The idNat_Decision of the document."""
        return self.decision.id_nat_decision


@dataclass(frozen=True)
class EvaluationObservation(Record):
    """One entry of the evaluation section (``observation`` with a CNSA-coded ``value``).

    Attributes:
        section_template: templateId of the sub-section (…2.230 environment, …2.231 personal/medical,
            …2.232 school/work, …2.233 evolution and needs).
        entry_template: templateId of the entry (…3.177 to …3.199).
        label: ``code/originalText`` (e.g. ``CompositionFoyer``), or the label the template implies.
        value: ``value`` (code, nomenclature OID, display).
        nomenclature: the CNSA nomenclature name the entry template expects (e.g. ``No_Composition_foyer``),
            ``None`` for an unknown template.
    """

    section_template: str
    entry_template: str
    label: str
    value: Code
    nomenclature: str | None = None


@dataclass(frozen=True)
class Evaluation(Record):
    """The "Evaluation d'un individu" section (template 1.2.250.1.213.1.1.2.229).

    Attributes:
        date_mise_a_jour: section ``text`` = last update date of the evaluation.
        observations: every coded entry of the four sub-sections, in document order.
    """

    date_mise_a_jour: date | None
    observations: tuple[EvaluationObservation, ...] = ()


@dataclass(frozen=True)
class EvaluationDocument(Record):
    """A parsed "Evaluation" document (flux 3.2 payload).

    Attributes:
        header: CDA header.
        person: the person (identity fields may be empty: ``patient`` is optional here).
        id_nat_decision: ``setId/@extension``: links the evaluation to its decision.
        evaluation: the evaluation section.
        digest: SHA-256 (hex) of the raw XML bytes.
        warnings: non-fatal findings; never personal data.
        raw: the document bytes as received (left out of :meth:`as_dict`).
    """

    header: DocumentHeader
    person: Person
    id_nat_decision: str
    evaluation: Evaluation
    digest: str
    warnings: tuple[str, ...] = field(default=())
    raw: bytes = field(default=b"", repr=False, compare=False, metadata={"json": False})

    @property
    def observations(self) -> tuple[EvaluationObservation, ...]:
        """Shortcut to ``evaluation.observations``."""
        return self.evaluation.observations
