"""Generated records → CDA → parsed records must give back the same records, for many seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from cda_helpers import NOW

from vtdui.cda.parse import parse_decision, parse_document, parse_evaluation
from vtdui.cda.records import DecisionDocument, EvaluationDocument, Person
from vtdui.simulator.cda_builder import build_decision_cda, document_id
from vtdui.simulator.dataset import Dataset


@pytest.mark.parametrize("seed", range(40))
def test_decision_roundtrip(seed: int) -> None:
    dataset = Dataset.generate(seed=seed, n_decisions=5, now=NOW)
    for sim in dataset.decisions:
        xml = sim.decision_cda()
        doc = parse_decision(xml)
        assert doc.warnings == ()
        assert doc.person == sim.person
        assert dataclasses.replace(doc.decision, version_number=None) == sim.decision
        assert doc.decision.version_number == 1
        assert doc.id_nat_decision == sim.id_nat_decision
        assert doc.digest == hashlib.sha256(xml).hexdigest()
        assert doc.decision.rights[0].finess_list == sim.notified_to


@pytest.mark.parametrize("seed", range(20))
def test_evaluation_roundtrip(seed: int) -> None:
    dataset = Dataset.generate(seed=seed, n_decisions=4, now=NOW)
    for sim in dataset.decisions:
        doc = parse_evaluation(sim.evaluation_cda())
        assert doc.warnings == ()
        assert doc.evaluation == sim.evaluation
        assert doc.id_nat_decision == sim.id_nat_decision
        # Like the IG sample, the evaluation carries ids, address and MDPH, not the identity.
        expected = Person(
            mdph_individual_id=sim.person.mdph_individual_id, ins=sim.person.ins, address=sim.person.address,
            telecoms=sim.person.telecoms, insurer_name=sim.person.insurer_name,
            social_security=sim.person.social_security, file_transfer_date=sim.person.file_transfer_date,
            mdph_responsable=sim.person.mdph_responsable, mdph_accueil=sim.person.mdph_accueil,
        )
        assert doc.person == expected


def test_dataset_covers_the_optional_parts() -> None:
    """The round trip above only means something if the data exercise the optional elements."""
    dataset = Dataset.generate(seed=1, n_decisions=200, now=NOW)
    persons = [d.person for d in dataset.decisions]
    rights = [d.decision.rights[0] for d in dataset.decisions]
    assert any(p.parents for p in persons)
    assert any(g.person for p in persons for g in p.guardians)
    assert any(g.organization_name for p in persons for g in p.guardians)
    assert any(p.ins is None for p in persons) and any(p.ins is not None for p in persons)
    assert any(p.mdph_accueil for p in persons)
    assert any(p.address and p.address.use == "PST" for p in persons)
    assert any(r.caracterisation for r in rights)
    assert any(r.nb_jours_derogation for r in rights)
    assert any(p.quantification for r in rights for p in r.prises_en_charge)
    assert any(r.precision_orientation_locale for r in rights)
    assert any(r.temporalite_accueil is None for r in rights)  # ESAT
    assert {len(r.id_nat_structs) for r in rights} >= {1, 2}


def test_new_version_replaces_the_previous_one(dataset: Dataset) -> None:
    sim = dataset.decisions[2]
    doc = parse_decision(sim.decision_cda(version=3))
    assert doc.header.version_number == 3
    assert doc.header.replaces == document_id(sim.id_nat_decision, "D", 2)
    assert doc.header.document_id == document_id(sim.id_nat_decision, "D", 3)
    first = parse_decision(sim.decision_cda())
    assert first.header.replaces is None
    assert first.digest != doc.digest


def test_parse_document_dispatches_on_template(dataset: Dataset) -> None:
    sim = dataset.decisions[0]
    assert isinstance(parse_document(sim.decision_cda()), DecisionDocument)
    assert isinstance(parse_document(sim.evaluation_cda()), EvaluationDocument)


def test_as_dict_is_json_ready(dataset: Dataset) -> None:
    doc = parse_decision(dataset.decisions[0].decision_cda())
    data = json.loads(json.dumps(doc.as_dict()))
    assert data["decision"]["id_nat_decision"] == dataset.decisions[0].id_nat_decision
    assert data["decision"]["date_decision"] == doc.decision.date_decision.isoformat()  # type: ignore[union-attr]
    assert isinstance(data["decision"]["rights"], list)


def test_death_section_roundtrip(dataset: Dataset) -> None:
    from vtdui.cda.records import Code, Death

    sim = dataset.decisions[0]
    person = dataclasses.replace(
        sim.person, death=Death(status=Code("1", "1.2.250.1.213.3.3.100", "Certifié"), date_deces=NOW.date()))
    doc = parse_decision(build_decision_cda(person, sim.decision))
    assert doc.person.death == person.death
    assert doc.warnings == ()
