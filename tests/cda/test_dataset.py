"""The simulator's dataset: deterministic, with valid NIR and FINESS keys and consistent notifications."""

from __future__ import annotations

import random
from datetime import date

import pytest
from cda_helpers import NOW, NS
from lxml import etree

from vtdui.cda.codes import mdph_for_department, mdph_oid
from vtdui.simulator.dataset import Dataset, generate_entities, make_finess, make_nir

DOC_ORDER = ["realmCode", "typeId", "templateId", "templateId", "id", "code", "title", "effectiveTime",
             "confidentialityCode", "languageCode", "setId", "versionNumber", "recordTarget", "author"]


def independent_nir_key(first_thirteen: str) -> int:
    """INSEE rule, written again here: Corsica 2A -> 19, 2B -> 18, then 97 - n mod 97."""
    digits = first_thirteen.replace("2A", "19", 1) if first_thirteen[5:7] == "2A" else first_thirteen
    digits = digits.replace("2B", "18", 1) if first_thirteen[5:7] == "2B" else digits
    return 97 - int(digits) % 97


def independent_luhn_ok(number: str) -> bool:
    digits = [int(ch) for ch in number.replace("A", "0").replace("B", "0")]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return total % 10 == 0


def test_same_seed_same_bytes() -> None:
    first = Dataset.generate(seed=7, n_decisions=10, now=NOW)
    second = Dataset.generate(seed=7, n_decisions=10, now=NOW)
    assert first == second
    for a, b in zip(first.decisions, second.decisions, strict=True):
        assert a.decision_cda() == b.decision_cda()
        assert a.evaluation_cda() == b.evaluation_cda()


def test_other_seed_other_data() -> None:
    first = Dataset.generate(seed=7, n_decisions=3, now=NOW)
    other = Dataset.generate(seed=8, n_decisions=3, now=NOW)
    assert first.decisions[0].decision_cda() != other.decisions[0].decision_cda()
    assert {d.id_nat_decision for d in first.decisions}.isdisjoint(d.id_nat_decision for d in other.decisions)


def test_earlier_decisions_do_not_depend_on_the_count() -> None:
    small = Dataset.generate(seed=3, n_decisions=3, now=NOW)
    large = Dataset.generate(seed=3, n_decisions=30, now=NOW)
    assert [d.decision for d in small.decisions] == [d.decision for d in large.decisions[:3]]
    assert [d.person for d in small.decisions] == [d.person for d in large.decisions[:3]]


@pytest.mark.parametrize("seed", range(25))
def test_every_nir_has_a_valid_key(seed: int) -> None:
    dataset = Dataset.generate(seed=seed, n_decisions=20, now=NOW)
    for sim in dataset.decisions:
        numbers = [sim.person.social_security.extension if sim.person.social_security else None,
                   sim.person.ins_nir]
        for nir in filter(None, numbers):
            assert len(nir) == 15
            assert int(nir[13:]) == independent_nir_key(nir[:13])
        if sim.person.ins_nir:
            nir = sim.person.ins_nir
            assert nir[0] == ("1" if sim.person.gender == "M" else "2")
            assert sim.person.birth_date is not None
            assert nir[1:5] == sim.person.birth_date.strftime("%y%m")
            assert nir[5:10] == sim.person.birth_place_code


@pytest.mark.parametrize("commune", ["2A004", "2B033", "35238", "97411"])
def test_make_nir_handles_corsica_and_overseas(commune: str) -> None:
    rng = random.Random(1)
    for _ in range(50):
        nir = make_nir(rng, sex="F", birth=date(1996, 5, 31), insee_commune=commune)
        assert nir[5:10] == commune
        assert int(nir[13:]) == independent_nir_key(nir[:13])


def test_corsican_key_differs_from_a_naive_computation() -> None:
    nir = make_nir(random.Random(5), sex="M", birth=date(1980, 1, 1), insee_commune="2A004")
    naive = 97 - int(nir[:13].replace("2A", "20")) % 97
    assert int(nir[13:]) != naive


@pytest.mark.parametrize("seed", range(25))
def test_finess_numbers_are_valid_unique_and_prefixed(seed: int) -> None:
    entities = generate_entities(random.Random(seed), n_entities=3, per_entity=5)
    numbers = [e.finess_ej for e in entities] + [est.finess_eg for e in entities for est in e.establishments]
    assert len(numbers) == len(set(numbers))
    for entity in entities:
        for est in entity.establishments:
            assert len(est.finess_eg) == 9
            assert est.finess_eg[:2] == est.department
            assert independent_luhn_ok(est.finess_eg)
            assert est.id_nat_struct == "1" + est.finess_eg
        assert independent_luhn_ok(entity.finess_ej)


def test_make_finess_for_corsica() -> None:
    value = make_finess(random.Random(0), "2A")
    assert value.startswith("2A") and len(value) == 9 and independent_luhn_ok(value)


