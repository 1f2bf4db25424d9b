"""The REST-hook path alone: a DUI save reaches ViaTrajectoire through HAPI's Subscription, with no safety net.

`vtdui run` runs here with ``outbox.reconcile_seconds`` at an hour (the ``reconcile_seconds`` fixture), so
the reconciliation never looks at HAPI during these tests: only HAPI's delivery to the receiver can move a
change, and the tests check that it did (the item's ``origin.via``, the reconciliation's counters) and that
HAPI's log holds no delivery failure (HAPI-1359 / 1838 / 2659). The reconciliation path alone is proven by
``test_outbound_e2e.py::test_reconciliation_catches_a_change_made_while_vtdui_was_down`` (no delivery
reaches that receiver).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import httpx
import pytest
from outbound_e2e_helpers import OutboundEnv, ServiceProcess, status_key, wait_for

from vtdui import sdo
from vtdui.receiver import SECRET_HEADER

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

Env = tuple[OutboundEnv, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def reconcile_seconds() -> float:
    """An hour: the reconciliation cannot be what delivers a change in these tests."""
    return 3600


def _task(env: OutboundEnv, decision: dict[str, Any], eg: str) -> dict[str, Any]:
    task = env.worklist_task(decision["id_nat_decision"], eg)
    assert task is not None
    return task


def _no_safety_net(service: ServiceProcess) -> None:
    metrics = service.metrics()
    assert metrics.get("vtdui_reconcile_items_total", 0) == 0, "the reconciliation queued something"


def test_our_launcher_hands_saves_to_subscription_matching_every_250_ms(hapi: Any) -> None:
    """HAPI's own schedule is 5 s; the launcher shortens it (``SubscriptionSchedule``)."""
    if not hapi.origin.startswith("launcher"):
        pytest.fail(f"this test reads the launcher's log; the session's server is of origin {hapi.origin!r}")
    text = hapi.log_file.read_text(encoding="utf-8", errors="replace")
    assert "subscription submission every 250 ms (HAPI's default 5000 ms)" in text


def test_a_dui_save_reaches_viatrajectoire_through_hapis_delivery_alone(running: ServiceProcess, env: Env,
                                                                        hapi_log: Any) -> None:
    outbound, decisions = env
    decision = decisions["refusal"]
    id_nat = decision["id_nat_decision"]
    task = _task(outbound, decision, outbound.other_eg)
    assert task["businessStatus"]["coding"][0]["code"] == "39"
    started = time.monotonic()
    saved = outbound.user_change(task, "41", "152")
    wait_for(lambda: outbound.received(id_nat), "the ESMSTask, delivered by HAPI's Subscription", timeout=30,
             pause=0.05)
    elapsed = time.monotonic() - started
    time.sleep(3)  # a second delivery of the same change would have arrived by now
    assert [status_key(r["body"]) for r in outbound.received(id_nat)] == [("41", "152", None, None)]
    [item] = outbound.outbox_items(id_nat)
    assert item.origin["via"] == "hook"
    assert item.idempotency_key == f"Task/{saved['id']}/_history/{saved['meta']['versionId']}"
    _no_safety_net(running)
    assert running.metrics()["vtdui_hook_deliveries_total"] >= 1
    assert hapi_log.delivery_failures() == [], "HAPI logged failed deliveries"
    print(f"\nPUT in HAPI -> accepted by the simulator through the Subscription: {elapsed:.2f} s")


def test_forged_unknown_and_stale_deliveries_are_refused_and_nothing_is_sent(running: ServiceProcess, env: Env,
                                                                              hapi_log: Any) -> None:
    outbound, decisions = env
    decision = decisions["other"]
    id_nat = decision["id_nat_decision"]
    task = _task(outbound, decision, outbound.other_eg)
    assert task["businessStatus"]["coding"][0]["code"] == "39"  # held by HAPI at 39, as the plugin wrote it
    auth = {SECRET_HEADER: outbound.secret, "Content-Type": "application/fhir+json"}
    forged = copy.deepcopy(task)
    forged["businessStatus"]["coding"][0]["code"] = "45"
    forged["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": "86"}]}
    with httpx.Client(base_url=running.url, timeout=30, headers=auth) as client:
        # a version HAPI does not have
        unknown_version = {**forged, "meta": {**forged["meta"], "versionId": "45"}}
        answer = client.put(f"/vtdui/hook/Task/{task['id']}", json=unknown_version)
        assert answer.status_code == 422 and answer.json()["resourceType"] == "OperationOutcome"
        # a Task HAPI does not hold at all
        missing = {**forged, "id": "vtdui-no-such-task", "meta": {"versionId": "1"}}
        answer = client.put("/vtdui/hook/Task/vtdui-no-such-task", json=missing)
        assert answer.status_code == 422
        # the version HAPI holds, its content forged: built from what HAPI holds (the plugin's 39), so nothing
        answer = client.put(f"/vtdui/hook/Task/{task['id']}", json=forged)
        assert answer.status_code == 200 and answer.json()["resourceType"] == "OperationOutcome"
        # malformed and oversized against the running service
        assert client.put(f"/vtdui/hook/Task/{task['id']}", content=b"[" * 50_000).status_code == 400
        assert client.put(f"/vtdui/hook/Task/{task['id']}", content=b" " * (6 * 1024 * 1024)).status_code == 413
    time.sleep(2)  # the worker polls every 0.5 s: anything queued would be sent by now
    assert outbound.outbox_items(id_nat) == []
    assert outbound.received(id_nat, accepted_only=False) == []
    log = running.logs[-1].read_text(encoding="utf-8")
    assert f"delivery of Task/{task['id']} version 45 refused" in log
    assert "delivery of Task/vtdui-no-such-task version 1 refused" in log
    assert outbound.secret not in log
    _no_safety_net(running)
    assert hapi_log.delivery_failures() == []


