"""Hardened parsing of the SDO CDA documents received from ViaTrajectoire (flux 1.4 and 3.2).

The bytes are untrusted. Before lxml sees them they are size-checked, their encoding is checked
(UTF-8 or ISO-8859-1 only, and the bytes must decode with the declared encoding) and any DTD or
entity declaration is refused. lxml then runs with entity resolution, DTD loading and network access
off. The element depth and count limits hold for every document: one count of its ``<`` bounds both; when
the bound exceeds the element limit a streaming parse stops as soon as the count (or depth) passes it, and
when it exceeds the depth limit an XPath probe measures the depth of the parsed tree (see :func:`_load`).
The extraction reads each element's children once, by tag (see "Tree access"): lxml's ``find`` re-reads
its path on every call and cost more than the parse itself.

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
import functools
import hashlib
import re
import threading
from collections.abc import Iterable
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

_H = "{" + c.CDA_NS + "}"
_C = "{" + c.CNSA_NS + "}"
# The extraction writes its tags as literals ("{urn:hl7-org:v3}id"): constants cost nothing on the hot path,
# a concatenation per lookup did. They must be the namespaces of vtdui.cda.codes.
if (_H, _C) != ("{urn:hl7-org:v3}", "{urn:cnsaSDO}"):  # pragma: no cover - a guard against a silent mismatch
    raise ImportError("vtdui.cda.parse: the literal CDA tags no longer match vtdui.cda.codes")
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
    compact = raw.translate(None, b" \t\r\n")  # drops the ASCII whitespace, in C (a regex took 10x longer)
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
    # Every declaration starts with "<!"; most documents have none, and then the regular expression is skipped.
    if "<!" in text and _DTD_RE.search(text):
        raise DocumentError("DOCTYPE or ENTITY declarations are not allowed in a CDA document",
                            reason="dtd-forbidden")


_THREAD = threading.local()
_CODE_SYSTEM_OF = c.CODE_SYSTEM_OF
_KNOWN_CODES = c.KNOWN_CODES


def _tree_parser() -> etree.XMLParser:
    """This thread's hardened tree parser, built once.

    An lxml parser must not be used by two threads at once, and building one per document cost more than
    parsing a decision. Whitespace-only text between elements is dropped: the extraction strips every text it
    reads, and the tree has half the nodes.
    """
    parser: etree.XMLParser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        # Same hardening as _load_streaming: no entity substitution, no DTD loaded or validated, no network,
        # libxml2's own size and depth guards kept (huge_tree off).
        parser = etree.XMLParser(resolve_entities=False, no_network=True, dtd_validation=False, load_dtd=False,
                                 huge_tree=False, remove_pis=True, remove_comments=True, remove_blank_text=True,
                                 collect_ids=False)
        _THREAD.parser = parser
    return parser


@functools.lru_cache(maxsize=8)
def _depth_probe(max_depth: int) -> etree.XPath:
    """An XPath that is true when some element lies deeper than ``max_depth`` (the root is at depth 1)."""
    return etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")


def _syntax_error(exc: etree.XMLSyntaxError) -> DocumentError:
    message = str(exc)
    if "depth" in message.lower():
        return DocumentError(f"element nesting too deep: {message}", reason="too-deep")
    return DocumentError(f"not well-formed XML: {message}", reason="xml-syntax")


def _load_streaming(xml: bytes, limits: Limits) -> etree._Element:
    """Parse ``xml`` while counting elements and depth, stopping as soon as a limit is passed.

    Used when the cheap bounds of :func:`_load` cannot rule out too many elements: the parse then never builds
    more than ``max_elements`` (plus one chunk) of a hostile document's tree.
    """
    parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True,
                                 dtd_validation=False, load_dtd=False, huge_tree=False, remove_pis=True,
                                 remove_comments=True, remove_blank_text=True, collect_ids=False)
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
        root: etree._Element = parser.close()
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from None
    return root


def _load(xml: bytes, limits: Limits) -> etree._Element:
    """Check and parse ``xml``; return the root element.

    The element and depth limits are enforced without a Python-level pass over the document where one count
    of its ``<`` proves them: every element starts with its own ``<``, and an element at depth ``d`` lies
    inside ``d - 1`` elements that each have a start and an end tag, so ``d <= (count + 1) // 2`` (markup in
    comments or CDATA only raises the count). Only when a bound exceeds its limit is the document checked
    exactly: elements by a streaming parse that stops at the limit (the tree of a hostile document is never
    built), depth by an XPath probe on the tree (libxml2 itself refuses nesting beyond 256 levels).
    """
    if not isinstance(xml, bytes | bytearray | memoryview):
        raise DocumentError(f"document must be bytes, not {type(xml).__name__}", reason="xml-syntax")
    xml = bytes(xml)
    if len(xml) > limits.max_bytes:
        raise DocumentError(f"document exceeds {limits.max_bytes} bytes", reason="too-large")
    if not xml or xml.isspace():  # as `not xml.strip()`, without copying the document
        raise DocumentError("document is empty", reason="xml-syntax")
    _check_encoding(xml)
    angles = xml.count(b"<")
    if angles > limits.max_elements:
        root = _load_streaming(xml, limits)
    else:
        try:
            root = etree.fromstring(xml, _tree_parser())
        except etree.XMLSyntaxError as exc:
            raise _syntax_error(exc) from None
        if (angles + 1) // 2 > limits.max_depth and _depth_probe(limits.max_depth)(root):
            raise DocumentError(f"element nesting deeper than {limits.max_depth}", reason="too-deep")
    docinfo = root.getroottree().docinfo
    # Defence in depth: the scan above already refuses any DOCTYPE.
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.system_url:
        raise DocumentError("DOCTYPE declarations are not allowed", reason="dtd-forbidden")
    if root.tag != _H + "ClinicalDocument":
        raise DocumentError("root element is not an HL7 CDA ClinicalDocument (urn:hl7-org:v3)", reason="not-cda")
    return root


# --------------------------------------------------------------------------------------------------
# Tree access
#
# lxml's find("h:x", namespaces) re-reads its path on every call (about 2.5 µs, longer than parsing a
# tenth of a decision); the extraction instead reads each element's children once into an index by tag.

_Index = dict[str, list[etree._Element]]
_NO_ELEMENTS: tuple[etree._Element, ...] = ()
#: ``index.get(tag, _NONE)[0]``: the first child named ``tag``, or ``None`` (inline, as it runs ~60 times a document)
_NONE: tuple[None] = (None,)


def _index(element: etree._Element | None) -> _Index:
    """The children of ``element`` by tag (Clark notation), each list in document order."""
    index: _Index = {}
    if element is None:
        return index
    for child in element:
        tag = child.tag
        found = index.get(tag)
        if found is None:
            index[tag] = [child]
        else:
            found.append(child)
    return index


def _text(element: etree._Element | None) -> str | None:
    """The stripped text of ``element``; ``None`` when absent or blank."""
    if element is None:
        return None
    value = element.text
    if value is None:
        return None
    value = value.strip()
    return value or None


def _attr(element: etree._Element | None, name: str) -> str | None:
    """The stripped attribute ``name`` of ``element``; ``None`` when absent or blank."""
    if element is None:
        return None
    value = element.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _path(elements: Iterable[etree._Element], tags: tuple[str, ...]) -> etree._Element | None:
    """The first element reached from ``elements`` by the child steps ``tags``, in document order.

    The same element as ElementPath's ``find("a/b/c")`` from their parent.
    """
    head = tags[0]
    rest = tags[1:]
    for element in elements:
        for child in element:
            if child.tag == head:
                if not rest:
                    return child
                found = _path((child,), rest)
                if found is not None:
                    return found
    return None


def _all(elements: Iterable[etree._Element], tag: str) -> list[etree._Element]:
    """The children named ``tag`` of every element of ``elements``, in document order (``findall("a/b")``)."""
    return [child for element in elements for child in element if child.tag == tag]


# --------------------------------------------------------------------------------------------------
# Value helpers (tolerant: collect warnings instead of failing)


class _Reader:
    """Holds the warnings of one document while values are read."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def ii(self, element: etree._Element | None) -> InstanceId | None:
        if element is None:
            return None
        root = _attr(element, "root")
        extension = _attr(element, "extension")
        if root is None and extension is None:
            return None
        return InstanceId(root, extension)

    def code(self, element: etree._Element | None, where: str, local: str | None = None) -> Code | None:
        """Read a coded element; ``local`` is its local name when the caller knows it (saves reading the tag)."""
        if element is None:
            return None
        # _attr() written out: this runs for every coded element
        value = element.get("code")
        if value is not None:
            value = value.strip() or None
        if value is None:
            if element.get("nullFlavor") is None:
                self.warn(f"{where}: coded element without @code")
            return None
        system = element.get("codeSystem")
        if system is not None:
            system = system.strip() or None
        display = element.get("displayName")
        expected = _CODE_SYSTEM_OF.get(local if local is not None else element.tag.rpartition("}")[2])
        if expected is not None and system != expected:
            self.warn(f"{where}: code system {system!r} instead of {expected}")
        known = _KNOWN_CODES.get(system or "")
        if known is not None and value not in known:
            self.warn(f"{where}: unknown code {value!r} in {system}")
        return Code(value, system, display)

    def cnsa(self, index: _Index, local: str, where: str | None = None) -> Code | None:
        """The coded child ``cnsaSDO:<local>`` found in ``index``."""
        element = index.get("{urn:cnsaSDO}" + local)
        if element is None:
            return None
        return self.code(element[0], where or local, local)

    def date(self, value: str | None, where: str) -> date | None:
        if value is None:
            return None
        parsed = _parse_date(value)
        if parsed is None:
            self.warn(f"{where}: invalid HL7 date")
        return parsed

    def ts(self, value: str | None, where: str) -> datetime | None:
        if value is None:
            return None
        parsed = _parse_ts(value)
        if parsed is None:
            self.warn(f"{where}: invalid HL7 timestamp")
        return parsed

    def boolean(self, element: etree._Element | None, where: str) -> bool | None:
        value = _attr(element, "value")
        if value is None:
            return None
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        self.warn(f"{where}: invalid boolean {value!r}")
        return None

    def integer(self, element: etree._Element | None, where: str) -> int | None:
        value = _attr(element, "value")
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
        index = _index(element)
        return Address(
            use=_attr(element, "use"),
            street=_text(index.get("{urn:hl7-org:v3}streetAddressLine", _NONE)[0]),
            postal_code=_text(index.get("{urn:hl7-org:v3}postalCode", _NONE)[0]),
            city=_text(index.get("{urn:hl7-org:v3}city", _NONE)[0]),
            additional_locator=_text(index.get("{urn:hl7-org:v3}additionalLocator", _NONE)[0]),
        )

    def telecoms(self, index: _Index) -> tuple[Telecom, ...]:
        result = []
        for element in index.get("{urn:hl7-org:v3}telecom", _NO_ELEMENTS):
            value = _attr(element, "value")
            if value is not None:
                result.append(Telecom(value, _attr(element, "use")))
        return tuple(result)

    def simple_name(self, element: etree._Element | None, where: str) -> PersonName | None:
        if element is None:
            return None
        index = _index(element)
        family = _text(index.get("{urn:hl7-org:v3}family", _NONE)[0])
        if family is None:
            self.warn(f"{where}: name without family")
            family = ""
        return PersonName(family=family, given=_text(index.get("{urn:hl7-org:v3}given", _NONE)[0]),
                          prefix=_text(index.get("{urn:hl7-org:v3}prefix", _NONE)[0]))

    def mdph(self, element: etree._Element | None, where: str) -> Mdph | None:
        if element is None:
            return None
        root = _attr(element, "root")
        label = _attr(element, "extension")
        if root is None or label is None:
            self.warn(f"{where}: MDPH without @root or @extension")
            return None
        if not root.startswith(c.MDPH_ARC):
            self.warn(f"{where}: root is not an MDPH OID")
        return Mdph(oid=root, label=label)


