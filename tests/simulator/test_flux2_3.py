"""Flux 2 (POST Consent) and flux 3 (evaluation, only after a consent), and POST error classes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lxml import etree
from sim_helpers import Dui, admin, consent_body, new_decision

from vtdui import conformance, sdo
from vtdui.simulator.server import start_simulator


def evaluation_search(dui: Dui, eg: str, id_nat: str):  # type: ignore[no-untyped-def]
    return dui.get("DocumentReference", eg, {"identifier": id_nat, "type": "51848-0"})


def test_consent_then_evaluation(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg, dui.egs[1]])
    before = evaluation_search(dui, eg, decision["id_nat_decision"])
    assert before.status_code == 200
    assert before.json()["total"] == 0 and "entry" not in before.json()
    assert dui.get(f"DocumentReference/{decision['eval_docref_id']}", eg).status_code == 404

    response = dui.post("Consent", eg, consent_body("1" + eg, decision["id_nat_decision"]))
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{dui.sim.fhir_base_url}/Consent/{created['id']}/_history/1"
    assert created["meta"]["versionId"] == "1" and created["meta"]["lastUpdated"]
    assert created["provision"]["data"][0]["reference"]["identifier"]["value"] == decision["id_nat_decision"]

    bundle = evaluation_search(dui, eg, decision["id_nat_decision"]).json()
    assert bundle["total"] == 1
    resource = bundle["entry"][0]["resource"]
    assert resource["id"] == decision["eval_docref_id"]
    assert resource["type"]["coding"][0]["code"] == "51848-0"
    assert resource["content"][0]["attachment"]["title"] == "Document évaluation"
    assert {"use": "official", "value": decision["id_nat_decision"]} in resource["identifier"]
    cda = etree.fromstring(base64.b64decode(resource["content"][0]["attachment"]["data"]))
    assert cda.xpath("string(h:templateId[1]/@root)", namespaces={"h": "urn:hl7-org:v3"}) == sdo.TEMPLATE_EVALUATION
    assert not conformance.has_errors(conformance.check_bundle(bundle, "decision-evaluation"))
    assert dui.get(f"DocumentReference/{decision['eval_docref_id']}", eg).status_code == 200
    # the consent of one establishment does not open the evaluation to the other one
    assert evaluation_search(dui, dui.egs[1], decision["id_nat_decision"]).json()["total"] == 0


def test_evaluation_of_a_decision_not_notified_is_empty(dui: Dui) -> None:
    decision = new_decision(dui.sim, [dui.egs[1]])
    assert evaluation_search(dui, dui.egs[0], decision["id_nat_decision"]).json()["total"] == 0


def test_evaluation_search_needs_identifier(dui: Dui) -> None:
    response = dui.get("DocumentReference", dui.egs[0], {"type": "51848-0"})
    assert response.status_code == 400
    response = dui.get("DocumentReference", dui.egs[0], {"type": "51848-0", "identifier": "x", "_elements": "id"})
    assert response.status_code == 400


def test_evaluation_without_consent_can_be_403(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path, seed=5, n_decisions=2, port=0, admin_port=0, evaluation_without_consent="403")
    try:
        client = Dui(sim, 0)
        eg = client.egs[0]
        decision = new_decision(sim, [eg])
        response = evaluation_search(client, eg, decision["id_nat_decision"])
        assert response.status_code == 403
        assert response.json()["issue"][0]["code"] == "forbidden"
        assert client.post("Consent", eg, consent_body("1" + eg, decision["id_nat_decision"])).status_code == 201
        assert evaluation_search(client, eg, decision["id_nat_decision"]).json()["total"] == 1
        client.close()
    finally:
        sim.stop()


def test_consent_breaking_the_profile_is_422_with_each_rule(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    body = consent_body("1" + eg, decision["id_nat_decision"])
    body["status"] = "draft"
    body["scope"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]}
    response = dui.post("Consent", eg, body)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    expected = conformance.to_operation_outcome(conformance.check_esms_consent(body, expected_struct="1" + eg))
    assert outcome == expected
    assert len([i for i in outcome["issue"] if i["severity"] == "error"]) >= 2


def test_consent_with_foreign_source_or_unknown_decision_is_422(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    assert dui.post("Consent", eg, consent_body("1" + dui.egs[1], decision["id_nat_decision"])).status_code == 422
    response = dui.post("Consent", eg, consent_body("1" + eg, "VT-DOES-NOT-EXIST"))
    assert response.status_code == 422
    assert "unknown" in response.json()["issue"][0]["diagnostics"]
    not_mine = new_decision(dui.sim, [dui.egs[1]])
    response = dui.post("Consent", eg, consent_body("1" + eg, not_mine["id_nat_decision"]))
    assert response.status_code == 422
    assert "not notified" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("content, content_type, status", [
    (b"{not json", "application/fhir+json", 400),
    (b'{"resourceType": "Patient"}', "application/fhir+json", 400),
    (b"[1, 2]", "application/fhir+json", 400),
    (b'{"resourceType": "Consent"}', "application/xml", 415),
    (b'{"resourceType": "Consent"}', "text/plain", 415),
])
def test_post_error_classes(dui: Dui, content: bytes, content_type: str, status: int) -> None:
    eg = dui.egs[0]
    for path in ("Consent", "Task"):
        headers = dui.headers(eg, **{"Content-Type": content_type})
        response = dui.http.post(f"{dui.sim.fhir_base_url}/{path}", content=content, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"


def test_received_log_keeps_what_the_dui_sent(dui: Dui) -> None:
    eg = dui.egs[0]
    start = admin(dui.sim, "GET", "received").json()["count"]
    decision = new_decision(dui.sim, [eg])
    body = consent_body("1" + eg, decision["id_nat_decision"])
    body["status"] = "inactive"
    assert dui.post("Consent", eg, body).status_code == 422
    log = admin(dui.sim, "GET", f"received?since={start}").json()["requests"]
    entry = [r for r in log if r["path"] == "/fhir/Consent"][-1]
    assert entry["method"] == "POST"
    assert entry["struct_idnat"] == "1" + eg
    assert entry["status"] == 422
    assert entry["body"]["status"] == "inactive"
    assert any(v["severity"] == "error" for v in entry["validation"])


def test_unknown_endpoints_and_methods_answer_operation_outcomes(dui: Dui) -> None:
    eg = dui.egs[0]
    for method, path in (("GET", "/fhir/Patient"), ("PUT", "/fhir/Task/x"), ("DELETE", "/fhir/DocumentReference/x"),
                         ("GET", "/elsewhere"), ("GET", "/oauth/token")):
        response = dui.http.request(method, f"{dui.sim.fhir_base_url.removesuffix('/fhir')}{path}",
                                    headers=dui.headers(eg))
        assert response.status_code in (404, 405), (method, path)
        assert response.json()["resourceType"] == "OperationOutcome"