@pytest.mark.parametrize("seed", range(30))
def test_there_is_always_an_esat(seed: int) -> None:
    entities = generate_entities(random.Random(seed))
    esats = [est for e in entities for est in e.establishments if est.is_esat]
    assert esats
    assert all(u.categorie_organisation == "43" for est in esats for u in est.units)


def test_units_carry_ror_codes(dataset: Dataset) -> None:
    for est in dataset.establishments:
        assert est.units
        for unit in est.units:
            assert unit.temporalite_accueil in {"01", "02"}
            assert unit.mode_prise_charge in {"46", "47", "48"}
            assert unit.id_unite.startswith(est.finess_eg)


def test_decisions_are_notified_to_1_to_3_dataset_establishments() -> None:
    dataset = Dataset.generate(seed=11, n_decisions=100, now=NOW, n_entities=3, per_entity=6)
    known = {est.finess_eg for est in dataset.establishments}
    counts = set()
    for sim in dataset.decisions:
        assert 1 <= len(sim.notified_to) <= 3
        assert set(sim.notified_to) <= known
        counts.add(len(sim.notified_to))
        kinds = {dataset.establishment(f).kind for f in sim.notified_to}
        assert len(kinds) == 1
        assert sim.notified_at < NOW
        assert sim in dataset.decisions_for(sim.notified_to[0])
    assert counts == {1, 2, 3}
    assert len({d.id_nat_decision for d in dataset.decisions}) == 100


def test_right_matches_the_designated_establishments(dataset: Dataset) -> None:
    for sim in dataset.decisions:
        right = sim.decision.rights[0]
        est = dataset.establishment(sim.notified_to[0])
        assert (right.type_droit.code == "11.5") == est.is_esat
        if est.is_esat:
            assert right.temporalite_accueil is None
        else:
            assert right.temporalite_accueil is not None
        assert right.categorie_etablissement is not None and right.categorie_etablissement.code == est.category


def test_mdph_of_the_decision_is_the_department_of_the_person(dataset: Dataset) -> None:
    for sim in dataset.decisions:
        mdph = sim.person.mdph_responsable
        assert mdph is not None
        assert sim.decision.id_decision_root == mdph.oid
        assert sim.decision.id_decision.startswith(mdph.department + "-")
        assert mdph == mdph_for_department(mdph.department)


@pytest.mark.parametrize(("department", "oid"), [
    ("01", "1.2.250.1.213.7.1"), ("06", "1.2.250.1.213.7.6"), ("19", "1.2.250.1.213.7.19"),
    ("2A", "1.2.250.1.213.7.20"), ("2B", "1.2.250.1.213.7.21"), ("20R", "1.2.250.1.213.7.22"),
    ("21", "1.2.250.1.213.7.23"), ("22", "1.2.250.1.213.7.24"), ("35", "1.2.250.1.213.7.37"),
    ("69", "1.2.250.1.213.7.71"), ("69M", "1.2.250.1.213.7.73"), ("70", "1.2.250.1.213.7.75"),
    ("75", "1.2.250.1.213.7.80"), ("95", "1.2.250.1.213.7.100"), ("971", "1.2.250.1.213.7.101"),
    ("999", "1.2.250.1.213.7.118"),
])
def test_mdph_oid_rule(department: str, oid: str) -> None:
    assert mdph_oid(department) == oid


@pytest.mark.parametrize("department", ["20", "00", "96", "2C", ""])
def test_mdph_oid_rejects_unknown_codes(department: str) -> None:
    with pytest.raises(ValueError, match="unknown MDPH"):
        mdph_oid(department)


@pytest.mark.parametrize("seed", range(10))
def test_every_generated_cda_is_well_formed_with_the_templates(seed: int) -> None:
    dataset = Dataset.generate(seed=seed, n_decisions=5, now=NOW)
    for sim in dataset.decisions:
        for xml, template in ((sim.decision_cda(), "1.2.250.1.213.1.1.1.4.8"),
                              (sim.evaluation_cda(), "1.2.250.1.213.1.1.1.4.9")):
            assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
            xml.decode("utf-8")
            root = etree.fromstring(xml)
            assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"
            assert [t.get("root") for t in root.findall("h:templateId", NS)] == [
                template, "2.16.840.1.113883.10.12.2"]
            names = [etree.QName(child).localname for child in root]
            assert names[: len(DOC_ORDER)] == DOC_ORDER
            tail = [n for n in names[len(DOC_ORDER):]]
            assert tail[-1] == "component"
            assert tail.index("custodian") > max((i for i, n in enumerate(tail) if n == "informant"), default=-1)
            assert root.find("h:setId", NS).get("extension") == sim.id_nat_decision


def test_decision_cda_lists_the_notified_establishments(dataset: Dataset) -> None:
    for sim in dataset.decisions:
        root = etree.fromstring(sim.decision_cda())
        values = [e.get("extension") for e in root.iterfind(".//c:detailTypeDroitPrestation/c:idNat", NS)]
        assert values == ["1" + f for f in sim.notified_to]
