"""Build the two SDO CDA documents (CDA R2) the simulator serves in flux 1.4 and 3.2.

Element order follows the CDA R2 schema and the IG tables/samples (brief §7, appendix A.8): header,
``recordTarget``, ``author``, ``informant`` (0..n), ``custodian``, ``relatedDocument``, then the structured body
with the ``urn:cnsaSDO`` extensions. Output is UTF-8 with an XML declaration and is a pure function of the
arguments, so the same records always give the same bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Final

from lxml import etree

from vtdui.cda import codes as c
from vtdui.cda.records import (
    Address,
    Code,
    Decision,
    DroitPrestation,
    Evaluation,
    InstanceId,
    Mdph,
    Person,
    PersonName,
    Telecom,
)

__all__ = ["DOCUMENT_ROOT", "NB_JOURS_DEROGATION_TAG", "build_decision_cda", "build_evaluation_cda", "document_id"]

#: Root of the simulator's document ids and setIds (a UUID, as in the IG samples; not an official OID).
DOCUMENT_ROOT: Final = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:vtdui:simulator:cda-documents")).upper()

#: The IG table spells ``nbJoursDerogationAccueilTemporaire`` but the IG sample (checked against the
#: XSD by its authors) spells it without the s; the parser accepts both.
NB_JOURS_DEROGATION_TAG: Final = "nbJourDerogationAccueilTemporaire"

_H = "{" + c.CDA_NS + "}"
_C = "{" + c.CNSA_NS + "}"
_XSI_TYPE = "{" + c.XSI_NS + "}type"
_NSMAP: Final = {None: c.CDA_NS, "cnsaSDO": c.CNSA_NS, "xsi": c.XSI_NS}


def document_id(id_nat_decision: str, kind: str, version: int) -> InstanceId:
    """Return the id of a simulator document: ``<idNat_Decision>-<D|E><version:03>`` under DOCUMENT_ROOT."""
    return InstanceId(DOCUMENT_ROOT, f"{id_nat_decision}-{kind}{version:03d}")


def _hl7_date(value: date) -> str:
    return value.strftime("%Y%m%d")


def _hl7_ts(value: datetime) -> str:
    text = value.strftime("%Y%m%d%H%M%S")
    if value.utcoffset() is not None:
        text += value.strftime("%z")
    return text


def _sub(parent: etree._Element, tag: str, attrib: dict[str, str] | None = None,
         text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    for key, value in (attrib or {}).items():
        element.set(key, value)
    if text is not None:
        element.text = text
    return element


def _h(parent: etree._Element, name: str, attrib: dict[str, str] | None = None,
       text: str | None = None) -> etree._Element:
    return _sub(parent, _H + name, attrib, text)


def _c(parent: etree._Element, name: str, attrib: dict[str, str] | None = None,
       text: str | None = None) -> etree._Element:
    return _sub(parent, _C + name, attrib, text)


def _code_attrs(code: Code) -> dict[str, str]:
    attrs = {"code": code.code}
    if code.display is not None:
        attrs["displayName"] = code.display
    if code.code_system is not None:
        attrs["codeSystem"] = code.code_system
    return attrs


def _ii(instance: InstanceId) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if instance.root is not None:
        attrs["root"] = instance.root
    if instance.extension is not None:
        attrs["extension"] = instance.extension
    return attrs


def _bool(value: bool) -> dict[str, str]:
    return {"value": "true" if value else "false"}


def _addr(parent: etree._Element, address: Address) -> None:
    element = _h(parent, "addr", {"use": address.use} if address.use else None)
    if address.street is not None:
        _h(element, "streetAddressLine", text=address.street)
    if address.postal_code is not None:
        _h(element, "postalCode", text=address.postal_code)
    if address.city is not None:
        _h(element, "city", text=address.city)
    if address.additional_locator is not None:
        _h(element, "additionalLocator", text=address.additional_locator)


def _telecoms(parent: etree._Element, telecoms: Iterable[Telecom]) -> None:
    for telecom in telecoms:
        attrs = {"value": telecom.value}
        if telecom.use is not None:
            attrs["use"] = telecom.use
        _h(parent, "telecom", attrs)


def _simple_name(parent: etree._Element, name: PersonName) -> None:
    element = _h(parent, "name")
    if name.prefix is not None:
        _h(element, "prefix", text=name.prefix)
    _h(element, "family", text=name.family)
    if name.given is not None:
        _h(element, "given", text=name.given)


def _mdph(parent: etree._Element, tag: str, mdph: Mdph) -> None:
    _c(parent, tag, {"root": mdph.oid, "extension": mdph.label})


def _header(root: etree._Element, *, template: str, title: str, doc_id: InstanceId, id_nat_decision: str,
            version: int, effective_time: datetime) -> None:
    _h(root, "realmCode", {"code": "FR"})
    _h(root, "typeId", {"root": c.TYPE_ID_ROOT, "extension": c.TYPE_ID_EXTENSION})
    _h(root, "templateId", {"root": template})
    _h(root, "templateId", {"root": c.TEMPLATE_CDA_DOCUMENT})
    _h(root, "id", _ii(doc_id))
    _h(root, "code", {"code": c.DOC_CODE, "codeSystem": c.DOC_CODE_SYSTEM, "displayName": c.DOC_CODE_DISPLAY})
    _h(root, "title", text=title)
    _h(root, "effectiveTime", {"value": _hl7_ts(effective_time)})
    _h(root, "confidentialityCode", {"code": "N", "codeSystem": c.CONFIDENTIALITY_SYSTEM, "displayName": "Normal"})
    _h(root, "languageCode", {"code": "fr-FR"})
    _h(root, "setId", {"root": DOCUMENT_ROOT, "extension": id_nat_decision})
    _h(root, "versionNumber", {"value": str(version)})


def _record_target(root: etree._Element, person: Person, *, with_patient: bool) -> None:
    role = _h(_h(root, "recordTarget"), "patientRole")
    if person.ins is not None:
        _h(role, "id", _ii(person.ins))
    if person.mdph_individual_id is not None:
        _h(role, "id", _ii(person.mdph_individual_id))
    for other in person.other_ids:
        _h(role, "id", _ii(other))
    if person.address is not None:
        _addr(role, person.address)
    _telecoms(role, person.telecoms)
    if person.insurer_name is not None:
        _c(role, "nomOrganismeAM", text=person.insurer_name)
    if person.social_security is not None:
        _c(role, "numSecuriteSocialeOuvrantDroit", _ii(person.social_security))
    if person.file_transfer_date is not None:
        _c(role, "dateTransfertDossier", {"value": _hl7_date(person.file_transfer_date)})
    if person.mdph_responsable is not None:
        _mdph(role, "idMDPHResponsable", person.mdph_responsable)
    if person.mdph_accueil is not None:
        _mdph(role, "idMDPHAccueil", person.mdph_accueil)
    if not with_patient:
        return
    patient = _h(role, "patient")
    name = _h(patient, "name")
    if person.prefix is not None:
        _h(name, "prefix", text=person.prefix)
    if person.birth_name is not None:
        _h(name, "family", {"qualifier": "BR"}, person.birth_name)
    if person.usage_name is not None:
        _h(name, "family", {"qualifier": "CL"}, person.usage_name)
    for given in person.given_names:
        _h(name, "given", text=given)
    if person.first_given_name is not None:
        _h(name, "given", {"qualifier": "BR"}, person.first_given_name)
    if person.used_given_name is not None:
        _h(name, "given", {"qualifier": "CL"}, person.used_given_name)
    if person.gender is not None:
        display = c.KNOWN_CODES[c.CS_GENDER].get(person.gender)
        _h(patient, "administrativeGenderCode", _code_attrs(Code(person.gender, c.CS_GENDER, display)))
    if person.birth_date is not None:
        _h(patient, "birthTime", {"value": _hl7_date(person.birth_date)})
    for guardian in person.guardians:
        element = _h(patient, "guardian")
        _h(element, "code", _code_attrs(guardian.measure))
        if guardian.address is not None:
            _addr(element, guardian.address)
        _telecoms(element, guardian.telecoms)
        if guardian.person is not None:
            _simple_name(_h(element, "guardianPerson"), guardian.person)
        elif guardian.organization_name is not None:
            _h(_h(element, "guardianOrganization"), "name", text=guardian.organization_name)
    if person.birth_place_code is not None or person.birth_place_city is not None:
        addr = _h(_h(_h(patient, "birthplace"), "place"), "addr")
        if person.birth_place_code is not None:
            _h(addr, "county", text=person.birth_place_code)
        if person.birth_place_city is not None:
            _h(addr, "city", text=person.birth_place_city)


def _author_custodian(root: etree._Element, effective_time: datetime, person: Person | None) -> None:
    author = _h(root, "author", {"typeCode": "AUT", "contextControlCode": "OP"})
    _h(author, "time", {"value": _hl7_ts(effective_time)})
    _h(_h(author, "assignedAuthor", {"classCode": "ASSIGNED"}), "id",
       {"root": c.OID_VIATRAJECTOIRE, "extension": "ViaTrajectoire"})
    for parent in person.parents if person is not None else ():
        entity = _h(_h(root, "informant"), "relatedEntity", {"classCode": "PRS"})
        _h(entity, "code", _code_attrs(parent.relationship))
        if parent.address is not None:
            _addr(entity, parent.address)
        _telecoms(entity, parent.telecoms)
        if parent.parental_authority is not None:
            _c(entity, "autoriteParentale", _bool(parent.parental_authority))
        _simple_name(_h(entity, "relatedPerson"), parent.name)
    organization = _h(_h(_h(root, "custodian"), "assignedCustodian"), "representedCustodianOrganization",
                      {"classCode": "ORG", "determinerCode": "INSTANCE"})
    _h(organization, "id", {"root": c.OID_VIATRAJECTOIRE, "extension": "ViaTrajectoire"})


def _related_document(root: etree._Element, replaces: InstanceId | None) -> None:
    if replaces is not None:
        parent = _h(_h(root, "relatedDocument", {"typeCode": "RPLC"}), "parentDocument")
        _h(parent, "id", _ii(replaces))


def _death_section(body: etree._Element, person: Person) -> None:
    death = person.death
    if death is None:
        return
    section = _h(_h(body, "component"), "section")
    _h(section, "templateId", {"root": c.SECTION_DEATH})
    _h(section, "templateId", {"root": c.TEMPLATE_CDA_SECTION})
    observation = _h(_h(section, "entry"), "observation", {"classCode": "OBS", "moodCode": "EVN"})
    _h(observation, "templateId", {"root": c.ENTRY_DEATH})
    _h(observation, "templateId", {"root": c.TEMPLATE_CDA_OBSERVATION})
    _h(_h(observation, "code"), "originalText", text="StatutDeces")
    if death.date_deces is not None:
        _h(observation, "effectiveTime", {"value": _hl7_date(death.date_deces)})
    if death.status is not None:
        _h(observation, "value", {_XSI_TYPE: "CE", **_code_attrs(death.status)})


def _right(parent: etree._Element, right: DroitPrestation) -> None:
    element = _c(parent, "droitPrestation")
    _c(element, "typeDroitOuPrestation", _code_attrs(right.type_droit))
    if right.nature is not None:
        _c(element, "natureDroit", _code_attrs(right.nature))
    if right.date_ouverture is not None:
        _c(element, "dateOuvertureDuDroit", {"value": _hl7_date(right.date_ouverture)})
    if right.date_echeance is not None:
        _c(element, "dateEcheanceDuDroit", {"value": _hl7_date(right.date_echeance)})
    if right.qualification is not None:
        _c(element, "qualification", _code_attrs(right.qualification))
    if right.amendement_creton is not None:
        _c(element, "amendementCreton", _bool(right.amendement_creton))
    if right.existence_pag is not None:
        _c(element, "existencePAG", _bool(right.existence_pag))
    if right.motif_fin_pag is not None:
        _c(element, "motifFinPAG", _code_attrs(right.motif_fin_pag))
    if right.caracterisation is not None:
        car = _c(element, "caracterisation")
        _c(car, "niveau", _code_attrs(right.caracterisation.niveau))
        if right.caracterisation.motif is not None:
            _c(car, "motif", _code_attrs(right.caracterisation.motif))
        if right.caracterisation.date_mise_a_jour is not None:
            _c(car, "dateMiseAJour", {"value": _hl7_date(right.caracterisation.date_mise_a_jour)})
    detail = _c(element, "detailTypeDroitPrestation")
    if right.precision_orientation is not None:
        _c(detail, "precisionOrientation", _code_attrs(right.precision_orientation))
    if right.precision_orientation_locale is not None:
        _c(detail, "precisionOrientationLocale", text=right.precision_orientation_locale)
    if right.temporalite_accueil is not None:
        _c(detail, "temporaliteAccueil", _code_attrs(right.temporalite_accueil))
    if right.accueil_sequentiel is not None:
        _c(detail, "accueilSequentiel", _bool(right.accueil_sequentiel))
    for id_nat in right.id_nat_structs:
        _c(detail, "idNat", {"root": c.OID_ID_NAT_STRUCT, "extension": id_nat})
    for tag, code in (("categorieEtablissement", right.categorie_etablissement),
                      ("categorieOrganisation", right.categorie_organisation),
                      ("specialisationPriseEnCharge", right.specialisation)):
        if code is not None:
            _c(detail, tag, _code_attrs(code))
    for formation in right.formations:
        _c(detail, "formation", text=formation)
    if right.mode_entree_ditep is not None:
        _c(detail, "modeEntreeDITEP", _code_attrs(right.mode_entree_ditep))
    if right.nb_jours_derogation is not None:
        _c(detail, NB_JOURS_DEROGATION_TAG, {"value": str(right.nb_jours_derogation)})
    for prise in right.prises_en_charge:
        pec = _c(detail, "priseEnCharge")
        if prise.mode is not None:
            _c(pec, "modePriseEnCharge", _code_attrs(prise.mode))
        if prise.quantification is not None:
            quant = _c(pec, "quantification")
            _c(quant, "nombre", {"value": f"{prise.quantification.nombre:g}"})
            if prise.quantification.unite is not None:
                _c(quant, "unite", _code_attrs(prise.quantification.unite))
            if prise.quantification.periodicite is not None:
                _c(quant, "periodicite", _code_attrs(prise.quantification.periodicite))
    if len(detail) == 0:
        element.remove(detail)


def _decision_section(body: etree._Element, decision: Decision) -> None:
    section = _h(_h(body, "component"), "section")
    _h(section, "templateId", {"root": c.SECTION_DECISION})
    element = _c(section, "decision")
    _c(element, "identifiantDecision", _ii(InstanceId(decision.id_decision_root, decision.id_decision)))
    if decision.type_decision is not None:
        _c(element, "typeDeDecision", _code_attrs(decision.type_decision))
    if decision.date_decision is not None:
        _c(element, "dateDeDecision", {"value": _hl7_date(decision.date_decision)})
    if decision.date_effet_cloture is not None:
        _c(element, "dateEffetDeLaDecisionDeCloture", {"value": _hl7_date(decision.date_effet_cloture)})
    for related in decision.related_decisions:
        _c(element, "identifiantDesDecisionsReviseesRenouveleesCloturees", _ii(related))
    if decision.id_nat_tiers is not None:
        _c(element, "idNat", {"root": c.OID_ID_NAT_STRUCT, "extension": decision.id_nat_tiers})
    for motivation in decision.motivations:
        _c(element, "motivation", _code_attrs(motivation))
    for text in decision.motivations_locales:
        _c(element, "motivationLocale", text=text)
    if decision.precision_reponse_revision is not None:
        _c(element, "precisionReponseRevisionTiers", _code_attrs(decision.precision_reponse_revision))
    if decision.precision_locale is not None:
        _c(element, "precisionLocale", text=decision.precision_locale)
    for right in decision.rights:
        _right(element, right)


def _evaluation_section(body: etree._Element, evaluation: Evaluation) -> None:
    section = _h(_h(body, "component"), "section")
    _h(section, "templateId", {"root": c.SECTION_EVALUATION})
    _h(section, "templateId", {"root": c.TEMPLATE_CDA_SECTION})
    _h(section, "text", text=_hl7_date(evaluation.date_mise_a_jour) if evaluation.date_mise_a_jour else "")
    for sub_template in c.EVALUATION_SECTIONS:
        observations = [o for o in evaluation.observations if o.section_template == sub_template]
        if not observations:
            continue
        sub = _h(_h(section, "component"), "section")
        _h(sub, "templateId", {"root": sub_template})
        _h(sub, "templateId", {"root": c.TEMPLATE_CDA_SECTION})
        for obs in observations:
            element = _h(_h(sub, "entry"), "observation", {"classCode": "OBS", "moodCode": "EVN"})
            _h(element, "templateId", {"root": obs.entry_template})
            _h(element, "templateId", {"root": c.TEMPLATE_CDA_OBSERVATION})
            _h(_h(element, "code"), "originalText", text=obs.label)
            _h(element, "value", {_XSI_TYPE: "CE", **_code_attrs(obs.value)})


def _default_time(decision: Decision) -> datetime:
    return datetime.combine(decision.date_decision or date(2000, 1, 1), time(0))


def _replaced(id_nat_decision: str, kind: str, version: int, replaces: InstanceId | None) -> InstanceId | None:
    if version < 1:
        raise ValueError("version must be >= 1")
    if replaces is None and version > 1:
        return document_id(id_nat_decision, kind, version - 1)
    return replaces


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_decision_cda(person: Person, decision: Decision, *, version: int = 1, replaces: InstanceId | None = None,
                       effective_time: datetime | None = None, title: str = "Document Individu et décision") -> bytes:
    """Build the "Individu et décision" CDA (template 1.2.250.1.213.1.1.1.4.8).

    Args:
        person: the person (``patient`` is mandatory in this document), parents, guardians, death.
        decision: the decision; ``id_nat_decision`` becomes ``setId/@extension``.
        version: ``versionNumber`` (>= 1); above 1 a ``relatedDocument`` RPLC is added.
        replaces: id of the replaced document; defaults to this builder's id of ``version - 1``.
        effective_time: document creation time (also ``author/time``); defaults to the decision date.
        title: document ``title``.

    Returns:
        The document, UTF-8 with an XML declaration.
    """
    when = effective_time or _default_time(decision)
    root = etree.Element(_H + "ClinicalDocument", nsmap=_NSMAP)  # type: ignore[arg-type]
    _header(root, template=c.TEMPLATE_DECISION, title=title,
            doc_id=document_id(decision.id_nat_decision, "D", version),
            id_nat_decision=decision.id_nat_decision, version=version, effective_time=when)
    _record_target(root, person, with_patient=True)
    _author_custodian(root, when, person)
    _related_document(root, _replaced(decision.id_nat_decision, "D", version, replaces))
    body = _h(_h(root, "component"), "structuredBody")
    _death_section(body, person)
    _decision_section(body, decision)
    return _serialize(root)


def build_evaluation_cda(person: Person, decision: Decision, evaluation: Evaluation, *, version: int = 1,
                         replaces: InstanceId | None = None, effective_time: datetime | None = None,
                         with_patient: bool = False, title: str = "Document évaluation") -> bytes:
    """Build the "Evaluation" CDA (template 1.2.250.1.213.1.1.1.4.9) of a decision's person.

    Like the IG sample, the person is given by ids, address and MDPH only unless ``with_patient``.

    Args:
        person: the person.
        decision: the decision whose ``id_nat_decision`` links the evaluation (``setId/@extension``).
        evaluation: date and coded observations.
        version: ``versionNumber`` (>= 1).
        replaces: id of the replaced document; defaults to this builder's id of ``version - 1``.
        effective_time: document creation time; defaults to the decision date.
        with_patient: also send ``patient`` (names, sex, birth).
        title: document ``title``.

    Returns:
        The document, UTF-8 with an XML declaration.
    """
    when = effective_time or _default_time(decision)
    root = etree.Element(_H + "ClinicalDocument", nsmap=_NSMAP)  # type: ignore[arg-type]
    _header(root, template=c.TEMPLATE_EVALUATION, title=title,
            doc_id=document_id(decision.id_nat_decision, "E", version),
            id_nat_decision=decision.id_nat_decision, version=version, effective_time=when)
    _record_target(root, person, with_patient=with_patient)
    _author_custodian(root, when, None)
    _related_document(root, _replaced(decision.id_nat_decision, "E", version, replaces))
    body = _h(_h(root, "component"), "structuredBody")
    _evaluation_section(body, evaluation)
    return _serialize(root)