_TS_RE = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,6})?([+-]\d{4})?$"
)


_ZONES: dict[str, timezone] = {}


def _parse_date(value: str) -> date | None:
    """The date of an HL7 TS, as ``_parse_ts(value).date()``; ``yyyymmdd``, the usual form, read directly."""
    if len(value) == 8 and value.isdecimal():  # isdecimal: the digits the regular expression's \d accepts
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            return None
    parsed = _parse_ts(value)
    return parsed.date() if parsed is not None else None


def _parse_ts(value: str) -> datetime | None:
    """Parse an HL7 TS (``yyyy[mm[dd[hh[mm[ss[.f]]]]]][+zzzz]``); ``None`` if invalid."""
    value = value.strip()
    if len(value) == 19 and value[14] in "+-" and value[:14].isdecimal() and value[15:].isdecimal():
        # yyyymmddhhmmss+zzzz, the usual form: the groups the regular expression would give, without it
        year, month, day, hour, minute, second, offset = (
            value[:4], value[4:6], value[6:8], value[8:10], value[10:12], value[12:14], value[14:])
    else:
        match = _TS_RE.match(value)
        if match is None:
            return None
        year, month, day, hour, minute, second, offset = match.groups()
    tz = None
    if offset is not None:
        tz = _ZONES.get(offset)
        if tz is None:
            sign = -1 if offset[0] == "-" else 1
            minutes = int(offset[1:3]) * 60 + int(offset[3:5])
            if minutes >= 24 * 60:
                return None
            # at most 2 x 24 x 100 offsets (the regular expression allows 4 digits), so the cache stays small
            tz = _ZONES[offset] = timezone(sign * timedelta(minutes=minutes))
    try:
        return datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                        int(second or 0), tzinfo=tz)
    except ValueError:
        return None




