"""Admin side: info, decisions, faults, reset, terminology endpoint and JDV changes; the generated config."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sim_helpers import Dui, admin, consent_body, new_decision, task_body

from vtdui import sdo
from vtdui.config import load_config
from vtdui.simulator.server import RunningSimulator, start_simulator
from vtdui.terminology import update_from_server

SEARCH = {"type": "57830-2", "_lastUpdated": "gt2020-01-01", "_elements": "id"}


def test_info_describes_urls_credentials_and_establishments(simulator: RunningSimulator) -> None:
    info = admin(simulator, "GET", "info").json()
    assert info["fhir_base_url"] == simulator.fhir_base_url and info["token_url"] == simulator.token_url
    assert info["client_id"] and info["client_secret"]
    assert any(e["is_esat"] for ej in info["legal_entities"] for e in ej["establishments"])
    for ej in info["legal_entities"]:
        assert Path(ej["cert_file"]).is_file() and Path(ej["key_file"]).is_file()
        assert oct(Path(ej["key_file"]).stat().st_mode & 0o777) == "0o600"
        assert all(e["units"] for e in ej["establishments"])


def test_p12_is_password_protected_and_matches_the_certificate(simulator: RunningSimulator) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    ej = simulator.info["legal_entities"][0]
    data = Path(ej["p12_file"]).read_bytes()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(data, b"wrong")
    _key, cert, _chain = pkcs12.load_key_and_certificates(data, ej["p12_password"].encode())
    assert cert == x509.load_pem_x509_certificate(Path(ej["cert_file"]).read_bytes())
    ou = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    assert ou == ej["finess_ej"]


def test_generated_config_loads_and_points_at_the_simulator(simulator: RunningSimulator) -> None:
    config = load_config(simulator.config_path, env={})
    assert config.viatrajectoire.base_url == simulator.fhir_base_url
    assert config.viatrajectoire.token_url == simulator.token_url
    assert config.viatrajectoire.client_secret == simulator.info["client_secret"]
    assert config.hapi.base_url == "http://127.0.0.1:8080/fhir"
    info_egs = [e["finess_eg"] for ej in simulator.info["legal_entities"] for e in ej["establishments"]]
    assert [eg.finess_eg for _, eg in config.establishments()] == info_egs
    assert oct(simulator.config_path.stat().st_mode & 0o777) == "0o600"


def test_pki_is_reused_on_restart(tmp_path: Path) -> None:
    first = start_simulator(tmp_path, seed=2, n_decisions=1, port=0, admin_port=0)
    ca = (tmp_path / "pki" / "ca.pem").read_bytes()
    secret = first.info["client_secret"]
    first.stop()
    second = start_simulator(tmp_path, seed=2, n_decisions=1, port=0, admin_port=0)
    try:
        assert (tmp_path / "pki" / "ca.pem").read_bytes() == ca
        assert second.info["client_secret"] == secret
        client = Dui(second, 0)
        assert client.fetch_token().status_code == 200
        client.close()
    finally:
        second.stop()


def test_admin_decisions_validation(simulator: RunningSimulator) -> None:
    assert admin(simulator, "POST", "decisions", {"count": 0}).status_code == 400
    assert admin(simulator, "POST", "decisions", {"notified_to": ["000000000"]}).status_code == 422
    assert admin(simulator, "POST", "decisions/NOPE/update").status_code == 404
    created = admin(simulator, "POST", "decisions", {"count": 3}).json()["decisions"]
    assert len({d["id_nat_decision"] for d in created}) == 3


def test_fault_status_with_retry_after_then_normal(dui: Dui) -> None:
    eg = dui.egs[0]
    rule = admin(dui.sim, "POST", "faults", {"route": "GET /fhir/DocumentReference", "count": 2, "status": 429,
                                             "retry_after": 3})
    assert rule.status_code == 201
    for _ in range(2):
        response = dui.get("DocumentReference", eg, SEARCH)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.json()["resourceType"] == "OperationOutcome"
    assert dui.get("DocumentReference", eg, SEARCH).status_code == 200
    assert admin(dui.sim, "GET", "faults").json()["faults"] == []


@pytest.mark.parametrize("status", [500, 503])
def test_fault_server_errors_only_on_the_matching_route(dui: Dui, status: int) -> None:
    eg = dui.egs[0]
    admin(dui.sim, "POST", "faults", {"route": "POST /fhir/Task", "status": status})
    assert dui.get("DocumentReference", eg, SEARCH).status_code == 200
    decision = new_decision(dui.sim, [eg])
    assert dui.post("Task", eg, task_body("1" + eg, "N", decision)).status_code == status


def test_fault_drop_connection(dui: Dui) -> None:
    admin(dui.sim, "POST", "faults", {"route": "GET /fhir/Task*", "action": "drop"})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        dui.get("Task", dui.egs[0], {"_lastUpdated": "gt2020-01-01"})
    assert dui.get("Task", dui.egs[0], {"_lastUpdated": "gt2020-01-01"}).status_code == 200


def test_fault_delay_and_expire_token(dui: Dui) -> None:
    eg = dui.egs[0]
    admin(dui.sim, "POST", "faults", {"route": "GET /fhir/DocumentReference", "action": "delay", "delay": 0.2})
    assert dui.get("DocumentReference", eg, SEARCH).status_code == 200
    admin(dui.sim, "POST", "faults", {"route": "* /fhir/*", "action": "expire-token"})
    assert dui.get("DocumentReference", eg, SEARCH).status_code == 401
    dui.token(renew=True)
    assert dui.get("DocumentReference", eg, SEARCH).status_code == 200


def test_fault_on_token_endpoint(dui: Dui) -> None:
    admin(dui.sim, "POST", "faults", {"route": "/oauth/token", "status": 503})
    assert dui.fetch_token().status_code == 503
    assert dui.fetch_token().status_code == 200


@pytest.mark.parametrize("spec", [{}, {"route": "/x", "status": 200}, {"route": "/x", "action": "boom"},
                                  {"route": "/x", "action": "delay"}, {"route": "/x", "status": 500, "count": 0}])
def test_bad_fault_specs_are_400(simulator: RunningSimulator, spec: dict[str, object]) -> None:
    assert admin(simulator, "POST", "faults", spec).status_code == 400


def test_reset_restores_the_seeded_dataset(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path, seed=4, n_decisions=3, port=0, admin_port=0)
    try:
        client = Dui(sim, 0)
        eg = client.egs[0]
        before = {d["id_nat_decision"] for d in admin(sim, "GET", "decisions").json()["decisions"]}
        decision = new_decision(sim, [eg])
        assert client.post("Consent", eg, consent_body("1" + eg, decision["id_nat_decision"])).status_code == 201
        admin(sim, "POST", "faults", {"route": "/fhir/*", "status": 500, "count": 5})
        assert admin(sim, "POST", "reset").json()["decision_count"] == 3
        after = {d["id_nat_decision"] for d in admin(sim, "GET", "decisions").json()["decisions"]}
        assert after == before
        assert admin(sim, "GET", "faults").json()["faults"] == []
        assert sim.context.state.consents == {}
        client.close()
    finally:
        sim.stop()


def test_terminology_endpoint_serves_and_updates_a_jdv(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path / "sim", seed=4, n_decisions=1, port=0, admin_port=0)
    try:
        base = f"{sim.admin_url}/terminology/fhir"
        bundle = httpx.get(f"{base}/ValueSet", params={"url": sdo.JDV_J252}).json()
        assert bundle["total"] == 1
        old_version = bundle["entry"][0]["resource"]["version"]
        expanded = httpx.get(f"{base}/ValueSet/$expand", params={"url": sdo.JDV_J252, "count": 5, "offset": 0}).json()
        assert expanded["expansion"]["total"] == 16 and len(expanded["expansion"]["contains"]) == 5
        changed = admin(sim, "POST", "terminology/valuesets", {
            "url": sdo.JDV_J252, "version": "20990101000000",
            "add": [{"system": sdo.TRE_R357, "code": "99", "display": "Nouveau statut"}],
            "remove": [{"system": sdo.TRE_R357, "code": "40"}]}).json()
        assert changed == {"url": sdo.JDV_J252, "version": "20990101000000", "codes": 16}
        assert old_version != "20990101000000"
        # the DUI side refreshes its JDV from this endpoint
        report = update_from_server(base, [sdo.JDV_J252], state_dir=tmp_path / "dui", page_size=4)
        change = report.changes[0]
        assert change.error is None, change.error
        assert (sdo.TRE_R357, "99") in change.added and (sdo.TRE_R357, "40") in change.removed
        # and the simulator now refuses the removed code in flux 4
        client = Dui(sim, 0)
        eg = client.egs[0]
        decision = new_decision(sim, [eg])
        response = client.post("Task", eg, task_body("1" + eg, "N", decision, statut="40", motif=None))
        assert response.status_code == 422
        client.close()
    finally:
        sim.stop()


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from vtdui.cli import main; main()", "simulator",
                             "--data-dir", str(tmp_path), "--port", "0", "--admin-port", "0", "--decisions", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving"):
                break
        text = "".join(lines)
        assert "FHIR base     https://127.0.0.1:" in text
        assert (tmp_path / "vtdui.toml").is_file()
        info = json.loads((tmp_path / "info.json").read_text())
        assert info["decision_count"] == 2
        admin_url = next(line.split()[1] for line in lines if line.strip().startswith("admin"))
        assert httpx.get(admin_url).json()["decision_count"] == 2
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "Simulator stopped." in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_admin_serves_given_bytes_as_a_document_until_the_next_update(simulator: RunningSimulator, dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(simulator, [eg])
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    url = f"{simulator.admin_url}/decisions/{decision['id_nat_decision']}/document"
    answer = httpx.put(url, params={"kind": "decision"}, content=hostile, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["bytes"] == len(hostile)
    served = dui.get(f"DocumentReference/{decision['docref_id']}", eg).json()
    assert base64.b64decode(served["content"][0]["attachment"]["data"]) == hostile
    # a new version serves a regular document again
    assert admin(simulator, "POST", f"decisions/{decision['id_nat_decision']}/update").status_code == 200
    again = dui.get(f"DocumentReference/{decision['docref_id']}", eg).json()
    assert base64.b64decode(again["content"][0]["attachment"]["data"]).startswith(b"<?xml")
    assert b"<!DOCTYPE" not in base64.b64decode(again["content"][0]["attachment"]["data"])
    # wrong kind, unknown decision, empty body: refused with a reason
    assert httpx.put(url, params={"kind": "other"}, content=b"x", timeout=30).status_code == 400
    assert httpx.put(f"{simulator.admin_url}/decisions/NOPE/document", content=b"x", timeout=30).status_code == 404
    assert httpx.put(url, content=b"", timeout=30).status_code == 400


def test_fault_body_serves_raw_text_with_status_and_content_type(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    route = f"GET /fhir/DocumentReference/{decision['docref_id']}"
    rule = admin(dui.sim, "POST", "faults", {"route": route, "action": "body", "body": '{"resourceType": 1',
                                            "remaining": 2}).json()
    assert rule["action"] == "body" and rule["remaining"] == 2 and rule["content_type"] == "application/fhir+json"
    for _ in range(2):
        answer = dui.get(f"DocumentReference/{decision['docref_id']}", eg)
        assert answer.status_code == 200 and answer.text == '{"resourceType": 1'
        assert answer.headers["content-type"].startswith("application/fhir+json")
    assert dui.get(f"DocumentReference/{decision['docref_id']}", eg).json()["resourceType"] == "DocumentReference"
    admin(dui.sim, "POST", "faults", {"route": "GET /fhir/Task", "action": "body", "status": 502,
                                      "content_type": "text/html", "body": "<html>proxy</html>"})
    answer = dui.get("Task", eg, params={"_lastUpdated": "gt2020-01-01T00:00:00Z"})
    assert (answer.status_code, answer.text) == (502, "<html>proxy</html>")
    assert answer.headers["content-type"].startswith("text/html")
    assert admin(dui.sim, "GET", "faults").json()["faults"] == []


@pytest.mark.parametrize("spec", [{"route": "/fhir/*", "action": "body"},
                                  {"route": "/fhir/*", "action": "body", "body": "x", "status": 99},
                                  {"route": "/fhir/*", "action": "body", "body": 3}])
def test_bad_body_faults_are_400(simulator: RunningSimulator, spec: dict[str, object]) -> None:
    assert admin(simulator, "POST", "faults", spec).status_code == 400


def test_a_new_reason_published_in_jdv_and_ass_a32_is_accepted_then_fetched(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path / "sim", seed=5, n_decisions=1, port=0, admin_port=0)
    try:
        base = f"{sim.admin_url}/terminology/fhir"
        client = Dui(sim, 0)
        eg = client.egs[0]
        decision = new_decision(sim, [eg])
        # before: the simulator refuses reason 901 (in no JDV, not allowed for 45 by ASS_A32)
        refused = client.post("Task", eg, task_body("1" + eg, "N", decision, statut="45", motif="901"))
        assert refused.status_code == 422, refused.text
        in_jdv = admin(sim, "POST", "terminology/valuesets", {
            "url": sdo.JDV_J251, "version": "20990101000000",
            "add": [{"system": sdo.TRE_R358, "code": "901", "display": "Motif ajouté"}]})
        assert in_jdv.status_code == 200, in_jdv.text
        # the JDV alone is not enough: ASS_A32 must allow the reason for the status
        still = client.post("Task", eg, task_body("1" + eg, "N", decision, statut="45", motif="901"))
        assert still.status_code == 422 and "ASS_A32" in still.text, still.text
        allowed = admin(sim, "POST", "terminology/conceptmaps", {
            "url": sdo.ASS_A32, "version": "20990101000000", "add": [{"source": "45", "target": "901"}]})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["version"] == "20990101000000"
        accepted = client.post("Task", eg, task_body("1" + eg, "N", decision, statut="45", motif="901"))
        assert accepted.status_code == 201, accepted.text
        client.close()
        # the DUI side fetches both from the terminology endpoint
        report = update_from_server(base, [sdo.JDV_J251, sdo.ASS_A32], state_dir=tmp_path / "dui")
        jdv, a32 = report.changes
        assert jdv.error is None and a32.error is None, (jdv.error, a32.error)
        assert (sdo.TRE_R358, "901") in jdv.added and jdv.new_version == "20990101000000"
        assert a32.added == [("45", "901")] and a32.new_version == "20990101000000"
        # removing the pair again refuses the reason for 45
        assert admin(sim, "POST", "terminology/conceptmaps", {
            "url": sdo.ASS_A32, "remove": [{"source": "45", "target": "901"}]}).status_code == 200
        assert "901" not in sim_allowed(base, "45")
    finally:
        sim.stop()


def sim_allowed(base: str, status: str) -> set[str]:
    bundle = httpx.get(f"{base}/ConceptMap", params={"url": sdo.ASS_A32}).json()
    cm = bundle["entry"][0]["resource"]
    return {t["code"] for g in cm["group"] for e in g["element"] if e["code"] == status for t in e.get("target", [])}


@pytest.mark.parametrize("body", [{}, {"url": sdo.ASS_A32, "add": [{"source": "45"}]},
                                  {"url": sdo.ASS_A32, "add": "45"}, {"url": "urn:x", "add": []}])
def test_bad_conceptmap_changes_are_refused(simulator: RunningSimulator, body: dict[str, object]) -> None:
    answer = admin(simulator, "POST", "terminology/conceptmaps", body)
    assert answer.status_code == (404 if body.get("url") == "urn:x" else 400), answer.text
    assert "error" in answer.json()
