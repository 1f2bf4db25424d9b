"""Write ``data/golden_records.jsonl``: CDA documents and what :mod:`vtdui.cda.parse` extracts from them.

Run by hand (``python tests/cda/make_golden.py``) only when the extraction is *meant* to change.
``test_golden.py`` checks that the parser still gives exactly these records, so a rewrite for speed cannot
change the output unnoticed. The file is gzipped JSON Lines; each line holds the document bytes (as Latin-1
text, which maps every byte to one character, so encodings and byte order marks stay exact) and either the
records as JSON (``as_dict``) or the refusal reason.

The documents: the CDA tests' dataset (seed 42, decision and evaluation of each of 12 decisions), generated
decisions that carry guardians or parents, a legacy-shaped decision, and altered copies that exercise
the tolerant paths (unknown codes, bad dates, comments, CDATA, odd whitespace, Latin-1, BOM, refusals).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cda_helpers import LEGACY, NOW, alter, remove, set_attr  # noqa: E402
from lxml import etree  # noqa: E402

from vtdui.cda.parse import parse_document  # noqa: E402
from vtdui.errors import DocumentError  # noqa: E402
from vtdui.simulator.dataset import Dataset  # noqa: E402

GOLDEN = HERE / "data" / "golden_records.jsonl.gz"


def documents() -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for every golden document, in a fixed order."""
    dataset = Dataset.generate(seed=42, n_decisions=12, now=NOW)
    for index, sim in enumerate(dataset.decisions):
        yield f"seed42-{index}-decision", sim.decision_cda()
        yield f"seed42-{index}-evaluation", sim.evaluation_cda()
    wide = Dataset.generate(seed=1, n_decisions=200, now=NOW)
    wanted = {
        "guardian-person": lambda s: any(g.person for g in s.person.guardians),
        "guardian-organisation": lambda s: any(g.organization_name for g in s.person.guardians),
        "parents": lambda s: bool(s.person.parents),
        "mdph-accueil": lambda s: s.person.mdph_accueil is not None,
        "no-ins": lambda s: s.person.ins is None,
    }
    for label, test in wanted.items():
        sim = next((s for s in wide.decisions if test(s)), None)
        if sim is not None:
            yield f"seed1-{label}-decision", sim.decision_cda()
            yield f"seed1-{label}-evaluation", sim.evaluation_cda()
    yield "legacy-decision", LEGACY
    decision = dataset.decisions[0].decision_cda()
    evaluation = dataset.decisions[0].evaluation_cda()
    yield from altered(decision, evaluation)


