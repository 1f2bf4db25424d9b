"""Hardened parsing of the SDO CDA documents received from ViaTrajectoire (flux 1.4 and 3.2).

The bytes are untrusted. Before lxml sees them they are size-checked, their encoding is checked
(UTF-8 or ISO-8859-1 only, and the bytes must decode with the declared encoding) and any DTD or
entity declaration is refused. lxml then runs with entity resolution, DTD loading and network access
off, and a streaming pass stops the parse as soon as the element depth or count exceeds the limits.

Every refusal raises :class:`vtdui.errors.DocumentError` whose ``reason`` is one of:

============================  ======================================================================
``too-large``                 more bytes than ``Limits.max_bytes`` (raw or base64-decoded)
``base64``                    the attachment is not strict base64 (or is empty)
``encoding``                  encoding other than UTF-8 / ISO-8859-1, or bytes that do not decode
``dtd-forbidden``             a ``<!DOCTYPE`` or ``<!ENTITY`` declaration (XXE, billion laughs)
``xml-syntax``                not well-formed XML
``too-deep`` / ``too-many-elements``  beyond ``Limits.max_depth`` / ``Limits.max_elements``
``not-cda``                   not an HL7 CDA ``ClinicalDocument`` with an SDO templateId
``wrong-template``            a Decision document where an Evaluation was expected, or the reverse
``missing-identifier``        no ``setId/@extension`` (idNat_Decision), no ``recordTarget``, or (decision)
                              no ``identifiantDecision/@extension``
============================  ======================================================================

What is merely unexpected (unknown code, unexpected code system, malformed optional date) does not
fail: the raw value is kept and a warning is added to the record's ``warnings``. Messages and warnings
never contain personal data (names, NIR, dates of birth): only element names and codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from lxml import etree

from vtdui.cda import codes as c
from vtdui.cda.records import (
    Address,
    Caracterisation,
    Code,
    Death,
    Decision,
    DecisionDocument,
    DocumentHeader,
    DroitPrestation,
    Evaluation,
    EvaluationDocument,
    EvaluationObservation,
    Guardian,
    InstanceId,
    Mdph,
    Parent,
    Person,
    PersonName,
    PriseEnCharge,
    Quantification,
    Telecom,
)
from vtdui.errors import DocumentError

__all__ = [
    "Limits",
    "decode_attachment",
    "parse_decision",
    "parse_document",
    "parse_evaluation",
]

_NS = {"h": c.CDA_NS, "c": c.CNSA_NS}
_H = "{" + c.CDA_NS + "}"
_C = "{" + c.CNSA_NS + "}"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to one document.

    Attributes:
        max_bytes: largest accepted document (decoded), default 10 MiB.
        max_depth: deepest accepted element nesting (the IG documents need about 12).
        max_elements: most elements accepted in one document.
    """

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 100_000


# --------------------------------------------------------------------------------------------------
# Transport-level checks


def decode_attachment(data_b64: str | bytes, *, max_bytes: int = Limits.max_bytes) -> bytes:
    """Decode the base64 ``content.attachment.data`` of a DocumentReference, strictly.

    ASCII whitespace (line breaks) is ignored; any other character outside the base64 alphabet, or
    wrong padding, is refused. The size is checked before decoding.

    Args:
        data_b64: the base64 text.
        max_bytes: largest accepted decoded size.

    Raises:
        DocumentError: reason ``base64`` (not base64, or empty) or ``too-large``.
    """
    if isinstance(data_b64, str):
        try:
            raw = data_b64.encode("ascii")
        except UnicodeEncodeError:
            raise DocumentError("attachment data is not base64: non-ASCII characters", reason="base64") from None
    elif isinstance(data_b64, bytes | bytearray | memoryview):
        raw = bytes(data_b64)
    else:
        raise DocumentError(f"attachment data must be text, not {type(data_b64).__name__}", reason="base64")
    compact = re.sub(rb"[ \t\r\n]+", b"", raw)
    if not compact:
        raise DocumentError("attachment data is empty", reason="base64")
    if len(compact) // 4 * 3 > max_bytes + 3:
        raise DocumentError(f"attachment exceeds {max_bytes} bytes", reason="too-large")
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentError("attachment data is not valid base64", reason="base64") from None
    if len(decoded) > max_bytes:
        raise DocumentError(f"attachment exceeds {max_bytes} bytes", reason="too-large")
    return decoded


