"""Hostile, malformed or incomplete documents are refused with the right reason; oddities only warn."""

from __future__ import annotations

import base64

import pytest
from cda_helpers import LEGACY, NS, alter, remove, set_attr
from lxml import etree

from vtdui.cda.parse import Limits, decode_attachment, parse_decision, parse_document, parse_evaluation
from vtdui.errors import DocumentError


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
