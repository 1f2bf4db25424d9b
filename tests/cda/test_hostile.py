"""Hostile, malformed or incomplete documents are refused with the right reason; oddities only warn."""

from __future__ import annotations

import base64
import http.server
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pytest
from cda_helpers import LEGACY, NS, alter, remove, set_attr
from lxml import etree

from vtdui.cda import parse
from vtdui.cda.parse import Limits, decode_attachment, parse_decision, parse_document, parse_evaluation
from vtdui.errors import DocumentError
from vtdui.simulator.dataset import Dataset


def refused(xml: bytes, reason: str, **kwargs: object) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        parse_document(xml, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason, str(info.value)
    return info.value


# --- entities and DTDs -----------------------------------------------------------------------------

XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>"""


def test_xxe_is_refused() -> None:
    error = refused(XXE, "dtd-forbidden")
    assert "root:" not in str(error)  # nothing of /etc/passwd leaks into the message


def test_billion_laughs_is_refused() -> None:
    refused(BILLION_LAUGHS, "dtd-forbidden")


def test_doctype_with_internal_subset_in_a_real_document_is_refused(decision_xml: bytes) -> None:
    head, body = decision_xml.split(b"\n", 1)
    xml = head + b'\n<!DOCTYPE ClinicalDocument [<!ATTLIST title lang CDATA "fr">]>\n' + body
    refused(xml, "dtd-forbidden")


def test_external_dtd_reference_is_refused(decision_xml: bytes) -> None:
    head, body = decision_xml.split(b"\n", 1)
    refused(head + b'\n<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">\n' + body, "dtd-forbidden")


def test_doctype_hidden_in_latin1_document_is_refused() -> None:
    xml = XXE.replace(b"UTF-8", b"ISO-8859-1")
    refused(xml, "dtd-forbidden")


def test_undeclared_entity_reference_is_a_syntax_error(decision_xml: bytes) -> None:
    refused(decision_xml.replace(b"<title>", b"<title>&xxe;", 1), "xml-syntax")


# --- base64 ------------------------------------------------------------------------------------------

def test_decode_attachment_accepts_strict_base64_with_line_breaks(decision_xml: bytes) -> None:
    text = base64.encodebytes(decision_xml).decode()  # MIME style: a line break every 76 characters
    assert "\n" in text
    assert decode_attachment(text) == decision_xml
    assert decode_attachment(base64.b64encode(decision_xml)) == decision_xml


@pytest.mark.parametrize("data", [
    "PENsaW5pY2FsRG9jdW1lbnQ+*",          # character outside the alphabet
    "PENsaW5pY2FsRG9jdW1lbnQ",            # wrong padding
    "PENsaW5p-2FsRG9jdW1lbnQ+",           # URL-safe alphabet
    "",                                    # empty
    "   \n ",                              # only whitespace
    "PENsaW5pY2FsRG9jdW1lbnQ+é",          # non-ASCII
])
def test_invalid_base64_is_refused(data: str) -> None:
    with pytest.raises(DocumentError) as info:
        decode_attachment(data)
    assert info.value.reason == "base64"


def test_oversize_base64_is_refused_before_decoding() -> None:
    with pytest.raises(DocumentError) as info:
        decode_attachment("QUFB" * 1000, max_bytes=2000)
    assert info.value.reason == "too-large"


# --- size, depth, count --------------------------------------------------------------------------------

def test_oversize_document_is_refused(decision_xml: bytes) -> None:
    refused(decision_xml, "too-large", limits=Limits(max_bytes=len(decision_xml) - 1))
    parse_document(decision_xml, limits=Limits(max_bytes=len(decision_xml)))  # exactly the limit is fine


def test_default_limit_is_ten_mebibytes(decision_xml: bytes) -> None:
    padding = b"<!--" + b"x" * (10 * 1024 * 1024) + b"-->"
    refused(decision_xml + padding, "too-large")


def test_too_deep_nesting_is_refused() -> None:
    depth = 100
    xml = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<a>" * depth + b"</a>" * depth + b"</ClinicalDocument>"
    refused(xml, "too-deep")


def test_nesting_beyond_libxml2_limit_is_refused_as_too_deep() -> None:
    depth = 5000
    xml = b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<a>" * depth + b"</a>" * depth + b"</ClinicalDocument>"
    refused(xml, "too-deep", limits=Limits(max_depth=10_000))


def test_too_many_elements_are_refused(decision_xml: bytes) -> None:
    refused(decision_xml, "too-many-elements", limits=Limits(max_elements=20))


# --- encoding -------------------------------------------------------------------------------------------

def test_declared_utf8_with_latin1_bytes_is_refused(decision_xml: bytes) -> None:
    latin1 = decision_xml.decode("utf-8").encode("latin-1")  # 'décision' now has a lone 0xE9 byte
    assert latin1 != decision_xml
    refused(latin1, "encoding")


def test_latin1_document_that_declares_it_is_accepted(decision_xml: bytes) -> None:
    text = decision_xml.decode("utf-8").replace("encoding='UTF-8'", "encoding='ISO-8859-1'")
    doc = parse_decision(text.encode("latin-1"))
    assert doc.decision == parse_decision(decision_xml).decision
    assert doc.header.title == "Document Individu et décision"


def test_utf16_declared_is_refused(decision_xml: bytes) -> None:
    text = decision_xml.decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    refused(text.encode("utf-16"), "encoding")  # with BOM
    refused(text.encode("utf-16-le"), "encoding")  # without BOM


def test_other_declared_encoding_is_refused(decision_xml: bytes) -> None:
    text = decision_xml.decode("utf-8").replace("encoding='UTF-8'", "encoding='windows-1252'")
    refused(text.encode("cp1252"), "encoding")


def test_utf8_bom_is_accepted(decision_xml: bytes) -> None:
    assert parse_decision(b"\xef\xbb\xbf" + decision_xml).decision.id_decision


# --- not a CDA / wrong document ------------------------------------------------------------------------

@pytest.mark.parametrize("xml", [
    b"<Bundle xmlns='http://hl7.org/fhir'/>",
    b"<ClinicalDocument/>",                                       # no namespace
    b"<ClinicalDocument xmlns='urn:hl7-org:v2'/>",                # wrong namespace
    b"<ClinicalDocument xmlns='urn:hl7-org:v3'><templateId root='2.16.840.1.113883.10.12.2'/></ClinicalDocument>",
])
def test_not_a_sdo_cda_is_refused(xml: bytes) -> None:
    refused(xml, "not-cda")


def test_garbage_is_a_syntax_error() -> None:
    refused(b"\x89PNG\r\n\x1a\n", "encoding")
    refused(b"<ClinicalDocument xmlns='urn:hl7-org:v3'>", "xml-syntax")
    refused(b"", "xml-syntax")


def test_wrong_template_for_the_expected_document(decision_xml: bytes, evaluation_xml: bytes) -> None:
    with pytest.raises(DocumentError) as info:
        parse_evaluation(decision_xml)
    assert info.value.reason == "wrong-template"
    with pytest.raises(DocumentError) as info:
        parse_decision(evaluation_xml)
    assert info.value.reason == "wrong-template"


# --- missing identifiers -----------------------------------------------------------------------------

def test_missing_set_id_is_refused(decision_xml: bytes, evaluation_xml: bytes) -> None:
    refused(alter(decision_xml, remove("/h:ClinicalDocument/h:setId")), "missing-identifier")
    refused(alter(evaluation_xml, remove("/h:ClinicalDocument/h:setId")), "missing-identifier")


def test_set_id_without_extension_is_refused(decision_xml: bytes) -> None:
    refused(alter(decision_xml, set_attr("/h:ClinicalDocument/h:setId", "extension", " ")), "missing-identifier")


def test_missing_identifiant_decision_is_refused(decision_xml: bytes) -> None:
    refused(alter(decision_xml, remove("//c:identifiantDecision")), "missing-identifier")


def test_identifiant_decision_without_extension_is_refused(decision_xml: bytes) -> None:
    def drop_extension(root: etree._Element) -> None:
        element = root.find(".//c:identifiantDecision", NS)
        del element.attrib["extension"]

    refused(alter(decision_xml, drop_extension), "missing-identifier")


def test_missing_decision_section_is_refused(decision_xml: bytes) -> None:
    refused(alter(decision_xml, remove("//c:decision")), "missing-identifier")


def test_missing_record_target_is_refused(decision_xml: bytes) -> None:
    refused(alter(decision_xml, remove("/h:ClinicalDocument/h:recordTarget")), "missing-identifier")


# --- unknown codes and other oddities: accepted, with warnings ------------------------------------------

def test_unknown_right_type_is_kept_with_a_warning(decision_xml: bytes) -> None:
    xml = alter(decision_xml, set_attr("//c:typeDroitOuPrestation", "code", "42.7"))
    doc = parse_decision(xml)
    assert doc.decision.rights[0].type_droit.code == "42.7"
    assert doc.decision.rights[0].category == "42"
    assert any("typeDroitOuPrestation" in w and "'42.7'" in w for w in doc.warnings)


def test_unexpected_code_system_is_kept_with_a_warning(decision_xml: bytes) -> None:
    xml = alter(decision_xml, set_attr("//c:typeDeDecision", "codeSystem", "1.2.3.4"))
    doc = parse_decision(xml)
    assert doc.decision.type_decision is not None
    assert doc.decision.type_decision.code_system == "1.2.3.4"
    assert any("typeDeDecision" in w and "1.2.3.4" in w for w in doc.warnings)


def test_unknown_evaluation_code_system_is_kept_with_a_warning(evaluation_xml: bytes) -> None:
    xml = alter(evaluation_xml, set_attr("(//h:observation/h:value)[1]", "codeSystem", "9.9.9"))
    doc = parse_evaluation(xml)
    assert doc.observations[0].value.code_system == "9.9.9"
    assert len(doc.warnings) == 1


def test_invalid_optional_dates_warn_without_leaking_them(decision_xml: bytes) -> None:
    doc = parse_decision(decision_xml)
    birth = doc.person.birth_date
    assert birth is not None
    bad = birth.strftime("%Y%m%d")[:6] + "99"  # day 99
    xml = alter(decision_xml, set_attr("//h:patient/h:birthTime", "value", bad))
    altered = parse_decision(xml)
    assert altered.person.birth_date is None
    assert any("birthTime" in w for w in altered.warnings)
    assert not any(bad in w for w in altered.warnings)


def test_warnings_never_carry_personal_data(decision_xml: bytes) -> None:
    original = parse_decision(decision_xml)
    xml = alter(decision_xml, set_attr("//h:patient/h:birthTime", "value", "not-a-date"))
    xml = alter(xml, set_attr("//c:typeDroitOuPrestation", "code", "99.9"))
    xml = alter(xml, remove("//c:idMDPHResponsable"))
    doc = parse_decision(xml)
    assert len(doc.warnings) >= 3
    secrets = [original.person.birth_name, original.person.first_given_name, original.person.ins_nir,
               original.person.mdph_individual_id.extension if original.person.mdph_individual_id else None]
    for warning in doc.warnings:
        for secret in filter(None, secrets):
            assert secret not in warning


def test_legacy_sample_shape_is_read_with_warnings() -> None:
    doc = parse_decision(LEGACY)
    assert doc.id_nat_decision == "NAT-0001"
    assert doc.decision.id_decision == "DEC-1"
    assert doc.decision.id_decision_root == "1.2.250.1.213.1.1.1.4.8"
    assert doc.header.version_number == 2
    assert doc.header.replaces is not None and doc.header.replaces.extension == "006"
    assert doc.person.social_security is not None and doc.person.social_security.root is None
    assert doc.person.gender == "M"
    assert doc.person.mdph_responsable is not None and doc.person.mdph_responsable.department == "22"
    right = doc.decision.rights[0]
    assert right.nb_jours_derogation == 16
    assert right.prises_en_charge[0].quantification is not None
    assert right.prises_en_charge[0].quantification.nombre == 15
    assert [m.code for m in right.modes_prise_en_charge] == ["46"]
    joined = " | ".join(doc.warnings)
    assert "identifiantDecision" in joined
    assert "legacy text form" in joined
    assert "administrativeGenderCode" not in joined  # the gender code itself is known; only the system is old
    assert "1 84 12" not in joined


# --- each limit holds on every parsing path ------------------------------------------------------------
# The element and depth limits are proved from one count of "<" when they can be (each element has its own
# "<"; an element at depth d needs at least 2d - 1 of them), else checked exactly: a streaming parse that stops
# at the element limit, an XPath probe for the depth. These tests find the exact boundaries on every path.

ROOT_OPEN = b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
ROOT_CLOSE = b"</ClinicalDocument>"


def nested(depth: int, padding: bytes = b"") -> bytes:
    """A document whose deepest element lies at ``depth`` (the root is at depth 1)."""
    return ROOT_OPEN + padding + b"<a>" * (depth - 1) + b"</a>" * (depth - 1) + ROOT_CLOSE


def flat(elements: int) -> bytes:
    """A document of ``elements`` elements, the root included, all at depth 2 or less."""
    return ROOT_OPEN + b"<a/>" * (elements - 1) + ROOT_CLOSE


@pytest.mark.parametrize("limit", [2, 8, 64, 200])
def test_depth_limit_is_exact(limit: int) -> None:
    # at the limit the document passes the depth check and is refused later, for not being a CDA
    refused(nested(limit), "not-cda", limits=Limits(max_depth=limit))
    refused(nested(limit + 1), "too-deep", limits=Limits(max_depth=limit))


def test_depth_limit_when_the_bound_from_the_bytes_is_loose() -> None:
    # 100 elements at depth 2: the bound from the "<" count is 100, the exact probe lets the document through
    wide = ROOT_OPEN + b"<a>x</a>" * 100 + ROOT_CLOSE
    refused(wide, "not-cda", limits=Limits(max_depth=2))
    refused(wide, "too-deep", limits=Limits(max_depth=1))


def test_depth_limit_on_the_streaming_path() -> None:
    # more "<" than max_elements: the streaming parse runs, and stops on depth first
    limits = Limits(max_depth=10, max_elements=15)
    refused(nested(11), "too-deep", limits=limits)
    refused(nested(10), "not-cda", limits=limits)


@pytest.mark.parametrize("limit", [1, 10, 1000])
def test_element_limit_is_exact(limit: int) -> None:
    refused(flat(limit), "not-cda", limits=Limits(max_elements=limit))
    refused(flat(limit + 1), "too-many-elements", limits=Limits(max_elements=limit))


def test_default_element_limit_is_exact() -> None:
    default = Limits().max_elements
    refused(flat(default), "not-cda")
    refused(flat(default + 1), "too-many-elements")


def test_element_limit_with_comments_that_loosen_the_bound() -> None:
    # comments full of "<" make the count of "<" exceed the limit: the exact streaming count decides
    filler = b"<a>" + b"x" * 200 + b"</a><!-- <<<< -->"
    xml = ROOT_OPEN + filler * 30 + ROOT_CLOSE  # 31 elements
    refused(xml, "not-cda", limits=Limits(max_elements=31))
    refused(xml, "too-many-elements", limits=Limits(max_elements=30))


def _random_document(rng: random.Random) -> tuple[bytes, int, int]:
    """A random well-formed document with its true element count and depth."""
    count = 1
    deepest = 1
    parts = [ROOT_OPEN]

    def grow(depth: int) -> None:
        nonlocal count, deepest
        for _ in range(rng.randint(0, 4)):
            if count >= 400:
                return
            count += 1
            deepest = max(deepest, depth + 1)
            choice = rng.random()
            if choice < 0.3:
                parts.append(b"<e/>")
            elif choice < 0.5:
                parts.append(b"<t>" + b"x" * rng.randint(0, 300) + b"</t><!-- </ -->")
            else:
                parts.append(b"<n>")
                if depth < 40:
                    grow(depth + 1)
                parts.append(b"</n>")

    grow(1)
    parts.append(ROOT_CLOSE)
    return b"".join(parts), count, deepest


@pytest.mark.parametrize("seed", range(30))
def test_limits_match_the_true_count_and_depth(seed: int) -> None:
    rng = random.Random(seed)
    xml, count, depth = _random_document(rng)
    for max_elements in (count - 1, count, max(1, count // 2)):
        for max_depth in (depth - 1, depth, max(1, depth // 2)):
            limits = Limits(max_depth=max(1, max_depth), max_elements=max(1, max_elements))
            with pytest.raises(DocumentError) as info:
                parse_document(xml, limits=limits)
            deep = depth > limits.max_depth
            many = count > limits.max_elements
            if deep and many:
                assert info.value.reason in ("too-deep", "too-many-elements")
            elif deep:
                assert info.value.reason == "too-deep"
            elif many:
                assert info.value.reason == "too-many-elements"
            else:
                assert info.value.reason == "not-cda"


# --- more DTD and entity shapes ----------------------------------------------------------------------------

@pytest.mark.parametrize("prolog", [
    b'<!doctype ClinicalDocument SYSTEM "cda.dtd">\n',                      # lower case
    b'<!-- a comment first --><?pi here?>\n<!DOCTYPE ClinicalDocument>\n',  # after other markup
    b'<!  DOCTYPE ClinicalDocument>\n',                                       # odd spacing
    b'<!ENTITY x "y">\n',                                                     # an entity with no DOCTYPE
])
def test_every_declaration_shape_is_refused(decision_xml: bytes, prolog: bytes) -> None:
    head, body = decision_xml.split(b"\n", 1)
    refused(head + b"\n" + prolog + body, "dtd-forbidden")


def test_xinclude_is_not_processed(decision_xml: bytes, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not-for-the-parser")
    include = (f'<title><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret.as_uri()}" '
               'parse="text"/></title>').encode()
    xml = decision_xml.replace(b"<title>Document Individu et d\xc3\xa9cision</title>", include, 1)
    assert xml != decision_xml
    doc = parse_decision(xml)
    assert doc.header.title is None
    assert b"not-for-the-parser" not in repr(doc.as_dict()).encode()


# --- no network, whatever the document points at --------------------------------------------------------------

class _Counter(http.server.BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Counter.paths.append(self.path)
        body = b'<!ENTITY leak "fetched">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def listener() -> Iterator[str]:
    """A local HTTP server that records every request it gets; yields its base URL."""
    _Counter.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_listener_answers(listener: str) -> None:
    """The fixture's server really answers: the tests below would not see a request otherwise."""
    import urllib.request

    with urllib.request.urlopen(f"{listener}/probe", timeout=5) as answer:
        assert answer.status == 200
    assert _Counter.paths == ["/probe"]


def test_no_request_for_schema_or_xinclude_locations(decision_xml: bytes, listener: str) -> None:
    xml = decision_xml.replace(
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:hl7-org:v3 '
        f'{listener}/CDA.xsd"'.encode(), 1)
    xml = xml.replace(b"<title>", f'<title><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                                  f'href="{listener}/include" parse="text"/>'.encode(), 1)
    assert listener.encode() in xml
    parse_decision(xml)
    assert _Counter.paths == []


def test_parsers_themselves_load_no_dtd(decision_xml: bytes, listener: str, tmp_path: Path) -> None:
    """Defence in depth: a DOCTYPE that got past the scan would still load no DTD, locally or over the network."""
    dtd = tmp_path / "cda.dtd"
    dtd.write_text('<!ENTITY leak "fetched">')
    head, body = decision_xml.split(b"\n", 1)
    body = body.replace(b"<title>", b"<title>&leak;", 1)
    for location in (dtd.as_uri(), f"{listener}/cda.dtd"):
        xml = head + f'\n<!DOCTYPE ClinicalDocument SYSTEM "{location}">\n'.encode() + body
        refused(xml, "dtd-forbidden")  # the scan, first
        for load in (lambda x: etree.fromstring(x, parse._tree_parser()),
                     lambda x: parse._load_streaming(x, Limits())):
            try:
                root = load(xml)
            except (etree.XMLSyntaxError, DocumentError):
                continue  # refusing is fine too; loading is not
            assert b"fetched" not in etree.tostring(root)
    assert _Counter.paths == []
    # the check can fail: lxml with DTD loading on reads the local DTD and expands the entity
    unsafe = etree.fromstring(head + f'\n<!DOCTYPE ClinicalDocument SYSTEM "{dtd.as_uri()}">\n'.encode() + body,
                              etree.XMLParser(load_dtd=True, resolve_entities=True))
    assert b"fetched" in etree.tostring(unsafe)


# --- the per-thread parser ----------------------------------------------------------------------------------

def test_a_refused_document_leaves_the_parser_usable(decision_xml: bytes) -> None:
    expected = parse_decision(decision_xml)
    refused(b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>", "xml-syntax")
    refused(nested(300), "too-deep")
    assert parse_decision(decision_xml) == expected


def test_threads_parse_side_by_side(dataset: Dataset) -> None:
    documents = [sim.decision_cda() for sim in dataset.decisions] + [sim.evaluation_cda() for sim in dataset.decisions]
    expected = [parse_document(xml).as_dict() for xml in documents]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda xml: parse_document(xml).as_dict(), documents * 10))
    assert results == expected * 10
