"""The built-in ESMSTask / ESMSConsent builders produce resources that pass vtdui.conformance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vtdui import builders, sdo
from vtdui.conformance import check_esms_consent, check_esms_task, has_errors
from vtdui.hookcontext import StatusChange

from .outbound_fixtures import ESAT, ID_DECISION, ID_NAT, IME, context, decision_basic, local_consent, make_config


def _change(establishment: Any = IME, **fields: Any) -> StatusChange:
    return StatusChange(id_nat_decision=ID_NAT, id_decision=ID_DECISION, finess_eg=establishment.finess_eg,
                        task_id="wl-1", task_version="3", **fields)


def _inputs(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in task["input"]:
        out[item["type"]["coding"][0]["code"]] = item
    return out


def _code(item: dict[str, Any]) -> tuple[str, str]:
    coding = item["valueCodeableConcept"]["coding"][0]
    return coding["system"], coding["code"]


WORKLIST = {"resourceType": "Task", "id": "wl-1", "meta": {"versionId": "3",
                                                          "lastUpdated": "2026-05-12T09:30:00.000+02:00"}}

# The REM scenarios: (establishment, change fields)
SCENARIOS: list[tuple[str, Any, dict[str, str]]] = [
    ("41 contact with reason", IME, {"statut_esms": "41", "motif_esms": "152", "date_statut_esms": "2026-05-12"}),
    ("42 waiting list", IME, {"statut_esms": "42", "date_statut_esms": "2026-05-13"}),
    ("ESAT trial 43/185", ESAT, {"statut_esms": "43", "date_statut_esms": "2026-05-14", "statut_unite": "185",
                                 "date_statut_unite": "2026-05-14", "id_unite": "ROR-UNIT-7"}),
    ("ESAT trial failed 44/181+84", ESAT, {"statut_esms": "44", "date_statut_esms": "2026-06-14",
                                           "statut_unite": "181", "motif_unite": "84",
                                           "date_statut_unite": "2026-06-14", "id_unite": "ROR-UNIT-7"}),
    ("entered 47/186", IME, {"statut_esms": "47", "date_statut_esms": "2026-07-01", "statut_unite": "186",
                             "date_statut_unite": "2026-07-01", "id_unite": "ROR-UNIT-9"}),
    ("refusal 45+reason", IME, {"statut_esms": "45", "motif_esms": "114", "date_statut_esms": "2026-05-20"}),
    ("exit 48/188+reason", IME, {"statut_esms": "48", "date_statut_esms": "2027-01-31", "statut_unite": "188",
                                 "motif_unite": "89", "date_statut_unite": "2027-01-31", "id_unite": "ROR-UNIT-9"}),
]


@pytest.mark.parametrize(("name", "establishment", "fields"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_each_rem_scenario_builds_a_conformant_esms_task(tmp_path: Path, name: str, establishment: Any,
                                                         fields: dict[str, str]) -> None:
    ctx = context(make_config(tmp_path), establishment, worklist=WORKLIST)
    task = builders.build_esms_task(change=_change(establishment, **fields), context=ctx)
    assert task is not None
    violations = check_esms_task(task, expected_struct=establishment.id_nat_struct)
    assert violations == [], "\n".join(map(str, violations))
    assert task["status"] == "completed" and task["intent"] == "plan"
    assert task["meta"] == {"profile": [sdo.PROFILE_TASK], "lastUpdated": "2026-05-12T09:30:00.000+02:00"}
    inputs = _inputs(task)
    assert inputs[sdo.ID_NAT_STRUCT]["valueIdentifier"] == {"value": "1" + establishment.finess_eg}
    assert inputs[sdo.NOM_ESMS]["valueString"] == establishment.name
    assert inputs[sdo.ID_NAT_DECISION]["valueIdentifier"] == {"value": ID_NAT}
    assert inputs[sdo.ID_DECISION]["valueIdentifier"] == {"value": ID_DECISION}
    assert _code(inputs[sdo.STATUT_ESMS]) == (sdo.TRE_R357, fields["statut_esms"])
    assert inputs[sdo.STATUT_ESMS]["type"]["text"] == sdo.STATUT_ESMS
    if "motif_esms" in fields:
        assert _code(inputs[sdo.MOTIF_ESMS]) == (sdo.TRE_R358, fields["motif_esms"])
    if "statut_unite" in fields:
        unit = next(u for u in establishment.units if u.id_unite == fields["id_unite"])
        assert set(sdo.UNIT_BLOCK) <= set(inputs)
        assert inputs[sdo.NOM_UNITE]["valueString"] == unit.nom_unite
        assert _code(inputs[sdo.CATEGORIE_ORGANISATION]) == (sdo.TRE_R244, unit.categorie_organisation)
        assert _code(inputs[sdo.MODE_PRISE_CHARGE]) == (sdo.TRE_R213, unit.mode_prise_charge)
        assert inputs[sdo.DATE_STATUT_UNITE]["valueDate"] == fields["date_statut_unite"]
        assert (sdo.TEMPORALITE_ACCUEIL in inputs) == (unit.temporalite_accueil is not None)
        assert (sdo.ACCUEIL_SEQUENTIEL in inputs) == (unit.accueil_sequentiel is not None)
    else:
        assert not set(inputs) & {sdo.ID_UNITE, sdo.NOM_UNITE, sdo.STATUT_UNITE}


def test_displays_come_from_the_terminology(tmp_path: Path) -> None:
    task = builders.build_esms_task(change=_change(statut_esms="41", motif_esms="152", date_statut_esms="2026-05-12"),
                                    context=context(make_config(tmp_path)))
    assert task is not None
    inputs = _inputs(task)
    assert inputs[sdo.STATUT_ESMS]["valueCodeableConcept"]["coding"][0]["display"] == "Contact effectué"
    assert inputs[sdo.MOTIF_ESMS]["valueCodeableConcept"]["coding"][0]["display"] == "L'usager a visité l'ESMS"


def test_description_is_sent_when_given(tmp_path: Path) -> None:
    task = builders.build_esms_task(change=_change(statut_esms="42", date_statut_esms="2026-05-13",
                                                   description="Dossier complet reçu"),
                                    context=context(make_config(tmp_path)))
    assert task is not None and task["description"] == "Dossier complet reçu"


def test_unit_not_configured_is_refused_by_regle_statut_unite(tmp_path: Path) -> None:
    change = _change(statut_unite="185", date_statut_unite="2026-05-14", id_unite="ROR-UNKNOWN")
    task = builders.build_esms_task(change=change, context=context(make_config(tmp_path)))
    assert task is not None
    violations = check_esms_task(task)
    assert has_errors(violations)
    assert "regle-StatutUnite" in {v.rule for v in violations}


def test_missing_reason_for_45_is_an_error_not_hidden_by_the_builder(tmp_path: Path) -> None:
    task = builders.build_esms_task(change=_change(statut_esms="45", date_statut_esms="2026-05-20"),
                                    context=context(make_config(tmp_path)))
    assert task is not None
    assert "ASS_A32" in {v.rule for v in check_esms_task(task) if v.severity == "error"}


def test_mode_238_uses_tre_r397() -> None:
    assert builders.mode_prise_charge_system("238") == sdo.TRE_R397
    assert builders.mode_prise_charge_system("46") == sdo.TRE_R213


# --------------------------------------------------------------------------------------- consent


def test_consent_from_decision_basic_is_conformant(tmp_path: Path) -> None:
    ctx = context(make_config(tmp_path), decision=decision_basic())
    built = builders.build_esms_consent(consent=local_consent(), context=ctx)
    assert built is not None
    assert check_esms_consent(built, expected_struct=IME.id_nat_struct, expected_decision=ID_NAT) == []
    assert built["meta"]["source"] == "1" + IME.finess_eg
    assert built["dateTime"] == "2026-05-11"
    assert built["provision"]["data"][0]["reference"]["identifier"] == {"use": "official", "value": ID_NAT}
    assert built["policyRule"]["coding"][0]["code"] == "OPTIN"
    assert "id" not in built and "patient" not in built  # nothing of the local record leaks out


def test_consent_with_logical_reference_needs_no_decision(tmp_path: Path) -> None:
    consent = local_consent()
    consent["provision"]["data"][0]["reference"] = {"identifier": {"system": sdo.ID_NAT_DECISION_SYSTEM,
                                                                   "value": "VT-other"}}
    built = builders.build_esms_consent(consent=consent, context=context(make_config(tmp_path)))
    assert built is not None
    assert built["provision"]["data"][0]["reference"]["identifier"]["value"] == "VT-other"


def test_consent_without_decision_builds_nothing(tmp_path: Path) -> None:
    assert builders.build_esms_consent(consent=local_consent(), context=context(make_config(tmp_path))) is None


def test_consent_without_date_is_stopped_by_conformance(tmp_path: Path) -> None:
    ctx = context(make_config(tmp_path), decision=decision_basic())
    built = builders.build_esms_consent(consent=local_consent(date_time=None), context=ctx)
    assert built is not None
    assert {v.rule for v in check_esms_consent(built)} == {"ESMSConsent.dateTime"}
