"""Fault ``delay``: a request whose client went away during the delay is not handled (recorded as 499)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sim_helpers import Dui, admin, new_decision, task_body

from vtdui.simulator.fhir_api import CLIENT_CLOSED
from vtdui.simulator.server import RunningSimulator

DELAY = 3.0


def _stored(sim: RunningSimulator, id_nat: str) -> list[str]:
    state = sim.context.state
    with state.lock:
        return [t.id for t in state.tasks.values() if t.origin == "flux4" and t.id_nat_decision == id_nat]


def _received(sim: RunningSimulator, id_nat: str) -> list[dict[str, Any]]:
    requests = admin(sim, "GET", "received").json()["requests"]
    return [r for r in requests if r["method"] == "POST" and r["path"] == "/fhir/Task"
            and any((i.get("valueIdentifier") or {}).get("value") == id_nat
                    for i in (r.get("body") or {}).get("input", []))]


def _post(dui: Dui, eg: str, decision: dict[str, Any], timeout: float) -> httpx.Response:
    name = next(e["name"] for e in dui.ej["establishments"] if e["finess_eg"] == eg)
    dui.token()  # the token first: only the Task is held
    return dui.http.post(f"{dui.sim.fhir_base_url}/Task", json=task_body("1" + eg, name, decision),
                         headers=dui.headers(eg, **{"Content-Type": "application/fhir+json"}), timeout=timeout)


@pytest.fixture
def held(simulator: RunningSimulator) -> Any:
    """One ``POST /fhir/Task`` held ``DELAY`` seconds; faults cleared afterwards."""
    response = admin(simulator, "POST", "faults", {"route": "POST /fhir/Task", "action": "delay", "delay": DELAY})
    assert response.status_code == 201, response.text
    yield
    admin(simulator, "DELETE", "faults")


@pytest.mark.usefixtures("held")
def test_a_client_that_gave_up_during_the_delay_is_not_handled(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        _post(dui, eg, decision, timeout=1.0)
    assert time.monotonic() - started < DELAY
    time.sleep(DELAY + 0.5)  # the held request has ended by now
    assert _stored(dui.sim, decision["id_nat_decision"]) == []
    [record] = _received(dui.sim, decision["id_nat_decision"])
    assert record["status"] == CLIENT_CLOSED and record["struct_idnat"] == "1" + eg
    assert record["validation"] == []  # never validated: never handled
    # the fault was used up: the next POST (the client's retry) is handled normally
    retried = _post(dui, eg, decision, timeout=30)
    assert retried.status_code == 201, retried.text
    assert _stored(dui.sim, decision["id_nat_decision"]) == [retried.json()["id"]]


@pytest.mark.usefixtures("held")
def test_a_patient_client_is_answered_after_the_delay(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_post, dui, eg, decision, DELAY + 10)
        deadline = time.monotonic() + DELAY
        while not (held := dui.sim.context.faults.held()) and time.monotonic() < deadline:
            time.sleep(0.02)
        # the held request is listed with its client's address and its body while it waits
        [request] = held
        assert (request.method, request.path) == ("POST", "/fhir/Task") and request.client is not None
        assert request.body["input"][-1]["valueIdentifier"]["value"] == decision["id_nat_decision"]
        response = future.result()
    assert dui.sim.context.faults.held() == []
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= DELAY
    assert _stored(dui.sim, decision["id_nat_decision"]) == [response.json()["id"]]
    [record] = _received(dui.sim, decision["id_nat_decision"])
    assert record["status"] == 201 and record["body"]["resourceType"] == "Task"


def test_a_delayed_status_fault_still_answers_its_status(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    rule = admin(dui.sim, "POST", "faults", {"route": "POST /fhir/Task", "action": "delay", "delay": 0.3,
                                            "status": 503, "retry_after": 1})
    assert rule.status_code == 201, rule.text
    try:
        response = _post(dui, eg, decision, timeout=10)
    finally:
        admin(dui.sim, "DELETE", "faults")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert _stored(dui.sim, decision["id_nat_decision"]) == []
    [record] = _received(dui.sim, decision["id_nat_decision"])
    assert record["status"] == 503
