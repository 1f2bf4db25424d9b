"""Issue 4 end to end: ViaTrajectoire (simulator, mTLS + OAuth2) → sync engine → the DUI's work list in HAPI.

Real components only: the simulator over HTTPS with client certificates, the session's HAPI JPA server,
the plugin's SQLite state, the built-in mapping plugin. The module's back-fill (``backfill`` fixture) syncs
about 500 decisions notified over J-30 to three establishments (one ESAT); each later test creates its own
decisions or events on the simulator's admin (MDPH) port and runs a cycle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from inbound_helpers import (
    Backfill,
    InboundEnv,
    admin,
    by_ids,
    cda_of,
    decisions_basic,
    event,
    history_mark,
    new_decisions,
    serve_raw_cda,
    source_documents,
    versions_since,
    worklist_ids,
)

from vtdui import hookimpl, sdo
from vtdui.changes import is_own_write
from vtdui.config import load_config
from vtdui.mapping import systems, worklist
from vtdui.plugins import get_plugin_manager
from vtdui.runtime import Runtime
from vtdui.sync import SyncReport

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

VTDUI = str(Path(sys.executable).with_name("vtdui"))


def _cursors(runtime: Runtime) -> dict[tuple[str, str], datetime]:
    return {(c.finess_eg, c.flux): c.instant for c in runtime.state.cursors()}


def _item(runtime: Runtime, id_nat: str, eg: str) -> dict[str, Any]:
    task = runtime.store.worklist_item(id_nat, eg)
    assert task is not None, f"no work-list item for {id_nat} in {eg}"
    return task


def _by_eg(report: SyncReport) -> dict[str, Any]:
    return {r.finess_eg: r for r in report.establishments}


# -- flux 1: the back-fill ----------------------------------------------------------------------------------


def test_backfill_puts_every_decision_once_in_the_work_list(backfill: Backfill, runtime: Runtime,
                                                            inbound_env: InboundEnv) -> None:
    report = backfill.report
    assert report.ok, [r.errors for r in report.establishments]
    expected = backfill.expected
    decisions_total = set().union(*expected.values())
    assert len(decisions_total) >= 500
    assert report.total("quarantined") == 0
    assert report.total("decisions_stored") >= sum(len(v) for v in expected.values())

    tasks_by_eg = {eg: runtime.store.worklist(finess_eg=eg, business_status="39") for eg in inbound_env.egs}
    for eg, tasks in tasks_by_eg.items():
        ids = worklist_ids(tasks)
        assert len(ids) == len(set(ids)), f"a decision has two work-list items in {eg}"
        assert expected[eg] <= set(ids), f"{len(expected[eg] - set(ids))} decisions missing in {eg}"
        assert not set(ids) & backfill.before_window[eg], "a decision older than J-30 was fetched"
        for task in tasks:
            assert worklist.business_status(task) == sdo.STATUS_NOTIFICATION_SENT
            assert worklist.id_nat_struct(task) == sdo.id_nat_struct(eg)
            assert task["meta"]["source"].startswith(sdo.PLUGIN_SOURCE)
            assert is_own_write(task), task["meta"]["source"]  # vtdui's request id as HAPI stored it: no echo
    assert tasks_by_eg.get(inbound_env.esat)

    tasks = [t for group in tasks_by_eg.values() for t in group if worklist.id_nat_decision(t) in decisions_total]
    patients = by_ids(runtime.store, "Patient", {t["for"]["reference"].split("/")[1] for t in tasks})
    basics = by_ids(runtime.store, "Basic", {t["focus"]["reference"].split("/")[1] for t in tasks})
    for task in tasks:
        assert task["for"]["reference"].split("/")[1] in patients
        assert task["focus"]["reference"].split("/")[1] in basics
    # one Basic per decision, carrying idNat_Decision (TDDUI system) and the MDPH's idDecision
    stored_basics = decisions_basic(runtime.store, decisions_total)
    assert set(stored_basics) == decisions_total
    assert all(len(found) == 1 for found in stored_basics.values())
    # the raw CDA is kept, byte for byte, and the person carries the INS of the CDA
    documents = source_documents(runtime.store, decisions_total)
    assert set(documents) == decisions_total
    state = inbound_env.sim.context.state
    for id_nat in decisions_total:
        assert cda_of(documents[id_nat]) == state.decisions[id_nat].decision_cda()
    with_ins = 0
    for task in tasks:
        person = state.decisions[worklist.id_nat_decision(task) or ""].sim.person
        patient = patients[task["for"]["reference"].split("/")[1]]
        systems_of = {i.get("system"): i.get("value") for i in patient["identifier"]}
        if person.ins_nir:
            assert systems_of.get(sdo.INS_NIR_SYSTEM) == person.ins_nir
            with_ins += 1
    assert with_ins > 0


def test_stored_resources_validate_against_base_r4(backfill: Backfill, runtime: Runtime,
                                                    inbound_env: InboundEnv) -> None:
    eg = inbound_env.esat
    task = runtime.store.worklist(finess_eg=eg)[0]
    id_nat = worklist.id_nat_decision(task) or ""
    resources = [task,
                 runtime.store.read("Patient", task["for"]["reference"].split("/")[1]),
                 runtime.store.read("Basic", task["focus"]["reference"].split("/")[1]),
                 runtime.store.read("Organization", task["owner"]["reference"].split("/")[1]),
                 source_documents(runtime.store, [id_nat])[id_nat],
                 *runtime.store.search("ServiceRequest",
                                       {"identifier": f"{systems.DEMANDE_ORIENTATION_SYSTEM}|{id_nat}"})]
    assert len(resources) == 6
    for resource in resources:
        assert resource is not None
        response = httpx.post(f"{inbound_env.hapi_base_url}/{resource['resourceType']}/$validate", json=resource,
                              headers={"Content-Type": "application/fhir+json"}, timeout=60)
        errors = [i for i in response.json().get("issue", []) if i.get("severity") in ("error", "fatal")]
        assert not errors, (resource["resourceType"], errors)


def test_second_sync_writes_nothing(backfill: Backfill, runtime: Runtime, inbound_env: InboundEnv) -> None:
    mark = history_mark(inbound_env.hapi_base_url)
    report = runtime.sync.run_once()
    assert report.ok and report.total("decisions_stored") == 0
    assert versions_since(inbound_env.hapi_base_url, mark) == []


def test_replay_from_lost_state_creates_no_new_versions(backfill: Backfill, inbound_env: InboundEnv,
                                                        tmp_path: Path) -> None:
    """With its state lost, the DUI re-reads everything since J-30: HAPI must not get a single new version."""
    config = load_config(inbound_env.config_path)
    from dataclasses import replace

    fresh = replace(config, state_dir=tmp_path / "fresh-state")
    mark = history_mark(inbound_env.hapi_base_url)
    with Runtime(fresh, pm=get_plugin_manager(None, load_entrypoints=False)) as replay:
        report = replay.sync.run_once()
    assert report.ok
    assert report.total("decisions_stored") >= sum(len(v) for v in backfill.expected.values())
    assert versions_since(inbound_env.hapi_base_url, mark) == []


def test_updated_decision_updates_in_place(backfill: Backfill, runtime: Runtime, inbound_env: InboundEnv) -> None:
    a, b = inbound_env.egs[1], inbound_env.egs[2]
    decision = new_decisions(inbound_env.sim, [a, b])[0]
    id_nat = decision["id_nat_decision"]
    runtime.sync.run_once()
    task_a, task_b = _item(runtime, id_nat, a), _item(runtime, id_nat, b)
    doc = source_documents(runtime.store, [id_nat])[id_nat]
    basic = decisions_basic(runtime.store, [id_nat])[id_nat][0]

    updated = admin(inbound_env.sim, "POST", f"decisions/{id_nat}/update").json()
    assert updated["version"] == 2
    mark = history_mark(inbound_env.hapi_base_url)
    report = runtime.sync.run_once()
    written = versions_since(inbound_env.hapi_base_url, mark)
    assert f"DocumentReference/{doc['id']}/_history/{int(doc['meta']['versionId']) + 1}" in written
    assert not [v for v in written if v.startswith(("Task/", "Patient/", "Organization/"))], written
    assert report.ok
    assert {r.finess_eg: r.decisions_stored for r in report.establishments if r.decisions_stored} == {a: 1, b: 1}

    doc2 = source_documents(runtime.store, [id_nat])[id_nat]
    assert doc2["id"] == doc["id"] and int(doc2["meta"]["versionId"]) == int(doc["meta"]["versionId"]) + 1
    assert cda_of(doc2) == inbound_env.sim.context.state.decisions[id_nat].decision_cda()
    assert cda_of(doc2) != cda_of(doc)
    assert doc2["relatesTo"][0]["code"] == "replaces"  # lineage of the CDA versions
    assert len(runtime.store.history("DocumentReference", doc["id"])) == 2
    basics = decisions_basic(runtime.store, [id_nat])[id_nat]
    assert [x["id"] for x in basics] == [basic["id"]]
    # the work-list items are the same resources, untouched (their status belongs to the DUI's users)
    assert _item(runtime, id_nat, a)["meta"]["versionId"] == task_a["meta"]["versionId"]
    assert _item(runtime, id_nat, b)["id"] == task_b["id"]
    patients = runtime.store.search("Patient", {"_id": task_a["for"]["reference"].split("/")[1]})
    assert len(patients) == 1


# -- flux 5 ---------------------------------------------------------------------------------------------------


def test_flux5_statuses_are_applied_to_the_work_list(backfill: Backfill, runtime: Runtime,
                                                      inbound_env: InboundEnv) -> None:
    a, b = inbound_env.egs[1], inbound_env.egs[2]
    shared = new_decisions(inbound_env.sim, [a, b])[0]["id_nat_decision"]
    cancelled = new_decisions(inbound_env.sim, [a])[0]["id_nat_decision"]
    runtime.sync.run_once()

    event(inbound_env.sim, source="esms", finess_eg=b, id_nat_decision=shared, statut_esms="43")
    establishment_b = inbound_env.sim.context.state.establishment(b)
    assert establishment_b is not None and establishment_b.units
    unit = establishment_b.units[0]
    event(inbound_env.sim, source="esms", finess_eg=b, id_nat_decision=shared, id_unite=unit.id_unite,
          statut_unite="185")
    event(inbound_env.sim, source="mdph", finess_eg=a, id_nat_decision=shared, statut_esms="46",
          motif_esms="114", description="Refus entériné par la CDAPH")
    event(inbound_env.sim, source="mdph", id_nat_decision=cancelled, statut_esms="37", motif_esms="173",
          description="Décision remplacée")
    report = runtime.sync.run_once()
    assert report.ok
    assert _by_eg(report)[a].statuses_received == 4

    item = _item(runtime, shared, a)
    assert worklist.business_status(item) == "46"
    assert worklist.status_reason(item) == "114"
    assert item["status"] == "rejected"
    assert any(n["text"] == "Refus entériné par la CDAPH" for n in item["note"])
    others = [r for r in worklist.remote_statuses(item) if r["idNat_Struct"] == sdo.id_nat_struct(b)]
    # another establishment's trial period, ESMS level and unit level, shown without changing our status
    assert sorted(r.get("statutESMS") or r.get("statutUnite") for r in others) == ["185", "43"]
    assert all(r["applied"] is False for r in others)
    assert next(r for r in others if r.get("statutUnite"))["nomUnite"] == unit.nom_unite
    # B sees neither its own status read back nor A's MDPH event
    assert worklist.business_status(_item(runtime, shared, b)) == "39"
    gone = _item(runtime, cancelled, a)
    assert worklist.business_status(gone) == "37" and gone["status"] == "cancelled"

    event(inbound_env.sim, source="mdph", finess_eg=a, id_nat_decision=shared, statut_esms="54", motif_esms="112")
    runtime.sync.run_once()
    item = _item(runtime, shared, a)
    assert worklist.business_status(item) == "54" and item["status"] == "requested"
    version = item["meta"]["versionId"]
    runtime.sync.run_once()  # nothing new: the item is not written again
    assert _item(runtime, shared, a)["meta"]["versionId"] == version


class _UserSavesMeanwhile:
    """A DUI user saves the work-list item between the plugin's read and its guarded write (once)."""

    def __init__(self, hapi_base_url: str) -> None:
        self.hapi_base_url = hapi_base_url
        self.done = False

    @hookimpl
    def before_store(self, entries: list[dict[str, Any]], context: Any) -> None:
        task = context.worklist_task
        if self.done or task is None:
            return
        self.done = True
        edited = {k: v for k, v in task.items() if k != "meta"}
        edited["note"] = [*task.get("note", []), {"text": "appelé la famille"}]
        saved = httpx.put(f"{self.hapi_base_url}/Task/{task['id']}", json=edited, timeout=30,
                          headers={"Content-Type": "application/fhir+json",
                                   "If-Match": f'W/"{task["meta"]["versionId"]}"'})
        assert saved.status_code == 200, saved.text