def test_a_screens_get_modify_put_with_the_meta_it_read_is_sent(running: ServiceProcess, env: Env,
                                                                hapi_log: Any) -> None:
    """The ordinary save of a DUI screen keeps the ``meta`` it read (vtdui's ``meta.source`` included)."""
    outbound, decisions = env
    decision = decisions["blocked"]
    id_nat = decision["id_nat_decision"]
    task = _task(outbound, decision, outbound.other_eg)
    assert task["meta"]["source"].startswith("urn:vtdui:plugin:")  # written by vtdui's inbound cycle
    assert task["meta"]["source"].partition("#")[2].startswith("vtdui-")  # HAPI stored vtdui's request id
    changed = copy.deepcopy(task)
    changed["businessStatus"]["coding"][0]["code"] = "41"
    changed["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": "152"}]}
    with outbound.fhir() as client:
        answer = client.put(f"Task/{task['id']}", json=changed)
    assert answer.status_code == 200, answer.text
    assert answer.json()["meta"]["source"].startswith(task["meta"]["source"].split("#")[0])  # kept as sent
    wait_for(lambda: outbound.received(id_nat), "the ESMSTask of the save that kept vtdui's meta", timeout=30)
    assert [status_key(r["body"])[:2] for r in outbound.received(id_nat)] == [("41", "152")]
    [item] = outbound.outbox_items(id_nat)
    assert item.origin["via"] == "hook"
    # vtdui's own writes after it (none here) and the plugin's earlier version were not sent
    _no_safety_net(running)
    assert hapi_log.delivery_failures() == []


def _screen_save(env: OutboundEnv, read: dict[str, Any], statut: str, motif: str | None) -> dict[str, Any]:
    """A DUI screen's save: the version read, its ESMS status (and reason) changed, PUT with the ``meta`` read."""
    changed = copy.deepcopy(read)
    changed["businessStatus"]["coding"][0]["code"] = statut
    changed.pop("statusReason", None)
    if motif is not None:
        changed["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": motif}]}
    with env.fhir() as client:
        answer = client.put(f"Task/{read['id']}", json=changed)
    assert answer.status_code == 200, answer.text
    saved: dict[str, Any] = answer.json()
    return saved


def test_a_save_returning_to_the_status_vtdui_wrote_with_the_meta_kept_is_sent(running: ServiceProcess, env: Env,
                                                                               hapi_log: Any) -> None:
    """vtdui wrote the Task at 39; a screen moves it to 41, then back to 39, each time with the ``meta`` it read.

    The last version holds the status fields of vtdui's version, so the content mark it carries over
    (``urn:vtdui:plugin:<digest>``) matches it: only the request id HAPI stored in the source's fragment
    tells this save from vtdui's own write.
    """
    outbound, decisions = env
    decision = decisions["timeout"]
    id_nat = decision["id_nat_decision"]
    task = _task(outbound, decision, outbound.other_eg)
    own_mark, _, own_request = task["meta"]["source"].partition("#")
    assert own_mark.startswith("urn:vtdui:plugin:") and own_request.startswith("vtdui-")
    assert task["businessStatus"]["coding"][0]["code"] == "39" and "statusReason" not in task
    moved = _screen_save(outbound, task, "41", "152")
    wait_for(lambda: outbound.received(id_nat), "the ESMSTask of the move to 41", timeout=30)
    back = _screen_save(outbound, moved, "39", None)
    back_mark, _, back_request = back["meta"]["source"].partition("#")
    assert back_mark == own_mark  # the content mark of vtdui's version, carried over and matching
    assert not back_request.startswith("vtdui-")  # the id HAPI gave the screen's request
    wait_for(lambda: len(outbound.received(id_nat, accepted_only=False)) >= 2, "the ESMSTask of the return to 39",
             timeout=30)
    time.sleep(2)  # a third POST (an echo, a second delivery) would have arrived by now
    sent = outbound.received(id_nat, accepted_only=False)
    assert [status_key(r["body"])[:2] for r in sent] == [("41", "152"), ("39", None)]
    items = outbound.outbox_items(id_nat)
    assert sorted(item.idempotency_key for item in items) == sorted(
        f"Task/{task['id']}/_history/{v['meta']['versionId']}" for v in (moved, back))
    assert all(item.origin["via"] == "hook" for item in items)
    _no_safety_net(running)
    assert hapi_log.delivery_failures() == []
