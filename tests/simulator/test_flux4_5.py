"""Flux 4 (POST Task, one per event) and flux 5 (statuses of other establishments and MDPH events)."""

from __future__ import annotations

from typing import Any

import pytest
from sim_helpers import Dui, admin, gt, just_before, new_decision, task_body

from vtdui import conformance, sdo


def flux5(dui: Dui, eg: str, since: str) -> dict[str, Any]:
    response = dui.get("Task", eg, {"_lastUpdated": since})
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def name_of(dui: Dui, eg: str) -> str:
    return next(e["name"] for e in dui.ej["establishments"] if e["finess_eg"] == eg)


def test_post_task_is_201_with_history_location_and_a_new_task_each_time(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    body = task_body("1" + eg, name_of(dui, eg), decision)
    first = dui.post("Task", eg, body)
    second = dui.post("Task", eg, body)
    assert first.status_code == second.status_code == 201, first.text
    ids = [r.json()["id"] for r in (first, second)]
    assert ids[0] != ids[1]
    assert first.headers["location"] == f"{dui.sim.fhir_base_url}/Task/{ids[0]}/_history/1"
    served = first.json()
    assert served["meta"]["versionId"] == "1"
    assert served["meta"]["lastUpdated"] < second.json()["meta"]["lastUpdated"]
    assert dui.get(f"Task/{ids[0]}", eg).status_code == 200


@pytest.mark.parametrize("mutate, rule", [
    (lambda t: t.update(status="in-progress"), "Task.status"),
    (lambda t: t.update(intent="order"), "Task.intent"),
    (lambda t: t["input"][2]["valueCodeableConcept"]["coding"][0].update(code="186"), None),
    (lambda t: t["input"].pop(3), None),  # 41 without motif is only a warning: add a forbidden pair instead
])
def test_task_breaking_rules_is_422_with_one_issue_per_rule(dui: Dui, mutate: Any, rule: str | None) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    body = task_body("1" + eg, name_of(dui, eg), decision)
    mutate(body)
    violations = conformance.check_esms_task(body, expected_struct="1" + eg)
    response = dui.post("Task", eg, body)
    if not conformance.has_errors(violations):
        assert response.status_code == 201
        return
    assert response.status_code == 422, response.text
    assert response.json() == conformance.to_operation_outcome(violations)
    if rule:
        assert any(rule in i["details"]["text"] or rule in i["expression"][0] for i in response.json()["issue"])


def test_task_with_forbidden_motif_and_foreign_struct(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    body = task_body("1" + eg, name_of(dui, eg), decision, statut="41", motif="113")
    response = dui.post("Task", eg, body)
    assert response.status_code == 422
    assert any("ASS_A32" in i["details"]["text"] for i in response.json()["issue"])
    body = task_body("1" + dui.egs[1], "Autre", decision)
    assert dui.post("Task", eg, body).status_code == 422


def test_task_on_unknown_or_foreign_decision_or_wrong_id_decision_is_422(dui: Dui) -> None:
    eg = dui.egs[0]
    unknown = {"id_decision": "X-1", "id_nat_decision": "VT-NOPE"}
    assert dui.post("Task", eg, task_body("1" + eg, "N", unknown)).status_code == 422
    foreign = new_decision(dui.sim, [dui.egs[1]])
    assert dui.post("Task", eg, task_body("1" + eg, "N", foreign)).status_code == 422
    mine = new_decision(dui.sim, [eg])
    wrong = {**mine, "id_decision": "35-2020-999999"}
    response = dui.post("Task", eg, task_body("1" + eg, "N", wrong))
    assert response.status_code == 422
    assert "idDecision" in response.json()["issue"][0]["diagnostics"]


def test_flux5_shows_other_establishments_posts_never_the_callers_own(dui: Dui) -> None:
    eg_a, eg_b = dui.egs[0], dui.egs[1]
    since = gt(just_before())
    decision = new_decision(dui.sim, [eg_a, eg_b])
    posted = dui.post("Task", eg_a, task_body("1" + eg_a, name_of(dui, eg_a), decision)).json()
    assert [e["resource"]["id"] for e in flux5(dui, eg_b, since).get("entry", [])] == [posted["id"]]
    assert flux5(dui, eg_a, since)["total"] == 0
    # an establishment not notified of the decision sees nothing
    assert flux5(dui, dui.egs[2], since)["total"] == 0


def test_flux5_mdph_event_goes_to_the_establishment_concerned(dui: Dui) -> None:
    eg_a, eg_b = dui.egs[0], dui.egs[1]
    since = gt(just_before())
    decision = new_decision(dui.sim, [eg_a, eg_b])
    response = admin(dui.sim, "POST", "events", {
        "id_nat_decision": decision["id_nat_decision"], "finess_eg": eg_a, "statut_esms": "46",
        "motif_esms": "114", "description": "Refus d'admission entériné par la CDAPH"})
    assert response.status_code == 201, response.text
    bundle = flux5(dui, eg_a, since)
    assert bundle["meta"]["profile"] == [sdo.PROFILE_BUNDLE_NOTIFICATION]
    task = bundle["entry"][0]["resource"]
    assert task["description"] == "Refus d'admission entériné par la CDAPH"
    assert task["meta"]["lastUpdated"] and task["status"] == "completed" and task["intent"] == "plan"
    assert not conformance.has_errors(conformance.check_bundle(bundle, "notification"))
    assert flux5(dui, eg_b, since)["total"] == 0


def test_flux5_cancellation_reaches_every_notified_establishment(dui: Dui) -> None:
    eg_a, eg_b = dui.egs[0], dui.egs[1]
    since = gt(just_before())
    decision = new_decision(dui.sim, [eg_a, eg_b])
    response = admin(dui.sim, "POST", "events", {"id_nat_decision": decision["id_nat_decision"],
                                                 "statut_esms": "37", "motif_esms": "174"})
    assert len(response.json()["tasks"]) == 2
    for eg in (eg_a, eg_b):
        assert flux5(dui, eg, since)["total"] == 1


def test_flux5_status_of_an_establishment_of_another_legal_entity(dui: Dui, other_dui: Dui) -> None:
    eg_a = dui.egs[0]
    other = other_dui.egs[0]
    unit = other_dui.ej["establishments"][0]["units"][0]
    since = gt(just_before())
    decision = new_decision(dui.sim, [eg_a, other])
    response = admin(dui.sim, "POST", "events", {
        "source": "esms", "id_nat_decision": decision["id_nat_decision"], "finess_eg": other,
        "statut_esms": "43", "id_unite": unit["id_unite"], "statut_unite": "185"})
    assert response.status_code == 201, response.text
    bundle = flux5(dui, eg_a, since)
    assert bundle["total"] == 1
    assert not conformance.has_errors(conformance.check_bundle(bundle, "notification"))
    assert flux5(other_dui, other, since)["total"] == 0  # its own status is not echoed


def test_flux5_requires_a_valid_lastupdated(dui: Dui) -> None:
    assert dui.get("Task", dui.egs[0]).status_code == 400
    assert dui.get("Task", dui.egs[0], {"_lastUpdated": "gt2020-01-01", "status": "completed"}).status_code == 400
    url = f"{dui.sim.fhir_base_url}/Task?_lastUpdated=gt2026-01-01T00:00:00+01:00"
    assert dui.http.get(url, headers=dui.headers(dui.egs[0])).status_code == 400


def test_admin_event_refuses_non_mdph_status_and_unknown_decision(dui: Dui) -> None:
    decision = new_decision(dui.sim, [dui.egs[0]])
    assert admin(dui.sim, "POST", "events", {"id_nat_decision": decision["id_nat_decision"],
                                             "statut_esms": "41"}).status_code == 400
    assert admin(dui.sim, "POST", "events", {"id_nat_decision": "nope", "statut_esms": "46"}).status_code == 404
    response = admin(dui.sim, "POST", "events", {"id_nat_decision": decision["id_nat_decision"],
                                                 "statut_esms": "46"})
    assert response.status_code == 422  # 46 without motif breaks ASS_A32: never served