_DECL_RE = re.compile(
    rb"""^<\?xml\s+version\s*=\s*["'][^"']*["']"""
    rb"""(?:\s+encoding\s*=\s*["'](?P<enc>[A-Za-z][A-Za-z0-9._-]*)["'])?""",
)
_ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8",
    "iso-8859-1": "latin-1", "iso8859-1": "latin-1", "iso_8859-1": "latin-1", "latin-1": "latin-1",
    "latin1": "latin-1", "l1": "latin-1",
}
_DTD_RE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def _check_encoding(xml: bytes) -> None:
    if xml.startswith((b"\xff\xfe", b"\xfe\xff")) or xml[:4] in (b"\x00<\x00?", b"<\x00?\x00"):
        raise DocumentError("document is UTF-16/32 encoded; only UTF-8 or ISO-8859-1 is accepted",
                            reason="encoding")
    body = xml[3:] if xml.startswith(b"\xef\xbb\xbf") else xml
    match = _DECL_RE.match(body)
    declared = (match.group("enc") or b"utf-8").decode("ascii").lower() if match else "utf-8"
    codec = _ENCODINGS.get(declared)
    if codec is None:
        raise DocumentError(f"declared encoding {declared!r} is not accepted (UTF-8 or ISO-8859-1 only)",
                            reason="encoding")
    if xml.startswith(b"\xef\xbb\xbf") and codec != "utf-8":
        raise DocumentError("UTF-8 byte order mark with a non-UTF-8 declaration", reason="encoding")
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"bytes do not decode as declared encoding {declared!r} (offset {exc.start})",
                            reason="encoding") from None
    # Refuse DTDs before lxml reads them: no external entity (XXE), no entity expansion (billion laughs).
    if _DTD_RE.search(text):
        raise DocumentError("DOCTYPE or ENTITY declarations are not allowed in a CDA document",
                            reason="dtd-forbidden")


def _parser() -> etree.XMLPullParser:
    return etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        dtd_validation=False,
        load_dtd=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
    )


def _load(xml: bytes, limits: Limits) -> etree._Element:
    """Check and parse ``xml``; return the root element."""
    if not isinstance(xml, bytes | bytearray | memoryview):
        raise DocumentError(f"document must be bytes, not {type(xml).__name__}", reason="xml-syntax")
    xml = bytes(xml)
    if len(xml) > limits.max_bytes:
        raise DocumentError(f"document exceeds {limits.max_bytes} bytes", reason="too-large")
    if not xml.strip():
        raise DocumentError("document is empty", reason="xml-syntax")
    _check_encoding(xml)
    parser = _parser()
    depth = 0
    count = 0
    try:
        for offset in range(0, len(xml), _CHUNK):
            parser.feed(xml[offset:offset + _CHUNK])
            for event, _ in parser.read_events():
                if event == "start":
                    depth += 1
                    count += 1
                    if depth > limits.max_depth:
                        raise DocumentError(f"element nesting deeper than {limits.max_depth}", reason="too-deep")
                    if count > limits.max_elements:
                        raise DocumentError(f"more than {limits.max_elements} elements",
                                            reason="too-many-elements")
                else:
                    depth -= 1
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        message = str(exc)
        if "depth" in message.lower():
            raise DocumentError(f"element nesting too deep: {message}", reason="too-deep") from None
        raise DocumentError(f"not well-formed XML: {message}", reason="xml-syntax") from None
    docinfo = root.getroottree().docinfo
    # Defence in depth: the scan above already refuses any DOCTYPE.
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.system_url:
        raise DocumentError("DOCTYPE declarations are not allowed", reason="dtd-forbidden")
    if root.tag != _H + "ClinicalDocument":
        raise DocumentError("root element is not an HL7 CDA ClinicalDocument (urn:hl7-org:v3)", reason="not-cda")
    return root


# --------------------------------------------------------------------------------------------------
# Value helpers (tolerant: collect warnings instead of failing)