# --------------------------------------------------------------------------------------------------
# Header and person


def _template(root_index: _Index) -> str:
    templates = [t.get("root") for t in root_index.get("{urn:hl7-org:v3}templateId", _NO_ELEMENTS)]
    for template in templates:
        if template in (c.TEMPLATE_DECISION, c.TEMPLATE_EVALUATION):
            return template
    raise DocumentError("ClinicalDocument has no SDO templateId (1.2.250.1.213.1.1.1.4.8 or .4.9)",
                        reason="not-cda")


def _header(root: _Index, template: str, r: _Reader) -> DocumentHeader:
    templates = [t.get("root") for t in root.get("{urn:hl7-org:v3}templateId", _NO_ELEMENTS)]
    if c.TEMPLATE_CDA_DOCUMENT not in templates:
        r.warn(f"templateId: {c.TEMPLATE_CDA_DOCUMENT} missing")
    set_id = r.ii(root.get("{urn:hl7-org:v3}setId", _NONE)[0])
    if set_id is None or set_id.extension is None:
        raise DocumentError("setId/@extension (idNat_Decision) is missing", reason="missing-identifier")
    doc_id = r.ii(root.get("{urn:hl7-org:v3}id", _NONE)[0])
    if doc_id is None:
        r.warn("id: document id missing")
        doc_id = InstanceId(None)
    version = 1
    version_el = root.get("{urn:hl7-org:v3}versionNumber", _NONE)[0]
    if version_el is not None:
        parsed = r.integer(version_el, "versionNumber")
        if parsed is not None and parsed >= 1:
            version = parsed
        else:
            r.warn("versionNumber: not a positive integer, 1 assumed")
    replaces = None
    for related in root.get("{urn:hl7-org:v3}relatedDocument", _NO_ELEMENTS):
        if related.get("typeCode") == "RPLC":
            replaces = r.ii(_path((related,), ("{urn:hl7-org:v3}parentDocument", "{urn:hl7-org:v3}id")))
    authors = root.get("{urn:hl7-org:v3}author", _NO_ELEMENTS)
    return DocumentHeader(
        template_id=template,
        document_id=doc_id,
        set_id=set_id,
        version_number=version,
        effective_time=r.ts(_attr(root.get("{urn:hl7-org:v3}effectiveTime", _NONE)[0], "value"), "effectiveTime"),
        title=_text(root.get("{urn:hl7-org:v3}title", _NONE)[0]),
        confidentiality=_attr(root.get("{urn:hl7-org:v3}confidentialityCode", _NONE)[0], "code"),
        language=_attr(root.get("{urn:hl7-org:v3}languageCode", _NONE)[0], "code"),
        replaces=replaces,
        author_id=r.ii(_path(authors, ("{urn:hl7-org:v3}assignedAuthor", "{urn:hl7-org:v3}id"))),
        author_time=r.ts(_attr(_path(authors, ("{urn:hl7-org:v3}time",)), "value"), "author/time"),
        custodian_id=r.ii(_path(root.get("{urn:hl7-org:v3}custodian", _NO_ELEMENTS), (
            "{urn:hl7-org:v3}assignedCustodian", "{urn:hl7-org:v3}representedCustodianOrganization",
            "{urn:hl7-org:v3}id"))),
    )