def test_flux5_status_meets_a_concurrent_user_save_and_is_applied_on_the_new_version(
        backfill: Backfill, runtime: Runtime, inbound_env: InboundEnv) -> None:
    eg = inbound_env.egs[1]
    id_nat = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    runtime.sync.run_once()
    event(inbound_env.sim, source="mdph", finess_eg=eg, id_nat_decision=id_nat, statut_esms="49",
          motif_esms="109", description="Déménagement")
    user = _UserSavesMeanwhile(inbound_env.hapi_base_url)
    runtime.pm.register(user, name="test-user-saves-meanwhile")
    try:
        report = runtime.sync.run_once()
    finally:
        runtime.pm.unregister(user)
    assert user.done and report.ok
    item = _item(runtime, id_nat, eg)
    assert worklist.business_status(item) == "49"  # the MDPH event, applied on the user's version
    assert any(n.get("text") == "appelé la famille" for n in item["note"])  # and the user's edit kept
    assert not [q for q in runtime.state.quarantined() if q.flux == "5"]


def test_status_read_before_its_decision_waits_for_it(backfill: Backfill, runtime: Runtime,
                                                       inbound_env: InboundEnv) -> None:
    eg = inbound_env.egs[0]
    id_nat = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    event(inbound_env.sim, source="mdph", finess_eg=eg, id_nat_decision=id_nat, statut_esms="49",
          motif_esms="109", description="Déménagement")
    # flux 1 fails this cycle (ViaTrajectoire answers 503 to every DocumentReference search): flux 5 still runs
    fault = admin(inbound_env.sim, "POST", "faults",
                  {"route": "GET /fhir/DocumentReference", "status": 503, "count": 20})
    assert fault.status_code == 201, fault.text
    try:
        report = runtime.sync.run_once([eg])
    finally:
        admin(inbound_env.sim, "DELETE", "faults")
    mine = _by_eg(report)[eg]
    assert any(e.startswith("flux 1") for e in mine.errors)
    assert mine.statuses_received == 1 and mine.statuses_waiting >= 1
    assert runtime.store.worklist_item(id_nat, eg) is None
    done = subprocess.run([VTDUI, "status", "--config", str(inbound_env.config_path), "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["statuses_waiting"][eg] >= 1

    report = runtime.sync.run_once([eg])
    assert report.ok
    item = _item(runtime, id_nat, eg)
    assert worklist.business_status(item) == "49"  # the latest known status, not 39
    assert item["status"] == "cancelled"


# -- flux 3 ---------------------------------------------------------------------------------------------------


def test_evaluation_fetched_after_consent_and_again_after_update(backfill: Backfill, runtime: Runtime,
                                                                 inbound_env: InboundEnv) -> None:
    eg = inbound_env.esat
    id_nat = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    report = runtime.sync.run_once([eg])
    assert report.total("evaluations_stored") == 0
    assert source_documents(runtime.store, [id_nat], "evaluation") == {}

    entity, _ = runtime.config.establishment(eg)
    consent = {
        "resourceType": "Consent",
        "meta": {"profile": [sdo.PROFILE_CONSENT], "source": sdo.id_nat_struct(eg)},
        "status": "active",
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
        "dateTime": datetime.now(UTC).date().isoformat(),
        "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]},
        "provision": {"data": [{"meaning": "related",
                                "reference": {"identifier": {"use": "official", "value": id_nat}}}]},
    }
    created = runtime.client_for(entity).post_consent(eg, consent)  # flux 2, as the outbound side does
    assert created.status == 201
    runtime.state.record_consent(id_nat, eg)

    report = runtime.sync.run_once([eg])
    assert report.ok and report.total("evaluations_stored") == 1
    doc = source_documents(runtime.store, [id_nat], "evaluation")[id_nat]
    assert doc["type"]["coding"][0]["code"] == sdo.TYPE_EVALUATION
    assert cda_of(doc) == inbound_env.sim.context.state.decisions[id_nat].evaluation_cda()
    assert doc["context"]["related"][0]["reference"].startswith("Basic/")
    observations = runtime.store.search("Observation", {"derived-from": f"DocumentReference/{doc['id']}"})
    assert observations

    assert runtime.sync.run_once([eg]).total("evaluations_stored") == 0  # fetched once
    admin(inbound_env.sim, "POST", f"decisions/{id_nat}/update")
    report = runtime.sync.run_once([eg])
    assert report.total("evaluations_stored") == 1  # the decision changed: the evaluation is fetched again
    doc2 = source_documents(runtime.store, [id_nat], "evaluation")[id_nat]
    assert doc2["id"] == doc["id"] and cda_of(doc2) == inbound_env.sim.context.state.decisions[id_nat].evaluation_cda()


# -- bad input ------------------------------------------------------------------------------------------------

XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
       b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>')
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']>\n<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>')


def test_hostile_documents_are_quarantined_and_the_batch_lands(backfill: Backfill, runtime: Runtime,
                                                                inbound_env: InboundEnv) -> None:
    eg = inbound_env.egs[2]
    created = [d["id_nat_decision"] for d in new_decisions(inbound_env.sim, [eg], count=7)]
    xxe, laughs, wrong, huge, latin, anonymous, *good = created
    state = inbound_env.sim.context.state
    serve_raw_cda(inbound_env.sim, xxe, XXE)
    serve_raw_cda(inbound_env.sim, laughs, LAUGHS)
    serve_raw_cda(inbound_env.sim, wrong, state.decisions[wrong].evaluation_cda())  # an evaluation, not a decision
    serve_raw_cda(inbound_env.sim, huge, state.decisions[huge].decision_cda().replace(
        b"</ClinicalDocument>", b"<!--" + b"x" * (10 * 1024 * 1024) + b"--></ClinicalDocument>"))
    no_set_id = re.sub(rb"<setId [^>]*/>", b"", state.decisions[anonymous].decision_cda())  # no idNat_Decision
    assert b"setId" not in no_set_id
    serve_raw_cda(inbound_env.sim, anonymous, no_set_id)
    serve_raw_cda(inbound_env.sim, latin, b'<?xml version="1.0" encoding="UTF-16"?>' + state.decisions[latin]
                  .decision_cda().split(b"?>", 1)[1])

    report = runtime.sync.run_once([eg])
    mine = _by_eg(report)[eg]
    assert report.ok, mine.errors
    assert mine.quarantined == 6 and mine.decisions_stored == 1
    assert runtime.store.worklist_item(good[0], eg) is not None
    for id_nat in (xxe, laughs, wrong, huge, latin, anonymous):
        assert runtime.store.worklist_item(id_nat, eg) is None

    done = subprocess.run([VTDUI, "status", "--config", str(inbound_env.config_path), "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    quarantined = {q["key"].split("@")[0]: q for q in json.loads(done.stdout)["quarantined"]}
    reasons = {vt: q["reason"] for vt, q in quarantined.items()}
    docref = {n: state.decisions[n].docref_id for n in (xxe, laughs, wrong, huge, latin, anonymous)}
    assert reasons[docref[xxe]] == "dtd-forbidden"
    assert reasons[docref[laughs]] == "dtd-forbidden"
    assert reasons[docref[wrong]] == "wrong-template"
    assert reasons[docref[huge]] == "too-large"
    assert reasons[docref[latin]] == "encoding"
    assert reasons[docref[anonymous]] == "missing-identifier"
    for vt in docref.values():
        assert quarantined[vt]["message"] and quarantined[vt]["finess_eg"] == eg
        path = Path(quarantined[vt]["path"])
        assert path.is_file() and (path.stat().st_mode & 0o077) == 0  # kept for inspection, owner only

    # retried on the next cycle (still bad: attempts counted), repaired by a new version
    admin(inbound_env.sim, "POST", f"decisions/{wrong}/update")
    report = runtime.sync.run_once([eg])
    assert _by_eg(report)[eg].quarantined == 5 and _by_eg(report)[eg].decisions_stored == 1
    assert runtime.store.worklist_item(wrong, eg) is not None
    left = {q.vt_id: q for q in runtime.state.quarantined() if q.finess_eg == eg}
    assert docref[wrong] not in left and left[docref[xxe]].attempts == 2


# -- faults ---------------------------------------------------------------------------------------------------


def test_unreachable_viatrajectoire_moves_no_cursor(backfill: Backfill, runtime: Runtime,
                                                     inbound_env: InboundEnv) -> None:
    eg = inbound_env.egs[0]
    id_nat = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    before = _cursors(runtime)
    admin(inbound_env.sim, "POST", "faults", {"route": "*", "action": "drop", "count": 500})
    try:
        report = runtime.sync.run_once()
    finally:
        admin(inbound_env.sim, "DELETE", "faults")
    assert not report.ok
    for r in report.establishments:
        assert r.errors and all("gave up after" in e or "unreachable" in e.lower() or "connection" in e.lower()
                                for e in r.errors), r.errors
    assert _cursors(runtime) == before
    assert runtime.store.worklist_item(id_nat, eg) is None
    report = runtime.sync.run_once()
    assert report.ok
    assert runtime.store.worklist_item(id_nat, eg) is not None


def test_expired_token_is_renewed_and_a_refused_one_moves_no_cursor(backfill: Backfill, runtime: Runtime,
                                                                     inbound_env: InboundEnv) -> None:
    eg = inbound_env.egs[0]
    first = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    admin(inbound_env.sim, "POST", "tokens/expire")
    assert runtime.sync.run_once([eg]).ok  # one 401, a new token, the cycle completes
    assert runtime.store.worklist_item(first, eg) is not None

    second = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    before = _cursors(runtime)
    admin(inbound_env.sim, "POST", "faults", {"route": "* /fhir/*", "action": "expire-token", "count": 500})
    try:
        report = runtime.sync.run_once([eg])
    finally:
        admin(inbound_env.sim, "DELETE", "faults")
    errors = _by_eg(report)[eg].errors
    assert errors and all("401 even with a fresh token" in e for e in errors), errors
    assert _cursors(runtime) == before
    assert runtime.store.worklist_item(second, eg) is None
    assert runtime.sync.run_once([eg]).ok
    assert runtime.store.worklist_item(second, eg) is not None


# -- windows ----------------------------------------------------------------------------------------------------


def _searches(sim: Any, since: int, path: str) -> list[str]:
    found = admin(sim, "GET", f"received?since={since}").json()["requests"]
    return [r["query"] for r in found if r["method"] == "GET" and r["path"] == path and "_lastUpdated" in r["query"]]


def test_j30_then_cursor_minus_overlap_with_dedupe(backfill: Backfill, runtime: Runtime,
                                                   inbound_env: InboundEnv) -> None:
    eg = inbound_env.egs[1]
    cursor = _cursors(runtime)[(eg, "1")]
    assert cursor > backfill.at - timedelta(minutes=1)  # the window of the back-fill closed at its end
    # a decision notified just before: listed again by the overlap, but not stored twice
    recent = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    assert runtime.sync.run_once([eg]).total("decisions_stored") == 1
    mark = len(admin(inbound_env.sim, "GET", "received").json()["requests"])
    newer = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    report = runtime.sync.run_once([eg])
    mine = _by_eg(report)[eg]
    assert mine.decisions_stored == 1 and mine.decisions_unchanged >= 1  # ``recent`` deduped, ``newer`` stored
    assert runtime.store.worklist_item(recent, eg) is not None and runtime.store.worklist_item(newer, eg)
    queries = _searches(inbound_env.sim, mark, "/fhir/DocumentReference")
    assert queries, "no flux 1.1 search recorded"
    bound = queries[-1].split("_lastUpdated=gt")[1].split("&")[0].replace("%2B", "+").replace("%3A", ":")
    since = datetime.fromisoformat(bound)
    overlap = timedelta(seconds=runtime.config.sync.overlap_seconds)
    assert abs((_cursors(runtime)[(eg, "1")] - since) - overlap) < timedelta(minutes=2)
    assert since > datetime.now(UTC) - timedelta(days=1)  # J-1 nominal, never J-30 again


# -- the command line ---------------------------------------------------------------------------------------------


def test_cli_sync_json(backfill: Backfill, runtime: Runtime, inbound_env: InboundEnv) -> None:
    eg = inbound_env.esat
    id_nat = new_decisions(inbound_env.sim, [eg])[0]["id_nat_decision"]
    env = {**os.environ, "VTDUI_PLUGINS": ""}
    done = subprocess.run([VTDUI, "sync", "--once", "--config", str(inbound_env.config_path), "--json",
                           "--establishment", eg], capture_output=True, text=True, timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] is True
    assert [e["finess_eg"] for e in summary["establishments"]] == [eg]
    assert summary["establishments"][0]["decisions_stored"] == 1
    assert runtime.store.worklist_item(id_nat, eg) is not None