class _Reader:
    """Holds the warnings of one document while values are read."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @staticmethod
    def text(element: etree._Element | None) -> str | None:
        if element is None or element.text is None:
            return None
        value = element.text.strip()
        return value or None

    @staticmethod
    def attr(element: etree._Element | None, name: str) -> str | None:
        if element is None:
            return None
        value = element.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def ii(self, element: etree._Element | None) -> InstanceId | None:
        if element is None:
            return None
        root = self.attr(element, "root")
        extension = self.attr(element, "extension")
        if root is None and extension is None:
            return None
        return InstanceId(root, extension)

    def code(self, element: etree._Element | None, where: str) -> Code | None:
        if element is None:
            return None
        value = self.attr(element, "code")
        if value is None:
            if element.get("nullFlavor") is None:
                self.warn(f"{where}: coded element without @code")
            return None
        system = self.attr(element, "codeSystem")
        display = element.get("displayName")
        local = etree.QName(element).localname
        expected = c.CODE_SYSTEM_OF.get(local)
        if expected is not None and system != expected:
            self.warn(f"{where}: code system {system!r} instead of {expected}")
        known = c.KNOWN_CODES.get(system or "")
        if known is not None and value not in known:
            self.warn(f"{where}: unknown code {value!r} in {system}")
        return Code(value, system, display)

    def date(self, value: str | None, where: str) -> date | None:
        if value is None:
            return None
        parsed = _parse_ts(value)
        if parsed is None:
            self.warn(f"{where}: invalid HL7 date")
            return None
        return parsed.date()

    def ts(self, value: str | None, where: str) -> datetime | None:
        if value is None:
            return None
        parsed = _parse_ts(value)
        if parsed is None:
            self.warn(f"{where}: invalid HL7 timestamp")
        return parsed

    def boolean(self, element: etree._Element | None, where: str) -> bool | None:
        value = self.attr(element, "value")
        if value is None:
            return None
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        self.warn(f"{where}: invalid boolean {value!r}")
        return None

    def integer(self, element: etree._Element | None, where: str) -> int | None:
        value = self.attr(element, "value")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.warn(f"{where}: invalid integer")
            return None

    def address(self, element: etree._Element | None) -> Address | None:
        if element is None:
            return None
        return Address(
            use=self.attr(element, "use"),
            street=self.text(element.find("h:streetAddressLine", _NS)),
            postal_code=self.text(element.find("h:postalCode", _NS)),
            city=self.text(element.find("h:city", _NS)),
            additional_locator=self.text(element.find("h:additionalLocator", _NS)),
        )

    def telecoms(self, parent: etree._Element) -> tuple[Telecom, ...]:
        result = []
        for element in parent.findall("h:telecom", _NS):
            value = self.attr(element, "value")
            if value is not None:
                result.append(Telecom(value, self.attr(element, "use")))
        return tuple(result)

    def simple_name(self, element: etree._Element | None, where: str) -> PersonName | None:
        if element is None:
            return None
        family = self.text(element.find("h:family", _NS))
        if family is None:
            self.warn(f"{where}: name without family")
            family = ""
        return PersonName(family=family, given=self.text(element.find("h:given", _NS)),
                          prefix=self.text(element.find("h:prefix", _NS)))

    def mdph(self, element: etree._Element | None, where: str) -> Mdph | None:
        if element is None:
            return None
        root = self.attr(element, "root")
        label = self.attr(element, "extension")
        if root is None or label is None:
            self.warn(f"{where}: MDPH without @root or @extension")
            return None
        if not root.startswith(c.MDPH_ARC):
            self.warn(f"{where}: root is not an MDPH OID")
        return Mdph(oid=root, label=label)


_TS_RE = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,6})?([+-]\d{4})?$"
)


def _parse_ts(value: str) -> datetime | None:
    """Parse an HL7 TS (``yyyy[mm[dd[hh[mm[ss[.f]]]]]][+zzzz]``); ``None`` if invalid."""
    match = _TS_RE.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    tz = None
    if offset is not None:
        sign = -1 if offset[0] == "-" else 1
        minutes = int(offset[1:3]) * 60 + int(offset[3:5])
        if minutes >= 24 * 60:
            return None
        tz = timezone(sign * timedelta(minutes=minutes))
    try:
        return datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                        int(second or 0), tzinfo=tz)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Header and person


def _template(root: etree._Element) -> str:
    templates = [t.get("root") for t in root.findall("h:templateId", _NS)]
    for template in templates:
        if template in (c.TEMPLATE_DECISION, c.TEMPLATE_EVALUATION):
            return template
    raise DocumentError("ClinicalDocument has no SDO templateId (1.2.250.1.213.1.1.1.4.8 or .4.9)",
                        reason="not-cda")


def _header(root: etree._Element, template: str, r: _Reader) -> DocumentHeader:
    templates = [t.get("root") for t in root.findall("h:templateId", _NS)]
    if c.TEMPLATE_CDA_DOCUMENT not in templates:
        r.warn(f"templateId: {c.TEMPLATE_CDA_DOCUMENT} missing")
    set_id = r.ii(root.find("h:setId", _NS))
    if set_id is None or set_id.extension is None:
        raise DocumentError("setId/@extension (idNat_Decision) is missing", reason="missing-identifier")
    doc_id = r.ii(root.find("h:id", _NS))
    if doc_id is None:
        r.warn("id: document id missing")
        doc_id = InstanceId(None)
    version = 1
    version_el = root.find("h:versionNumber", _NS)
    if version_el is not None:
        parsed = r.integer(version_el, "versionNumber")
        if parsed is not None and parsed >= 1:
            version = parsed
        else:
            r.warn("versionNumber: not a positive integer, 1 assumed")
    replaces = None
    for related in root.findall("h:relatedDocument", _NS):
        if related.get("typeCode") == "RPLC":
            replaces = r.ii(related.find("h:parentDocument/h:id", _NS))
    return DocumentHeader(
        template_id=template,
        document_id=doc_id,
        set_id=set_id,
        version_number=version,
        effective_time=r.ts(r.attr(root.find("h:effectiveTime", _NS), "value"), "effectiveTime"),
        title=r.text(root.find("h:title", _NS)),
        confidentiality=r.attr(root.find("h:confidentialityCode", _NS), "code"),
        language=r.attr(root.find("h:languageCode", _NS), "code"),
        replaces=replaces,
        author_id=r.ii(root.find("h:author/h:assignedAuthor/h:id", _NS)),
        author_time=r.ts(r.attr(root.find("h:author/h:time", _NS), "value"), "author/time"),
        custodian_id=r.ii(root.find(
            "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id", _NS)),
    )


def _guardian(element: etree._Element, r: _Reader) -> Guardian | None:
    measure = r.code(element.find("h:code", _NS), "guardian/code")
    if measure is None:
        r.warn("guardian: no measure code, guardian ignored")
        return None
    org_name = r.text(element.find("h:guardianOrganization/h:name", _NS))
    return Guardian(
        measure=measure,
        address=r.address(element.find("h:addr", _NS)),
        telecoms=r.telecoms(element),
        person=r.simple_name(element.find("h:guardianPerson/h:name", _NS), "guardianPerson"),
        organization_name=org_name,
    )


def _parents(root: etree._Element, r: _Reader) -> tuple[Parent, ...]:
    parents = []
    for entity in root.findall("h:informant/h:relatedEntity", _NS):
        relationship = r.code(entity.find("h:code", _NS), "informant/code")
        name = r.simple_name(entity.find("h:relatedPerson/h:name", _NS), "informant")
        if relationship is None or name is None:
            r.warn("informant: without code or name, ignored")
            continue
        parents.append(Parent(
            relationship=relationship,
            name=name,
            address=r.address(entity.find("h:addr", _NS)),
            telecoms=r.telecoms(entity),
            parental_authority=r.boolean(entity.find("c:autoriteParentale", _NS), "autoriteParentale"),
        ))
    return tuple(parents)


def _death(root: etree._Element, r: _Reader) -> Death | None:
    for section in root.iterfind("h:component/h:structuredBody/h:component/h:section", _NS):
        if not _has_template(section, c.SECTION_DEATH):
            continue
        observation = section.find("h:entry/h:observation", _NS)
        if observation is None:
            r.warn("death section without observation")
            return None
        return Death(
            status=r.code(observation.find("h:value", _NS), "StatutDeces"),
            date_deces=r.date(r.attr(observation.find("h:effectiveTime", _NS), "value"), "death date"),
        )
    return None


def _person(root: etree._Element, r: _Reader, *, patient_required: bool) -> Person:
    role = root.find("h:recordTarget/h:patientRole", _NS)
    if role is None:
        raise DocumentError("recordTarget/patientRole is missing", reason="missing-identifier")
    ins = None
    mdph_id = None
    others: list[InstanceId] = []
    for element in role.findall("h:id", _NS):
        ident = r.ii(element)
        if ident is None:
            continue
        if ident.root in (c.OID_INS_NIR, c.OID_INS_NIA) and ins is None:
            ins = ident
        elif ident.root is not None and ident.root.startswith(c.MDPH_ARC) and mdph_id is None:
            mdph_id = ident
        else:
            others.append(ident)
    if mdph_id is None:
        r.warn("patientRole/id: no MDPH individual id")
    social = role.find("c:numSecuriteSocialeOuvrantDroit", _NS)
    social_id = r.ii(social)
    if social_id is None and r.text(social) is not None:
        r.warn("numSecuriteSocialeOuvrantDroit: legacy text form")
        social_id = InstanceId(None, r.text(social))
    mdph_responsable = r.mdph(role.find("c:idMDPHResponsable", _NS), "idMDPHResponsable")
    if mdph_responsable is None:
        r.warn("idMDPHResponsable: missing")
    person = Person(
        mdph_individual_id=mdph_id,
        ins=ins,
        other_ids=tuple(others),
        address=r.address(role.find("h:addr", _NS)),
        telecoms=r.telecoms(role),
        insurer_name=r.text(role.find("c:nomOrganismeAM", _NS)),
        social_security=social_id,
        file_transfer_date=r.date(r.attr(role.find("c:dateTransfertDossier", _NS), "value"),
                                  "dateTransfertDossier"),
        mdph_responsable=mdph_responsable,
        mdph_accueil=r.mdph(role.find("c:idMDPHAccueil", _NS), "idMDPHAccueil"),
        parents=_parents(root, r),
        death=_death(root, r),
    )
    patient = role.find("h:patient", _NS)
    if patient is None:
        if patient_required:
            r.warn("patientRole/patient: missing in a Decision document")
        return person
    name = patient.find("h:name", _NS)
    families: dict[str | None, str] = {}
    givens: list[str] = []
    first_given = used_given = None
    if name is None:
        r.warn("patient/name: missing")
    else:
        for family in name.findall("h:family", _NS):
            value = r.text(family)
            if value is not None:
                families.setdefault(family.get("qualifier"), value)
        for given in name.findall("h:given", _NS):
            value = r.text(given)
            qualifier = given.get("qualifier")
            if value is None:
                continue
            if qualifier is None:
                givens.append(value)
            elif qualifier == "BR" and first_given is None:
                first_given = value
            elif qualifier == "CL" and used_given is None:
                used_given = value
    birth_name = families.get("BR") or families.get(None)
    gender = r.code(patient.find("h:administrativeGenderCode", _NS), "administrativeGenderCode")
    guardians = tuple(g for g in (_guardian(e, r) for e in patient.findall("h:guardian", _NS)) if g is not None)
    birth_addr = patient.find("h:birthplace/h:place/h:addr", _NS)
    return Person(
        mdph_individual_id=person.mdph_individual_id,
        ins=person.ins,
        other_ids=person.other_ids,
        birth_name=birth_name,
        usage_name=families.get("CL"),
        given_names=tuple(givens),
        first_given_name=first_given,
        used_given_name=used_given,
        prefix=r.text(name.find("h:prefix", _NS)) if name is not None else None,
        gender=gender.code if gender is not None else None,
        birth_date=r.date(r.attr(patient.find("h:birthTime", _NS), "value"), "birthTime"),
        birth_place_code=r.text(birth_addr.find("h:county", _NS)) if birth_addr is not None else None,
        birth_place_city=r.text(birth_addr.find("h:city", _NS)) if birth_addr is not None else None,
        address=person.address,
        telecoms=person.telecoms,
        insurer_name=person.insurer_name,
        social_security=person.social_security,
        file_transfer_date=person.file_transfer_date,
        mdph_responsable=person.mdph_responsable,
        mdph_accueil=person.mdph_accueil,
        guardians=guardians,
        parents=person.parents,
        death=person.death,
    )


def _has_template(element: etree._Element, template: str) -> bool:
    return any(t.get("root") == template for t in element.findall("h:templateId", _NS))


# --------------------------------------------------------------------------------------------------
# Decision body


def _right(element: etree._Element, r: _Reader) -> DroitPrestation | None:
    type_droit = r.code(element.find("c:typeDroitOuPrestation", _NS), "typeDroitOuPrestation")
    if type_droit is None:
        r.warn("droitPrestation: without typeDroitOuPrestation, ignored")
        return None
    caracterisation = None
    car = element.find("c:caracterisation", _NS)
    if car is not None:
        niveau = r.code(car.find("c:niveau", _NS), "caracterisation/niveau")
        if niveau is None:
            r.warn("caracterisation: without niveau, ignored")
        else:
            caracterisation = Caracterisation(
                niveau=niveau,
                motif=r.code(car.find("c:motif", _NS), "caracterisation/motif"),
                date_mise_a_jour=r.date(r.attr(car.find("c:dateMiseAJour", _NS), "value"), "dateMiseAJour"),
            )
    detail = element.find("c:detailTypeDroitPrestation", _NS)
    d = detail if detail is not None else etree.Element(_C + "detailTypeDroitPrestation")
    prises = []
    for pec in d.findall("c:priseEnCharge", _NS):
        quantification = None
        quant = pec.find("c:quantification", _NS)
        if quant is not None:
            raw = r.attr(quant.find("c:nombre", _NS), "value")
            try:
                nombre = float(raw) if raw is not None else None
            except ValueError:
                nombre = None
            if nombre is None:
                r.warn("quantification: invalid or missing nombre, ignored")
            else:
                quantification = Quantification(
                    nombre=nombre,
                    unite=r.code(quant.find("c:unite", _NS), "quantification/unite"),
                    periodicite=r.code(quant.find("c:periodicite", _NS), "quantification/periodicite"),
                )
        prises.append(PriseEnCharge(mode=r.code(pec.find("c:modePriseEnCharge", _NS), "modePriseEnCharge"),
                                    quantification=quantification))
    id_nats = []
    for id_nat in d.findall("c:idNat", _NS):
        value = r.attr(id_nat, "extension")
        if value is None:
            r.warn("detailTypeDroitPrestation/idNat: without @extension")
            continue
        if id_nat.get("root") != c.OID_ID_NAT_STRUCT:
            r.warn(f"idNat: root is not {c.OID_ID_NAT_STRUCT}")
        id_nats.append(value)
    nb_jours_el = d.find("c:nbJoursDerogationAccueilTemporaire", _NS)
    if nb_jours_el is None:
        nb_jours_el = d.find("c:nbJourDerogationAccueilTemporaire", _NS)
    right = DroitPrestation(
        type_droit=type_droit,
        nature=r.code(element.find("c:natureDroit", _NS), "natureDroit"),
        date_ouverture=r.date(r.attr(element.find("c:dateOuvertureDuDroit", _NS), "value"), "dateOuvertureDuDroit"),
        date_echeance=r.date(r.attr(element.find("c:dateEcheanceDuDroit", _NS), "value"), "dateEcheanceDuDroit"),
        qualification=r.code(element.find("c:qualification", _NS), "qualification"),
        amendement_creton=r.boolean(element.find("c:amendementCreton", _NS), "amendementCreton"),
        existence_pag=r.boolean(element.find("c:existencePAG", _NS), "existencePAG"),
        motif_fin_pag=r.code(element.find("c:motifFinPAG", _NS), "motifFinPAG"),
        caracterisation=caracterisation,
        precision_orientation=r.code(d.find("c:precisionOrientation", _NS), "precisionOrientation"),
        precision_orientation_locale=r.text(d.find("c:precisionOrientationLocale", _NS)),
        temporalite_accueil=r.code(d.find("c:temporaliteAccueil", _NS), "temporaliteAccueil"),
        accueil_sequentiel=r.boolean(d.find("c:accueilSequentiel", _NS), "accueilSequentiel"),
        id_nat_structs=tuple(id_nats),
        categorie_etablissement=r.code(d.find("c:categorieEtablissement", _NS), "categorieEtablissement"),
        categorie_organisation=r.code(d.find("c:categorieOrganisation", _NS), "categorieOrganisation"),
        specialisation=r.code(d.find("c:specialisationPriseEnCharge", _NS), "specialisationPriseEnCharge"),
        formations=tuple(t for t in (r.text(f) for f in d.findall("c:formation", _NS)) if t is not None),
        mode_entree_ditep=r.code(d.find("c:modeEntreeDITEP", _NS), "modeEntreeDITEP"),
        nb_jours_derogation=r.integer(nb_jours_el, "nbJoursDerogationAccueilTemporaire"),
        prises_en_charge=tuple(prises),
    )
    if right.date_ouverture is None or right.date_echeance is None:
        r.warn("droitPrestation: opening or expiry date missing")
    return right


def _decision(root: etree._Element, header: DocumentHeader, r: _Reader) -> Decision:
    element = None
    for section in root.iterfind("h:component/h:structuredBody/h:component/h:section", _NS):
        if _has_template(section, c.SECTION_DECISION):
            element = section.find("c:decision", _NS)
            break
    if element is None:
        raise DocumentError("decision section (1.2.250.1.213.1.1.2.235) with cnsaSDO:decision is missing",
                            reason="missing-identifier")
    ident = r.ii(element.find("c:identifiantDecision", _NS))
    if ident is None or ident.extension is None:
        raise DocumentError("cnsaSDO:identifiantDecision/@extension (idDecision) is missing",
                            reason="missing-identifier")
    if ident.root is None or not ident.root.startswith(c.MDPH_ARC):
        r.warn("identifiantDecision: root is not an MDPH OID")
    motivations = tuple(m for m in (r.code(e, "motivation") for e in element.findall("c:motivation", _NS))
                        if m is not None)
    if not motivations:
        r.warn("decision: no motivation")
    decision = Decision(
        id_nat_decision=header.id_nat_decision,
        id_decision=ident.extension,
        id_decision_root=ident.root,
        type_decision=r.code(element.find("c:typeDeDecision", _NS), "typeDeDecision"),
        date_decision=r.date(r.attr(element.find("c:dateDeDecision", _NS), "value"), "dateDeDecision"),
        date_effet_cloture=r.date(r.attr(element.find("c:dateEffetDeLaDecisionDeCloture", _NS), "value"),
                                  "dateEffetDeLaDecisionDeCloture"),
        related_decisions=tuple(i for i in (r.ii(e) for e in element.findall(
            "c:identifiantDesDecisionsReviseesRenouveleesCloturees", _NS)) if i is not None),
        id_nat_tiers=r.attr(element.find("c:idNat", _NS), "extension"),
        motivations=motivations,
        motivations_locales=tuple(t for t in (r.text(e) for e in element.findall("c:motivationLocale", _NS))
                                  if t is not None),
        precision_reponse_revision=r.code(element.find("c:precisionReponseRevisionTiers", _NS),
                                          "precisionReponseRevisionTiers"),
        precision_locale=r.text(element.find("c:precisionLocale", _NS)),
        rights=tuple(d for d in (_right(e, r) for e in element.findall("c:droitPrestation", _NS))
                     if d is not None),
        version_number=header.version_number,
    )
    if decision.type_decision is None:
        r.warn("decision: typeDeDecision missing")
    if decision.date_decision is None:
        r.warn("decision: dateDeDecision missing")
    return decision


# --------------------------------------------------------------------------------------------------
# Evaluation body


def _evaluation(root: etree._Element, r: _Reader) -> Evaluation:
    section = None
    for candidate in root.iterfind("h:component/h:structuredBody/h:component/h:section", _NS):
        if _has_template(candidate, c.SECTION_EVALUATION):
            section = candidate
            break
    if section is None:
        r.warn("evaluation section (1.2.250.1.213.1.1.2.229) missing")
        return Evaluation(date_mise_a_jour=None)
    when = r.date(r.text(section.find("h:text", _NS)), "evaluation date (section text)")
    observations = []
    for sub in section.findall("h:component/h:section", _NS):
        sub_templates = [t.get("root") or "" for t in sub.findall("h:templateId", _NS)]
        sub_template = next((t for t in sub_templates if t in c.EVALUATION_SECTIONS), None)
        if sub_template is None:
            r.warn("evaluation: unknown sub-section template")
            sub_template = sub_templates[0] if sub_templates else ""
        for observation in sub.findall("h:entry/h:observation", _NS):
            templates = [t.get("root") or "" for t in observation.findall("h:templateId", _NS)]
            entry_template = next((t for t in templates if t in c.EVALUATION_ENTRIES), None)
            entry = c.EVALUATION_ENTRIES.get(entry_template or "")
            if entry is None:
                r.warn("evaluation: unknown entry template")
                entry_template = next((t for t in templates if t != c.TEMPLATE_CDA_OBSERVATION), "")
            value_el = observation.find("h:value", _NS)
            value = r.attr(value_el, "code")
            if value is None:
                r.warn("evaluation: observation without value code, ignored")
                continue
            system = r.attr(value_el, "codeSystem")
            if entry is not None and system != entry.code_system:
                r.warn(f"{entry.label}: code system {system!r} instead of {entry.code_system}")
            label = r.text(observation.find("h:code/h:originalText", _NS))
            observations.append(EvaluationObservation(
                section_template=sub_template,
                entry_template=entry_template or "",
                label=label or (entry.label if entry is not None else ""),
                value=Code(value, system, value_el.get("displayName") if value_el is not None else None),
                nomenclature=entry.nomenclature if entry is not None else None,
            ))
    return Evaluation(date_mise_a_jour=when, observations=tuple(observations))


# --------------------------------------------------------------------------------------------------
# Public entry points


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _decision_document(root: etree._Element, raw: bytes) -> DecisionDocument:
    r = _Reader()
    header = _header(root, c.TEMPLATE_DECISION, r)
    decision = _decision(root, header, r)
    person = _person(root, r, patient_required=True)
    return DecisionDocument(header=header, person=person, decision=decision, digest=_digest(raw),
                            warnings=tuple(r.warnings), raw=raw)


def _evaluation_document(root: etree._Element, raw: bytes) -> EvaluationDocument:
    r = _Reader()
    header = _header(root, c.TEMPLATE_EVALUATION, r)
    person = _person(root, r, patient_required=False)
    evaluation = _evaluation(root, r)
    return EvaluationDocument(header=header, person=person, id_nat_decision=header.id_nat_decision,
                              evaluation=evaluation, digest=_digest(raw), warnings=tuple(r.warnings), raw=raw)


def parse_decision(xml: bytes, *, limits: Limits = Limits()) -> DecisionDocument:
    """Parse an "Individu et décision" document (template 1.2.250.1.213.1.1.1.4.8).

    Args:
        xml: the raw document bytes (already base64-decoded, see :func:`decode_attachment`).
        limits: resource limits.

    Raises:
        DocumentError: the document is hostile, malformed, not this template or lacks its identifiers.
    """
    raw = bytes(xml)
    root = _load(raw, limits)
    if _template(root) != c.TEMPLATE_DECISION:
        raise DocumentError("expected a Decision document (1.2.250.1.213.1.1.1.4.8), got an Evaluation",
                            reason="wrong-template")
    return _decision_document(root, raw)


def parse_evaluation(xml: bytes, *, limits: Limits = Limits()) -> EvaluationDocument:
    """Parse an "Evaluation" document (template 1.2.250.1.213.1.1.1.4.9).

    Args:
        xml: the raw document bytes.
        limits: resource limits.

    Raises:
        DocumentError: the document is hostile, malformed, not this template or lacks its identifiers.
    """
    raw = bytes(xml)
    root = _load(raw, limits)
    if _template(root) != c.TEMPLATE_EVALUATION:
        raise DocumentError("expected an Evaluation document (1.2.250.1.213.1.1.1.4.9), got a Decision",
                            reason="wrong-template")
    return _evaluation_document(root, raw)


def parse_document(xml: bytes, *, limits: Limits = Limits()) -> DecisionDocument | EvaluationDocument:
    """Parse either SDO document, chosen by its templateId.

    Raises:
        DocumentError: see the module documentation for the reasons.
    """
    raw = bytes(xml)
    root = _load(raw, limits)
    if _template(root) == c.TEMPLATE_DECISION:
        return _decision_document(root, raw)
    return _evaluation_document(root, raw)