def _guardian(element: etree._Element, r: _Reader) -> Guardian | None:
    index = _index(element)
    measure = r.code(index.get("{urn:hl7-org:v3}code", _NONE)[0], "guardian/code", "code")
    if measure is None:
        r.warn("guardian: no measure code, guardian ignored")
        return None
    org_name = _text(_path(index.get("{urn:hl7-org:v3}guardianOrganization", _NO_ELEMENTS), ("{urn:hl7-org:v3}name",)))
    return Guardian(
        measure=measure,
        address=r.address(index.get("{urn:hl7-org:v3}addr", _NONE)[0]),
        telecoms=r.telecoms(index),
        person=r.simple_name(_path(index.get("{urn:hl7-org:v3}guardianPerson", _NO_ELEMENTS),
                                   ("{urn:hl7-org:v3}name",)), "guardianPerson"),
        organization_name=org_name,
    )


def _parents(root: _Index, r: _Reader) -> tuple[Parent, ...]:
    parents = []
    for entity in _all(root.get("{urn:hl7-org:v3}informant", _NO_ELEMENTS), "{urn:hl7-org:v3}relatedEntity"):
        index = _index(entity)
        relationship = r.code(index.get("{urn:hl7-org:v3}code", _NONE)[0], "informant/code", "code")
        name = r.simple_name(_path(index.get("{urn:hl7-org:v3}relatedPerson", _NO_ELEMENTS),
                                   ("{urn:hl7-org:v3}name",)), "informant")
        if relationship is None or name is None:
            r.warn("informant: without code or name, ignored")
            continue
        parents.append(Parent(
            relationship=relationship,
            name=name,
            address=r.address(index.get("{urn:hl7-org:v3}addr", _NONE)[0]),
            telecoms=r.telecoms(index),
            parental_authority=r.boolean(index.get("{urn:cnsaSDO}autoriteParentale", _NONE)[0], "autoriteParentale"),
        ))
    return tuple(parents)


