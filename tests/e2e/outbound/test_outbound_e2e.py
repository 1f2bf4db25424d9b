"""Outbound end to end: a DUI user's change in HAPI reaches ViaTrajectoire through `vtdui run`, once, in order.

Real components only: the session's HAPI JPA server (REST-hook Subscriptions installed by `vtdui setup`), the
ViaTrajectoire simulator (mTLS + OAuth2, fault injection on its admin port), `vtdui run` / `vtdui outbox` /
`vtdui evidence` as subprocesses. The tests of this module share one `vtdui run` process and run in file order.

Which path moves the changes here: `vtdui run` reconciles every 3 s (the ``reconcile_seconds`` fixture), so
a change reaches the outbox through HAPI's Subscription or through the reconciliation, whichever comes first:
these tests check what happens to a change (order, once, faults, kills, refusals), not how it was found. The
Subscription path alone is proven by ``test_subscription_path.py`` (reconciliation at an hour, HAPI's log
checked for failed deliveries); the reconciliation path alone by
``test_reconciliation_catches_a_change_made_while_vtdui_was_down`` below (no delivery reaches that receiver).
"""

from __future__ import annotations

import json
import signal
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from outbound_e2e_helpers import OutboundEnv, ServiceProcess, free_port, inputs_of, status_key, wait_for

from vtdui import sdo
from vtdui.ig_package import IgPackage
from vtdui.outbox import ItemState

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

Env = tuple[OutboundEnv, dict[str, dict[str, Any]]]


def _task(env: OutboundEnv, decision: dict[str, Any], eg: str) -> dict[str, Any]:
    task = env.worklist_task(decision["id_nat_decision"], eg)
    assert task is not None
    return task


def _statuses(env: OutboundEnv, id_nat: str) -> list[tuple[str | None, ...]]:
    return [status_key(r["body"]) for r in env.received(id_nat)]


def _assert_dates_of_the_change(env: OutboundEnv, id_nat: str) -> None:
    """Every status and unit status sent is dated the day of the change (the DUI saved each one today)."""
    today = date.today().isoformat()
    for request in env.received(id_nat):
        values = inputs_of(request["body"])
        if values.get("statutESMS") is not None:
            assert values.get("dateStatutESMS") == today, values
        if values.get("statutUnite") is not None:
            assert values.get("dateStatutUnite") == today, values


def _wait_statuses(env: OutboundEnv, id_nat: str, count: int, timeout: float = 90) -> list[tuple[str | None, ...]]:
    wait_for(lambda: len(env.received(id_nat)) >= count, f"{count} ESMSTask(s) accepted for {id_nat}", timeout)
    return _statuses(env, id_nat)


# -- REM scenarios ---------------------------------------------------------------------------------------


def test_setup_is_idempotent(env: Env) -> None:
    outbound, _ = env
    done = json.loads(outbound.cli("setup", "--json").stdout)
    assert {s["id"].rsplit("-e2e", 1)[0]: (s["status"], s["changed"]) for s in done["subscriptions"]} == {
        "vtdui-consent": ("active", False), "vtdui-worklist-task": ("active", False)}
    assert done["terminology"]["created"] == [] and done["terminology"]["updated"] == []
    assert done["reconciliation_cursors_started"] == []
    assert done["request_ids_kept"] is True  # the launcher's HAPI stores vtdui's request id in meta.source