def altered(decision: bytes, evaluation: bytes) -> Iterator[tuple[str, bytes]]:
    """Copies of one decision and one evaluation that take the tolerant or refusing paths."""
    yield "unknown-right-type", alter(decision, set_attr("//c:typeDroitOuPrestation", "code", "42.7"))
    yield "odd-code-system", alter(decision, set_attr("//c:typeDeDecision", "codeSystem", "1.2.3.4"))
    yield "bad-birth-date", alter(decision, set_attr("//h:patient/h:birthTime", "value", "not-a-date"))
    yield "bad-effective-time", alter(decision, set_attr("/h:ClinicalDocument/h:effectiveTime", "value", "2026"
                                                                                                     "1399"))
    yield "no-mdph-responsable", alter(decision, remove("//c:idMDPHResponsable"))
    yield "no-patient", alter(decision, remove("//h:patient"))
    yield "no-motivation", alter(decision, remove("//c:motivation"))
    yield "no-type-decision", alter(decision, remove("//c:typeDeDecision"))
    yield "no-document-id", alter(decision, remove("/h:ClinicalDocument/h:id"))
    yield "version-zero", alter(decision, set_attr("//h:versionNumber", "value", "0"))
    yield "bad-boolean", alter(decision, set_attr("//c:existencePAG", "value", "maybe"))
    yield "null-flavor-code", alter(decision, _null_flavor("//c:natureDroit"))
    yield "code-without-code", alter(decision, _drop_attr("//c:qualification", "code"))
    yield "evaluation-odd-system", alter(evaluation, set_attr("(//h:observation/h:value)[1]", "codeSystem", "9.9.9"))
    yield "evaluation-unknown-entry", alter(evaluation, set_attr("(//h:observation/h:templateId)[1]", "root", "1.2"))
    yield "evaluation-no-value", alter(evaluation, remove("(//h:observation/h:value)[1]"))
    yield "evaluation-no-section", alter(evaluation, remove("//h:structuredBody/h:component"))
    text = decision.decode("utf-8")
    yield "death-and-two-rights", alter(decision, _death_and_second_right)
    yield "death-without-observation", decision.replace(b"<component>\n        <section>", DEATH_EMPTY, 1)
    yield "latin-1", text.replace("encoding='UTF-8'", "encoding='ISO-8859-1'").encode("latin-1")
    yield "bom", b"\xef\xbb\xbf" + decision
    yield "comments-and-pis", decision.replace(b"<title>", b"<?pi x?><title><!-- c -->Doc<!-- c -->", 1)
    yield "cdata-text", decision.replace(b"<title>", b"<title><![CDATA[<Doc>]]>", 1)
    yield "padded-text", decision.replace(b"<city>", b"<city> \n ", 1).replace(b"</city>", b" \t</city>", 1)
    yield "blank-text", decision.replace(b"<title>Document Individu et d\xc3\xa9cision</title>",
                                         b"<title>   </title>", 1)
    yield "compact", etree.tostring(etree.fromstring(decision, etree.XMLParser(remove_blank_text=True)))
    yield "entities", decision.replace(b"<title>", b"<title>&lt;&#233;&amp;", 1)
    yield "refused-xml-syntax", decision[:-40]
    yield "refused-not-cda", b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"
    yield "refused-missing-set-id", alter(decision, remove("/h:ClinicalDocument/h:setId"))
    yield "refused-missing-decision", alter(decision, remove("//c:decision"))


DEATH = """<component xmlns="urn:hl7-org:v3"><section><templateId root="1.2.250.1.213.1.1.2.228"/>
<entry><observation classCode="OBS" moodCode="EVN"><value code="1" codeSystem="1.2.250.1.213.3.3.65"/>
<effectiveTime value="20260402"/></observation></entry></section></component>"""
DEATH_EMPTY = (b'<component><section><templateId root="1.2.250.1.213.1.1.2.228"/></section></component>'
               b"<component>\n        <section>")


def _death_and_second_right(root: etree._Element) -> None:
    body = root.find("{urn:hl7-org:v3}component/{urn:hl7-org:v3}structuredBody")
    body.append(etree.fromstring(DEATH))
    right = root.find(".//{urn:cnsaSDO}droitPrestation")
    second = etree.fromstring(etree.tostring(right))
    second.find("{urn:cnsaSDO}typeDroitOuPrestation").set("code", "13.2")
    right.addnext(second)


def _null_flavor(xpath: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for element in root.xpath(xpath, namespaces={"h": "urn:hl7-org:v3", "c": "urn:cnsaSDO"}):
            for name in list(element.attrib):
                del element.attrib[name]
            element.set("nullFlavor", "UNK")

    return change


def _drop_attr(xpath: str, name: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        for element in root.xpath(xpath, namespaces={"h": "urn:hl7-org:v3", "c": "urn:cnsaSDO"}):
            del element.attrib[name]

    return change


def outcome(xml: bytes) -> dict[str, object]:
    """What the parser makes of ``xml``: the records as JSON, or the refusal's reason."""
    try:
        document = parse_document(xml)
    except DocumentError as exc:
        return {"refused": exc.reason}
    return {"kind": type(document).__name__, "records": document.as_dict()}


def main() -> None:
    """Write the golden file."""
    GOLDEN.parent.mkdir(exist_ok=True)
    lines = []
    for name, xml in documents():
        lines.append(json.dumps({"name": name, "xml_latin1": xml.decode("latin-1"), **outcome(xml)},
                                ensure_ascii=False, sort_keys=True))
    # mtime=0: the same records give the same bytes
    GOLDEN.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0))
    print(f"wrote {len(lines)} documents to {GOLDEN}")


if __name__ == "__main__":
    main()