def _sections(root: _Index) -> list[tuple[etree._Element, _Index]]:
    """The body's sections (``component/structuredBody/component/section``) with their children by tag."""
    bodies = _all(root.get("{urn:hl7-org:v3}component", _NO_ELEMENTS), "{urn:hl7-org:v3}structuredBody")
    components = _all(bodies, "{urn:hl7-org:v3}component")
    return [(section, _index(section)) for section in _all(components, "{urn:hl7-org:v3}section")]


def _has_template(index: _Index, template: str) -> bool:
    return any(t.get("root") == template for t in index.get("{urn:hl7-org:v3}templateId", _NO_ELEMENTS))


def _death(sections: list[tuple[etree._Element, _Index]], r: _Reader) -> Death | None:
    for _, section in sections:
        if not _has_template(section, c.SECTION_DEATH):
            continue
        observation = _path(section.get("{urn:hl7-org:v3}entry", _NO_ELEMENTS), ("{urn:hl7-org:v3}observation",))
        if observation is None:
            r.warn("death section without observation")
            return None
        index = _index(observation)
        return Death(
            status=r.code(index.get("{urn:hl7-org:v3}value", _NONE)[0], "StatutDeces", "value"),
            date_deces=r.date(_attr(index.get("{urn:hl7-org:v3}effectiveTime", _NONE)[0], "value"), "death date"),
        )
    return None