def test_esat_trial_period_scenario_quick_changes_each_sent_once_in_order(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    id_nat = decisions["trial"]["id_nat_decision"]
    unit = outbound.esat_units[0]["id_unite"]
    task = _task(outbound, decisions["trial"], outbound.esat)
    assert task["businessStatus"]["coding"][0]["code"] == "39"  # the plugin's flux 1 write: never emitted
    # four saves in a row, as fast as a DUI screen can make them
    task = outbound.user_change(task, "41", "152")
    task = outbound.user_change(task, "42", statut_unite="182", id_unite=unit)
    task = outbound.user_change(task, "43", statut_unite="185", id_unite=unit)
    task = outbound.user_change(task, "44", statut_unite="181", motif_unite="84", id_unite=unit)
    expected = [("41", "152", None, None), ("42", None, "182", None), ("43", None, "185", None),
                ("44", None, "181", "84")]
    assert _wait_statuses(outbound, id_nat, 4) == expected
    _assert_dates_of_the_change(outbound, id_nat)
    received = outbound.received(id_nat)
    for request in received:
        assert request["struct_idnat"] == "1" + outbound.esat
        assert [v for v in request["validation"] if v.get("severity") == "error"] == []
        assert request["body"]["status"] == "completed" and request["body"]["intent"] == "plan"
    unit_block = {i["type"]["coding"][0]["code"] for i in received[3]["body"]["input"]}
    assert {"idUnite", "nomUnite", "categorieOrganisation", sdo.MODE_PRISE_CHARGE, "dateStatutUnite"} <= unit_block
    items = outbound.outbox_items(id_nat)
    assert [i.state for i in items] == [ItemState.SENT] * 4
    assert [i.idempotency_key for i in items] == [f"Task/{task['id']}/_history/{v}"
                                                  for v in range(int(task["meta"]["versionId"]) - 3,
                                                                 int(task["meta"]["versionId"]) + 1)]


def test_admission_then_exit_and_a_refusal_with_its_reason(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    unit = outbound.esat_units[0]["id_unite"]
    admission = _task(outbound, decisions["admission"], outbound.esat)
    admission = outbound.user_change(admission, "47", statut_unite="186", id_unite=unit)
    outbound.user_change(admission, "48", statut_unite="188", motif_unite="89", id_unite=unit)
    refusal = _task(outbound, decisions["refusal"], outbound.other_eg)
    outbound.user_change(refusal, "45", "118")
    assert _wait_statuses(outbound, decisions["admission"]["id_nat_decision"], 2) == [
        ("47", None, "186", None), ("48", None, "188", "89")]
    assert _wait_statuses(outbound, decisions["refusal"]["id_nat_decision"], 1) == [("45", "118", None, None)]
    _assert_dates_of_the_change(outbound, decisions["admission"]["id_nat_decision"])
    _assert_dates_of_the_change(outbound, decisions["refusal"]["id_nat_decision"])


def test_a_note_or_the_plugins_own_writes_emit_nothing(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    id_nat = decisions["refusal"]["id_nat_decision"]
    task = _task(outbound, decisions["refusal"], outbound.other_eg)
    task["note"] = [*task.get("note", []), {"text": "rappeler la famille"}]
    outbound.save_task(task)
    wait_for(lambda: running.metrics().get("vtdui_reconcile_passes_total{outcome=\"ok\"}", 0) >= 2,
             "a reconciliation pass after the note")
    assert len(outbound.received(id_nat)) == 1
    assert len(outbound.outbox_items(id_nat)) == 1


# -- consent then evaluation ------------------------------------------------------------------------------


def test_local_consent_is_sent_then_the_evaluation_lands_in_hapi(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    decision = decisions["consent"]
    id_nat = decision["id_nat_decision"]
    task = _task(outbound, decision, outbound.other_eg)
    consent = {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
        "patient": task["for"], "dateTime": "2026-05-11",
        "organization": [{"identifier": {"system": sdo.FINESS_SYSTEM, "value": outbound.other_eg}}],
        "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]},
        "provision": {"data": [{"meaning": "related", "reference": task["focus"]}]},
    }
    with outbound.fhir() as client:
        response = client.post("Consent", json=consent)
        assert response.status_code == 201, response.text
    [sent] = wait_for(lambda: outbound.received(id_nat, "Consent"), "the ESMSConsent at the simulator")
    assert sent["struct_idnat"] == "1" + outbound.other_eg
    assert [v for v in sent["validation"] if v.get("severity") == "error"] == []
    assert sent["body"]["provision"]["data"][0]["reference"]["identifier"] == {"use": "official", "value": id_nat}

    def evaluation() -> list[dict[str, Any]]:
        with outbound.fhir() as client:
            bundle = client.get("DocumentReference",
                                params={"identifier": f"urn:vtdui:source-document|{id_nat}\\|evaluation"}).json()
        return [e["resource"] for e in bundle.get("entry", [])]

    [document] = wait_for(evaluation, "the evaluation (flux 3) in HAPI", timeout=60)
    assert document["meta"]["source"].startswith(sdo.PLUGIN_SOURCE)
    assert len(outbound.received(id_nat, "Consent")) == 1


#: HAPI ships no LOINC: the three codes the IG uses (the same fragment as tests/simulator), so that the required
#: binding of Consent.category is checked instead of failing as an unknown code system.
LOINC_FRAGMENT = {
    "resourceType": "CodeSystem", "id": "vtdui-test-loinc-fragment", "url": "http://loinc.org",
    "meta": {"tag": [{"system": "urn:vtdui:fhir:tag", "code": "test"}]},
    "name": "LOINCFragment", "status": "active", "content": "complete",
    "concept": [{"code": "57830-2", "display": "Admission request Document"},
                {"code": "51848-0", "display": "Evaluation note"},
                {"code": "59284-0", "display": "Consent"}],
}


def test_sent_resources_validate_against_the_official_profiles(official_ig: IgPackage, running: ServiceProcess,
                                                              env: Env) -> None:
    outbound, decisions = env
    _wait_statuses(outbound, decisions["trial"]["id_nat_decision"], 4)
    task = outbound.received(decisions["trial"]["id_nat_decision"])[3]["body"]  # ESMS + complete unit block
    [consent] = outbound.received(decisions["consent"]["id_nat_decision"], "Consent")
    with outbound.fhir() as client:
        response = client.put("CodeSystem/vtdui-test-loinc-fragment", json=LOINC_FRAGMENT)
        assert response.status_code in (200, 201), response.text
        for resource in official_ig.conformance_resources():
            response = client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
            assert response.status_code in (200, 201), response.text
        for body, profile in ((task, sdo.PROFILE_TASK), (consent["body"], sdo.PROFILE_CONSENT)):
            response = client.post(f"{body['resourceType']}/$validate", params={"profile": profile}, json=body,
                                   timeout=300)
            assert response.status_code in (200, 412), response.text
            errors = [f"{i.get('diagnostics')} @ {i.get('expression')}" for i in response.json().get("issue", [])
                      if i.get("severity") in ("error", "fatal")]
            assert errors == [], (profile, errors)


# -- refusal, blocking, retry -------------------------------------------------------------------------------


def test_refusal_fails_the_item_with_a_note_and_holds_back_its_decision_only(running: ServiceProcess,
                                                                             env: Env) -> None:
    outbound, decisions = env
    blocked, other = decisions["blocked"], decisions["other"]
    outbound.fault(route="POST /fhir/Task", status=422, count=1)
    task = outbound.user_change(_task(outbound, blocked, outbound.other_eg), "41", "151")
    first = wait_for(lambda: [i for i in outbound.outbox_items(blocked["id_nat_decision"])
                              if i.state is ItemState.FAILED], "the refused item")[0]
    assert first.outcome and first.outcome["resourceType"] == "OperationOutcome"
    assert "422" in (first.last_error or "")
    noted = wait_for(lambda: [n for n in (outbound.worklist_task(blocked["id_nat_decision"], outbound.other_eg)
                                          or {}).get("note", []) if n.get("authorString") == "vtdui"], "the note")
    assert "ViaTrajectoire" in noted[-1]["text"]
    # a later change of the same decision waits; another decision flows
    fresh = outbound.worklist_task(blocked["id_nat_decision"], outbound.other_eg)
    assert fresh is not None
    outbound.user_change(fresh, "42")
    outbound.user_change(_task(outbound, other, outbound.other_eg), "41", "150")
    assert _wait_statuses(outbound, other["id_nat_decision"], 1) == [("41", "150", None, None)]
    second = wait_for(lambda: [i for i in outbound.outbox_items(blocked["id_nat_decision"]) if i.id != first.id],
                      "the second item of the blocked decision")[0]
    assert second.state is ItemState.PENDING and outbound.received(blocked["id_nat_decision"]) == []
    shown = json.loads(outbound.cli("outbox", "show", str(second.id)).stdout)
    assert shown["blocked_by"] == [first.id]
    # the operator retries after a fix: both go, in order
    outbound.cli("outbox", "retry", str(first.id))
    assert _wait_statuses(outbound, blocked["id_nat_decision"], 2) == [("41", "151", None, None),
                                                                       ("42", None, None, None)]
    assert task["meta"]["versionId"] != fresh["meta"]["versionId"]  # the plugin's note made a version...
    assert len(outbound.outbox_items(blocked["id_nat_decision"])) == 2


def test_5xx_429_and_dropped_connections_are_retried_and_delivered_once(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    id_nat = decisions["faults"]["id_nat_decision"]
    outbound.fault(route="POST /fhir/Task", status=500, count=2)
    outbound.fault(route="POST /fhir/Task", status=503, retry_after=1, count=2)
    outbound.fault(route="POST /fhir/Task", status=429, retry_after=1, count=1)
    outbound.fault(route="POST /fhir/Task", action="drop", count=1)
    outbound.user_change(_task(outbound, decisions["faults"], outbound.other_eg), "41", "153")
    assert _wait_statuses(outbound, id_nat, 1, timeout=120) == [("41", "153", None, None)]
    [item] = outbound.outbox_items(id_nat)
    assert item.state is ItemState.SENT and item.attempts >= 3
    metrics = running.metrics()
    assert metrics['vtdui_emissions_total{flux="4",outcome="retry"}'] >= 2
    # exactly one accepted; the faulted attempts were answered by the injected faults
    assert len(outbound.received(id_nat)) == 1


def test_timeout_is_retried_and_delivered(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    id_nat = decisions["timeout"]["id_nat_decision"]
    # the simulator holds the request 6 s, the client gives up after 4 s: an uncertain delivery, retried
    outbound.fault(route="POST /fhir/Task", action="delay", delay=6, count=1)
    outbound.user_change(_task(outbound, decisions["timeout"], outbound.other_eg), "42")
    [item] = wait_for(lambda: [i for i in outbound.outbox_items(id_nat) if i.state is ItemState.SENT], "delivery", 90)
    assert item.attempts == 2
    time.sleep(3)  # the held request has ended by now
    # the simulator drops a request whose client went away before its body was read, so it is accepted once
    # here; a real server that applied the timed-out POST would hold it twice (at least once, never lost)
    assert _statuses(outbound, id_nat) == [("42", None, None, None)]


# -- crash, reconciliation, shutdown -----------------------------------------------------------------------


def test_sigkill_mid_queue_loses_nothing_after_restart(running: ServiceProcess, env: Env) -> None:
    outbound, decisions = env
    a, b = decisions["kill-a"], decisions["kill-b"]
    # every POST fails (503) while the three changes are queued...
    outbound.fault(route="POST /fhir/Task", status=503, count=10_000)
    task_a = outbound.user_change(_task(outbound, a, outbound.other_eg), "41", "150")
    outbound.user_change(task_a, "42")
    outbound.user_change(_task(outbound, b, outbound.other_eg), "41", "151")
    wait_for(lambda: len(outbound.outbox_items(a["id_nat_decision"])) == 2
             and len(outbound.outbox_items(b["id_nat_decision"])) == 1, "every change queued")
    # ...then the next attempt hangs 3.8 s at the simulator (the client waits 4 s): killed while it is in flight
    outbound.clear_faults()
    outbound.fault(route="POST /fhir/Task", action="delay", delay=3.8, count=1)
    wait_for(lambda: not httpx.get(f"{outbound.sim.admin_url}/faults", timeout=10).json()["faults"],
             "a POST held by the simulator", pause=0.02)
    running.kill()
    in_flight = [i.id for d in (a, b) for i in outbound.outbox_items(d["id_nat_decision"])
                 if i.state is ItemState.SENDING]
    outbound.clear_faults()
    running.start()
    statuses_a = _wait_statuses(outbound, a["id_nat_decision"], 2)
    statuses_b = _wait_statuses(outbound, b["id_nat_decision"], 1)
    # the item in flight at the kill was still 'sending': the restarted process recovers it (its worker is dead)
    # and sends it again. At least once: had the server applied the interrupted POST, it would hold it twice
    # (the simulator drops a request whose client left before its body was read); collapsing such a duplicate
    # gives each change once, in order
    collapsed = [s for i, s in enumerate(statuses_a) if i == 0 or s != statuses_a[i - 1]]
    assert collapsed == [("41", "150", None, None), ("42", None, None, None)]
    assert len(statuses_a) <= 3
    assert statuses_b == [("41", "151", None, None)]
    assert all(i.state is ItemState.SENT for i in outbound.outbox_items(a["id_nat_decision"]))
    assert in_flight, "the kill did not happen while a POST was in flight (the test proved less than it should)"


def test_reconciliation_catches_a_change_made_while_vtdui_was_down(running: ServiceProcess, env: Env,
                                                                   hapi: Any) -> None:
    outbound, decisions = env
    decision = decisions["reconcile"]
    assert running.stop(signal.SIGTERM) == 0  # clean shutdown
    outbound.user_change(_task(outbound, decision, outbound.other_eg), "41", "152")
    # restarted on another port: HAPI's deliveries (and its retries) go to the old one and fail, as when HAPI
    # gave up; only the reconciliation can find the change
    running.start("--port", str(free_port(hapi.bind_host)))
    try:
        assert _wait_statuses(outbound, decision["id_nat_decision"], 1) == [("41", "152", None, None)]
        [item] = outbound.outbox_items(decision["id_nat_decision"])
        assert item.origin["via"] == "reconciliation" and item.state is ItemState.SENT
        metrics = running.metrics()
        assert metrics["vtdui_reconcile_items_total"] >= 1 and metrics["vtdui_hook_deliveries_total"] == 0
    finally:
        assert running.stop() == 0  # the next test starts it on the port the Subscriptions call


def test_metrics_and_health(running: ServiceProcess, env: Env) -> None:
    # a restarted service polls each establishment in its own slot of the interval; --poll-now: all at once
    running.stop()
    running.start("--poll-now")
    health = httpx.get(f"{running.url}/health", timeout=10).json()
    assert health["status"] == "ok" and set(health["loops"]) == {"worker", "reconcile", "sync"}
    metrics = wait_for(lambda: (m := running.metrics()).get('vtdui_sync_cycles_total{outcome="ok"}') and m,
                       "an inbound cycle of this process")
    for name in ('vtdui_outbox_items{state="sent"}', 'vtdui_outbox_items{state="failed"}',
                 "vtdui_outbox_oldest_unsent_age_seconds", "vtdui_quarantined_documents",
                 'vtdui_sync_cycles_total{outcome="ok"}'):
        assert name in metrics, name
    assert metrics['vtdui_outbox_items{state="sent"}'] >= 10
    assert any(k.startswith("vtdui_sync_last_success_age_seconds{finess_eg=") for k in metrics)
    assert any(k.startswith("vtdui_viatrajectoire_request_duration_seconds_count{kind=\"fhir\"") for k in metrics)
    # the certificate of every legal entity, and the access token once one was fetched, with their time left
    certificates = {k: v for k, v in metrics.items() if k.startswith("vtdui_client_certificate_expiry_seconds{")}
    assert certificates and all(v > 86400 for v in certificates.values()), certificates
    tokens = {k: v for k, v in metrics.items() if k.startswith("vtdui_token_expires_in_seconds{")}
    assert tokens and all(0 < v <= 3600 for v in tokens.values()), tokens
    wrong = httpx.put(f"{running.url}/vtdui/hook/Task/x", json={"resourceType": "Task", "id": "x"}, timeout=10)
    assert wrong.status_code == 401


def test_once_dry_run_and_evidence(running: ServiceProcess, env: Env, tmp_path: Path) -> None:
    outbound, decisions = env
    decision = decisions["dry-run"]
    assert running.stop() == 0
    outbound.user_change(_task(outbound, decision, outbound.other_eg), "41", "153")
    outbound.fault(route="POST /fhir/Task", status=503, count=1000)
    once = outbound.cli("run", "--once", "--no-sync", "--json", check=False)
    summary = json.loads(once.stdout)
    [item] = outbound.outbox_items(decision["id_nat_decision"])
    assert item.state is ItemState.PENDING and item.id in summary["delivery"]["rescheduled"]
    outbound.clear_faults()
    dry = outbound.cli("outbox", "run", "--dry-run")
    assert "POST " in dry.stdout and f"struct_idnat: 1{outbound.other_eg}" in dry.stdout
    assert "Authorization: Bearer ***" in dry.stdout
    assert outbound.received(decision["id_nat_decision"]) == []
    outbound.cli("outbox", "run")
    assert _statuses(outbound, decision["id_nat_decision"]) == [("41", "153", None, None)]

    out = tmp_path / "evidence"
    outbound.cli("evidence", str(out), "--all")
    index = json.loads((out / "index.json").read_text())
    tasks = [e for e in index["items"] if e["flux"] == "4" and e["state"] == "sent"]
    consents = [e for e in index["items"] if e["flux"] == "2"]
    assert len(tasks) >= 10 and len(consents) == 1
    text = "\n".join(p.read_text() for p in out.iterdir())
    assert outbound.client_secret not in text and outbound.secret not in text
    assert "Bearer " not in text and '"***"' in text
    sent = json.loads((out / tasks[0]["file"]).read_text())
    trace = json.loads((out / tasks[0]["trace"]).read_text())
    assert sent["resourceType"] == "Task" and trace["exchanges"][-1]["response"]["status"] == 201
    assert trace["exchanges"][-1]["request"]["body"] == sent
