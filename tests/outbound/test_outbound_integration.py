"""End to end, nothing mocked: a FHIR PUT in the real HAPI server reaches the real ViaTrajectoire simulator.

HAPI's REST-hook Subscription calls our receiver, which queues the ESMSTask in the outbox; the worker
sends it over mTLS + OAuth2; the simulator validates and stores it (``GET /_admin/received``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui import builders, sdo
from vtdui.config import Config, load_config
from vtdui.emit import Emitter
from vtdui.outbox import ItemState, Outbox
from vtdui.plugins import get_plugin_manager
from vtdui.receiver import create_app, install_subscriptions, subscription_templates
from vtdui.reconcile import Reconciler
from vtdui.state import StateStore
from vtdui.store import HapiStore
from vtdui.viatrajectoire.client import ViaTrajectoireClient

pytestmark = [pytest.mark.integration, pytest.mark.simulator]


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.25)


class Stack:
    def __init__(self, config: Config, store: HapiStore, outbox: Outbox, state: StateStore, emitter: Emitter,
                 sim: Any) -> None:
        self.config, self.store, self.outbox, self.state, self.emitter, self.sim = (
            config, store, outbox, state, emitter, sim)

    def received_tasks(self, id_nat: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.sim.admin_url}/received", timeout=30).json()
        def about(request: dict[str, Any]) -> bool:
            inputs = (request["body"] or {}).get("input", [])
            return any(i.get("valueIdentifier", {}).get("value") == id_nat for i in inputs)

        return [r for r in body["requests"] if r["method"] == "POST" and r["path"].endswith("/Task") and about(r)]


@pytest.fixture
def stack(hapi: Any, vt_simulator: Any, tmp_path: Path, http_server: Any) -> Iterator[Stack]:
    config = load_config(vt_simulator.config_path, env={"FHIR_BASE_URL": hapi.base_url})
    store = HapiStore(hapi.base_url)
    state = StateStore(tmp_path / "state")
    outbox = Outbox.open(tmp_path / "state", config.retry)
    pm = get_plugin_manager(None, load_entrypoints=False)
    if not pm.is_registered(builders):
        pm.register(builders, name="builtin:vtdui.builders")
    clients: dict[str, ViaTrajectoireClient] = {}

    def client_for(entity: Any) -> ViaTrajectoireClient:
        if entity.finess_ej not in clients:
            clients[entity.finess_ej] = ViaTrajectoireClient(config.viatrajectoire, entity, config.retry)
        return clients[entity.finess_ej]

    emitter = Emitter(config, outbox, client_for, pm, store, state)
    secret = secrets.token_urlsafe(24)
    # Subscription ids of this test only: HAPI 8.8 may leave the delivery channel of a Subscription turned off
    # (or deleted) while deliveries are queued closed for good, so an id is never reused by another test.
    templates = [{**t, "id": f"{t['id']}-{uuid.uuid4().hex[:8]}"} for t in subscription_templates()]
    with http_server(create_app(emitter, secret), host=hapi.bind_host) as base:
        endpoint = base.replace(hapi.bind_host, hapi.callback_host, 1) + "/vtdui/hook"
        install_subscriptions(store, endpoint, secret, templates=templates)
        try:
            yield Stack(config, store, outbox, state, emitter, vt_simulator)
        finally:
            # turned off while the receiver still answers: an active Subscription would call a closed receiver
            for template in templates:
                current = store.read("Subscription", str(template["id"]))
                if current is not None:
                    store.update({**current, "status": "off"})
    for client in clients.values():
        client.close()
    outbox.close()
    state.close()
    store.close()


def _worklist_task(task_id: str, finess_eg: str, decision: dict[str, Any], *, statut: str, motif: str | None,
                   source: str | None = None) -> dict[str, Any]:
    id_nat = decision["id_nat_decision"]
    task: dict[str, Any] = {
        "resourceType": "Task", "id": task_id, "status": "in-progress", "intent": "order",
        "meta": {"tag": [{"system": "urn:vtdui:test", "code": "outbound"}]},
        "identifier": [{"system": "urn:vtdui:worklist", "value": f"{id_nat}|{finess_eg}"}],
        "code": {"coding": [{"system": "urn:vtdui:task-kind", "code": "worklist-item"}]},
        "owner": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1" + finess_eg}},
        "businessStatus": {"coding": [{"system": sdo.TRE_R357, "code": statut}]},
        "input": [
            {"type": sdo.input_type(sdo.ID_DECISION), "valueIdentifier": {"value": decision["id_decision"]}},
            {"type": sdo.input_type(sdo.ID_NAT_DECISION), "valueIdentifier": {"value": id_nat}},
        ],
    }
    if motif:
        task["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": motif}]}
    if source:
        task["meta"]["source"] = source
    return task


def _new_decision(sim: Any, finess_eg: str) -> dict[str, Any]:
    response = httpx.post(f"{sim.admin_url}/decisions", json={"notified_to": [finess_eg]}, timeout=30)
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()["decisions"][0]
    return decision


def test_plain_put_of_a_worklist_task_sends_exactly_one_esms_task(stack: Stack, fhir: httpx.Client) -> None:
    _, establishment = stack.config.establishments()[0]
    eg = establishment.finess_eg
    decision = _new_decision(stack.sim, eg)
    task_id = f"wl-{uuid.uuid4().hex[:12]}"

    # the plugin's own write (flux 1 notification, status 39, written through HapiStore) is not emitted...
    own = _worklist_task(task_id, eg, decision, statut="39", motif=None, source=sdo.PLUGIN_SOURCE)
    written = stack.store.update(own)
    assert written["meta"]["source"].partition("#")[2].startswith("vtdui-")
    assert stack.store.request_ids_kept is True  # HAPI stored vtdui's request id: the mark of its own write
    # ...the user's change (41 + 152) is
    user = _worklist_task(task_id, eg, decision, statut="41", motif="152")
    response = fhir.put(f"Task/{task_id}", json=user)
    assert response.status_code == 200, response.text
    version = response.json()["meta"]["versionId"]

    key = f"Task/{task_id}/_history/{version}"
    item = _wait_for(lambda: stack.outbox.backend.get_by_key(key), f"the outbox item of {key}")
    assert item.state is ItemState.PENDING
    assert stack.outbox.list(id_nat_decision=decision["id_nat_decision"]) == [item]  # nothing for the 39

    report = stack.emitter.run_pending()
    assert report.sent == [item.id], stack.outbox.show(item.id).last_error
    sent = stack.outbox.show(item.id)
    assert sent.state is ItemState.SENT and sent.response and sent.response["status"] == 201

    [received] = stack.received_tasks(decision["id_nat_decision"])
    assert received["status"] == 201 and received["struct_idnat"] == "1" + eg
    assert [v for v in received["validation"] if v.get("severity") == "error"] == []
    codes = {i["type"]["coding"][0]["code"]: i for i in received["body"]["input"]}
    assert codes["statutESMS"]["valueCodeableConcept"]["coding"][0]["code"] == "41"
    assert codes["motifESMS"]["valueCodeableConcept"]["coding"][0]["code"] == "152"

    # a second delivery of the same version (HAPI retry, reconciliation) sends nothing more
    assert stack.emitter.enqueue_resource(response.json())[0].id == item.id
    assert stack.emitter.run_pending().attempted == 0
    assert len(stack.received_tasks(decision["id_nat_decision"])) == 1

    # the attempt is in the audit trail, referencing the work-list Task
    audit = _wait_for(lambda: stack.emitter.list_audit(f"Task/{task_id}"), "the AuditEvent")
    assert audit[0]["outcome"] == "0" and audit[0]["meta"]["source"].startswith(sdo.PLUGIN_SOURCE)


def test_non_conformant_change_is_kept_explained_and_not_sent(stack: Stack, fhir: httpx.Client) -> None:
    _, establishment = stack.config.establishments()[0]
    eg = establishment.finess_eg
    decision = _new_decision(stack.sim, eg)
    task_id = f"wl-{uuid.uuid4().hex[:12]}"
    # 45 "admission impossible" without its mandatory reason (ASS_A32)
    response = fhir.put(f"Task/{task_id}", json=_worklist_task(task_id, eg, decision, statut="45", motif=None))
    assert response.status_code == 201
    key = f"Task/{task_id}/_history/1"
    item = _wait_for(lambda: stack.outbox.backend.get_by_key(key), "the failed item")
    assert item.state is ItemState.FAILED and item.last_error and "ASS_A32" in item.last_error
    assert item.outcome and item.outcome["resourceType"] == "OperationOutcome"
    # the DUI user sees why on the work-list Task, written as the plugin (no echo)
    noted = _wait_for(lambda: fhir.get(f"Task/{task_id}").json().get("note"), "the note")
    assert "ASS_A32" in noted[-1]["text"]
    stack.emitter.run_pending()
    assert stack.received_tasks(decision["id_nat_decision"]) == []
    assert len(stack.outbox.list(id_nat_decision=decision["id_nat_decision"])) == 1  # the note was not emitted


def test_reconciliation_finds_a_change_the_subscription_missed(stack: Stack, fhir: httpx.Client) -> None:
    reconciler = Reconciler(stack.emitter, stack.state, overlap_seconds=120)
    reconciler.run_once()  # first pass: sets the cursors
    _, establishment = stack.config.establishments()[0]
    eg = establishment.finess_eg
    decision = _new_decision(stack.sim, eg)
    task_id = f"wl-{uuid.uuid4().hex[:12]}"
    # the subscription delivers it too; drop what the receiver queued to play "HAPI gave up"
    fhir.put(f"Task/{task_id}", json=_worklist_task(task_id, eg, decision, statut="42", motif=None))
    key = f"Task/{task_id}/_history/1"
    first = _wait_for(lambda: stack.outbox.backend.get_by_key(key), "the receiver's item")
    report = reconciler.run_once()
    assert first.id in report.items  # found again, not queued twice
    assert [i.idempotency_key for i in stack.outbox.list(id_nat_decision=decision["id_nat_decision"])] == [key]