def _person(root: _Index, sections: list[tuple[etree._Element, _Index]], r: _Reader, *,
            patient_required: bool) -> Person:
    role = _path(root.get("{urn:hl7-org:v3}recordTarget", _NO_ELEMENTS), ("{urn:hl7-org:v3}patientRole",))
    if role is None:
        raise DocumentError("recordTarget/patientRole is missing", reason="missing-identifier")
    index = _index(role)
    ins = None
    mdph_id = None
    others: list[InstanceId] = []
    for element in index.get("{urn:hl7-org:v3}id", _NO_ELEMENTS):
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
    social = index.get("{urn:cnsaSDO}numSecuriteSocialeOuvrantDroit", _NONE)[0]
    social_id = r.ii(social)
    if social_id is None and _text(social) is not None:
        r.warn("numSecuriteSocialeOuvrantDroit: legacy text form")
        social_id = InstanceId(None, _text(social))
    mdph_responsable = r.mdph(index.get("{urn:cnsaSDO}idMDPHResponsable", _NONE)[0], "idMDPHResponsable")
    if mdph_responsable is None:
        r.warn("idMDPHResponsable: missing")
    address = r.address(index.get("{urn:hl7-org:v3}addr", _NONE)[0])
    telecoms = r.telecoms(index)
    insurer_name = _text(index.get("{urn:cnsaSDO}nomOrganismeAM", _NONE)[0])
    file_transfer_date = r.date(_attr(index.get("{urn:cnsaSDO}dateTransfertDossier", _NONE)[0], "value"),
                                "dateTransfertDossier")
    mdph_accueil = r.mdph(index.get("{urn:cnsaSDO}idMDPHAccueil", _NONE)[0], "idMDPHAccueil")
    parents = _parents(root, r)
    death = _death(sections, r)
    patient = index.get("{urn:hl7-org:v3}patient", _NONE)[0]
    if patient is None:
        if patient_required:
            r.warn("patientRole/patient: missing in a Decision document")
        return Person(mdph_individual_id=mdph_id, ins=ins, other_ids=tuple(others), address=address,
                      telecoms=telecoms, insurer_name=insurer_name, social_security=social_id,
                      file_transfer_date=file_transfer_date, mdph_responsable=mdph_responsable,
                      mdph_accueil=mdph_accueil, parents=parents, death=death)
    patient_index = _index(patient)
    name = patient_index.get("{urn:hl7-org:v3}name", _NONE)[0]
    name_index = _index(name)
    families: dict[str | None, str] = {}
    givens: list[str] = []
    first_given = used_given = None
    if name is None:
        r.warn("patient/name: missing")
    else:
        for family in name_index.get("{urn:hl7-org:v3}family", _NO_ELEMENTS):
            value = _text(family)
            if value is not None:
                families.setdefault(family.get("qualifier"), value)
        for given in name_index.get("{urn:hl7-org:v3}given", _NO_ELEMENTS):
            value = _text(given)
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
    gender = r.code(patient_index.get("{urn:hl7-org:v3}administrativeGenderCode", _NONE)[0], "administrativeGenderCode",
                    "administrativeGenderCode")
    guardians = tuple(g for g in (_guardian(e, r) for e in patient_index.get("{urn:hl7-org:v3}guardian", _NO_ELEMENTS))
                      if g is not None)
    birth_addr_index = _index(_path(patient_index.get("{urn:hl7-org:v3}birthplace", _NO_ELEMENTS),
                                    ("{urn:hl7-org:v3}place", "{urn:hl7-org:v3}addr")))
    return Person(
        mdph_individual_id=mdph_id,
        ins=ins,
        other_ids=tuple(others),
        birth_name=birth_name,
        usage_name=families.get("CL"),
        given_names=tuple(givens),
        first_given_name=first_given,
        used_given_name=used_given,
        prefix=_text(name_index.get("{urn:hl7-org:v3}prefix", _NONE)[0]) if name is not None else None,
        gender=gender.code if gender is not None else None,
        birth_date=r.date(_attr(patient_index.get("{urn:hl7-org:v3}birthTime", _NONE)[0], "value"), "birthTime"),
        birth_place_code=_text(birth_addr_index.get("{urn:hl7-org:v3}county", _NONE)[0]),
        birth_place_city=_text(birth_addr_index.get("{urn:hl7-org:v3}city", _NONE)[0]),
        address=address,
        telecoms=telecoms,
        insurer_name=insurer_name,
        social_security=social_id,
        file_transfer_date=file_transfer_date,
        mdph_responsable=mdph_responsable,
        mdph_accueil=mdph_accueil,
        guardians=guardians,
        parents=parents,
        death=death,
    )


# --------------------------------------------------------------------------------------------------
# Decision body


def _right(element: etree._Element, r: _Reader) -> DroitPrestation | None:
    index = _index(element)
    type_droit = r.cnsa(index, "typeDroitOuPrestation")
    if type_droit is None:
        r.warn("droitPrestation: without typeDroitOuPrestation, ignored")
        return None
    caracterisation = None
    car = index.get("{urn:cnsaSDO}caracterisation", _NONE)[0]
    if car is not None:
        car_index = _index(car)
        niveau = r.cnsa(car_index, "niveau", "caracterisation/niveau")
        if niveau is None:
            r.warn("caracterisation: without niveau, ignored")
        else:
            caracterisation = Caracterisation(
                niveau=niveau,
                motif=r.cnsa(car_index, "motif", "caracterisation/motif"),
                date_mise_a_jour=r.date(_attr(car_index.get("{urn:cnsaSDO}dateMiseAJour", _NONE)[0], "value"),
                                        "dateMiseAJour"),
            )
    d = _index(index.get("{urn:cnsaSDO}detailTypeDroitPrestation", _NONE)[0])
    prises = []
    for pec in d.get("{urn:cnsaSDO}priseEnCharge", _NO_ELEMENTS):
        pec_index = _index(pec)
        quantification = None
        quant = pec_index.get("{urn:cnsaSDO}quantification", _NONE)[0]
        if quant is not None:
            quant_index = _index(quant)
            raw = _attr(quant_index.get("{urn:cnsaSDO}nombre", _NONE)[0], "value")
            try:
                nombre = float(raw) if raw is not None else None
            except ValueError:
                nombre = None
            if nombre is None:
                r.warn("quantification: invalid or missing nombre, ignored")
            else:
                quantification = Quantification(
                    nombre=nombre,
                    unite=r.cnsa(quant_index, "unite", "quantification/unite"),
                    periodicite=r.cnsa(quant_index, "periodicite", "quantification/periodicite"),
                )
        prises.append(PriseEnCharge(mode=r.cnsa(pec_index, "modePriseEnCharge"), quantification=quantification))
    id_nats = []
    for id_nat in d.get("{urn:cnsaSDO}idNat", _NO_ELEMENTS):
        value = _attr(id_nat, "extension")
        if value is None:
            r.warn("detailTypeDroitPrestation/idNat: without @extension")
            continue
        if id_nat.get("root") != c.OID_ID_NAT_STRUCT:
            r.warn(f"idNat: root is not {c.OID_ID_NAT_STRUCT}")
        id_nats.append(value)
    nb_jours_el = d.get("{urn:cnsaSDO}nbJoursDerogationAccueilTemporaire", _NONE)[0]
    if nb_jours_el is None:
        nb_jours_el = d.get("{urn:cnsaSDO}nbJourDerogationAccueilTemporaire", _NONE)[0]
    right = DroitPrestation(
        type_droit=type_droit,
        nature=r.cnsa(index, "natureDroit"),
        date_ouverture=r.date(_attr(index.get("{urn:cnsaSDO}dateOuvertureDuDroit", _NONE)[0], "value"),
                              "dateOuvertureDuDroit"),
        date_echeance=r.date(_attr(index.get("{urn:cnsaSDO}dateEcheanceDuDroit", _NONE)[0], "value"),
                             "dateEcheanceDuDroit"),
        qualification=r.cnsa(index, "qualification"),
        amendement_creton=r.boolean(index.get("{urn:cnsaSDO}amendementCreton", _NONE)[0], "amendementCreton"),
        existence_pag=r.boolean(index.get("{urn:cnsaSDO}existencePAG", _NONE)[0], "existencePAG"),
        motif_fin_pag=r.cnsa(index, "motifFinPAG"),
        caracterisation=caracterisation,
        precision_orientation=r.cnsa(d, "precisionOrientation"),
        precision_orientation_locale=_text(d.get("{urn:cnsaSDO}precisionOrientationLocale", _NONE)[0]),
        temporalite_accueil=r.cnsa(d, "temporaliteAccueil"),
        accueil_sequentiel=r.boolean(d.get("{urn:cnsaSDO}accueilSequentiel", _NONE)[0], "accueilSequentiel"),
        id_nat_structs=tuple(id_nats),
        categorie_etablissement=r.cnsa(d, "categorieEtablissement"),
        categorie_organisation=r.cnsa(d, "categorieOrganisation"),
        specialisation=r.cnsa(d, "specialisationPriseEnCharge"),
        formations=tuple(t for t in (_text(f) for f in d.get("{urn:cnsaSDO}formation", _NO_ELEMENTS)) if t is not None),
        mode_entree_ditep=r.cnsa(d, "modeEntreeDITEP"),
        nb_jours_derogation=r.integer(nb_jours_el, "nbJoursDerogationAccueilTemporaire"),
        prises_en_charge=tuple(prises),
    )
    if right.date_ouverture is None or right.date_echeance is None:
        r.warn("droitPrestation: opening or expiry date missing")
    return right


def _decision(sections: list[tuple[etree._Element, _Index]], header: DocumentHeader, r: _Reader) -> Decision:
    element = None
    for _, section in sections:
        if _has_template(section, c.SECTION_DECISION):
            element = section.get("{urn:cnsaSDO}decision", _NONE)[0]
            break
    if element is None:
        raise DocumentError("decision section (1.2.250.1.213.1.1.2.235) with cnsaSDO:decision is missing",
                            reason="missing-identifier")
    index = _index(element)
    ident = r.ii(index.get("{urn:cnsaSDO}identifiantDecision", _NONE)[0])
    if ident is None or ident.extension is None:
        raise DocumentError("cnsaSDO:identifiantDecision/@extension (idDecision) is missing",
                            reason="missing-identifier")
    if ident.root is None or not ident.root.startswith(c.MDPH_ARC):
        r.warn("identifiantDecision: root is not an MDPH OID")
    motivations = tuple(m for m in (r.code(e, "motivation", "motivation")
                                    for e in index.get("{urn:cnsaSDO}motivation", _NO_ELEMENTS)) if m is not None)
    if not motivations:
        r.warn("decision: no motivation")
    decision = Decision(
        id_nat_decision=header.id_nat_decision,
        id_decision=ident.extension,
        id_decision_root=ident.root,
        type_decision=r.cnsa(index, "typeDeDecision"),
        date_decision=r.date(_attr(index.get("{urn:cnsaSDO}dateDeDecision", _NONE)[0], "value"), "dateDeDecision"),
        date_effet_cloture=r.date(_attr(index.get("{urn:cnsaSDO}dateEffetDeLaDecisionDeCloture", _NONE)[0], "value"),
                                  "dateEffetDeLaDecisionDeCloture"),
        related_decisions=tuple(i for i in (r.ii(e) for e in index.get(
            "{urn:cnsaSDO}identifiantDesDecisionsReviseesRenouveleesCloturees", _NO_ELEMENTS)) if i is not None),
        id_nat_tiers=_attr(index.get("{urn:cnsaSDO}idNat", _NONE)[0], "extension"),
        motivations=motivations,
        motivations_locales=tuple(t for t in (_text(e) for e in index.get("{urn:cnsaSDO}motivationLocale",
                                                                           _NO_ELEMENTS)) if t is not None),
        precision_reponse_revision=r.cnsa(index, "precisionReponseRevisionTiers"),
        precision_locale=_text(index.get("{urn:cnsaSDO}precisionLocale", _NONE)[0]),
        rights=tuple(d for d in (_right(e, r) for e in index.get("{urn:cnsaSDO}droitPrestation", _NO_ELEMENTS))
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


def _evaluation(sections: list[tuple[etree._Element, _Index]], r: _Reader) -> Evaluation:
    section = None
    for _, candidate in sections:
        if _has_template(candidate, c.SECTION_EVALUATION):
            section = candidate
            break
    if section is None:
        r.warn("evaluation section (1.2.250.1.213.1.1.2.229) missing")
        return Evaluation(date_mise_a_jour=None)
    when = r.date(_text(section.get("{urn:hl7-org:v3}text", _NONE)[0]), "evaluation date (section text)")
    observations = []
    for sub in _all(section.get("{urn:hl7-org:v3}component", _NO_ELEMENTS), "{urn:hl7-org:v3}section"):
        sub_index = _index(sub)
        sub_templates = [t.get("root") or "" for t in sub_index.get("{urn:hl7-org:v3}templateId", _NO_ELEMENTS)]
        sub_template = next((t for t in sub_templates if t in c.EVALUATION_SECTIONS), None)
        if sub_template is None:
            r.warn("evaluation: unknown sub-section template")
            sub_template = sub_templates[0] if sub_templates else ""
        for observation in _all(sub_index.get("{urn:hl7-org:v3}entry", _NO_ELEMENTS), "{urn:hl7-org:v3}observation"):
            obs_index = _index(observation)
            templates = [t.get("root") or "" for t in obs_index.get("{urn:hl7-org:v3}templateId", _NO_ELEMENTS)]
            entry_template = next((t for t in templates if t in c.EVALUATION_ENTRIES), None)
            entry = c.EVALUATION_ENTRIES.get(entry_template or "")
            if entry is None:
                r.warn("evaluation: unknown entry template")
                entry_template = next((t for t in templates if t != c.TEMPLATE_CDA_OBSERVATION), "")
            value_el = obs_index.get("{urn:hl7-org:v3}value", _NONE)[0]
            value = _attr(value_el, "code")
            if value is None:
                r.warn("evaluation: observation without value code, ignored")
                continue
            system = _attr(value_el, "codeSystem")
            if entry is not None and system != entry.code_system:
                r.warn(f"{entry.label}: code system {system!r} instead of {entry.code_system}")
            label = _text(_path(obs_index.get("{urn:hl7-org:v3}code", _NO_ELEMENTS), ("{urn:hl7-org:v3}originalText",)))
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


def _decision_document(root: _Index, raw: bytes) -> DecisionDocument:
    r = _Reader()
    sections = _sections(root)
    header = _header(root, c.TEMPLATE_DECISION, r)
    decision = _decision(sections, header, r)
    person = _person(root, sections, r, patient_required=True)
    return DecisionDocument(header=header, person=person, decision=decision, digest=_digest(raw),
                            warnings=tuple(r.warnings), raw=raw)


def _evaluation_document(root: _Index, raw: bytes) -> EvaluationDocument:
    r = _Reader()
    sections = _sections(root)
    header = _header(root, c.TEMPLATE_EVALUATION, r)
    person = _person(root, sections, r, patient_required=False)
    evaluation = _evaluation(sections, r)
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
    root = _index(_load(raw, limits))
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
    root = _index(_load(raw, limits))
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
    root = _index(_load(raw, limits))
    if _template(root) == c.TEMPLATE_DECISION:
        return _decision_document(root, raw)
    return _evaluation_document(root, raw)
