"""What vtdui relies on in a real HAPI FHIR server (nothing mocked).

CRUD, conditional create, transactions with ``urn:uuid:`` references, REST-hook subscriptions delivering to
a receiver on loopback, and ``$validate`` against the official ESMSTask profile. Each test makes its own
identifiers so that the tests neither depend on each other nor on the order they run in.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from vtdui import sdo
from vtdui.ig_package import IgPackage

pytestmark = pytest.mark.integration

TEST_SYSTEM = "urn:vtdui:test"


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0, pause: float = 0.25) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail (not hang) when it never becomes so."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(pause)


def _task(identifier: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "identifier": [{"system": TEST_SYSTEM, "value": identifier}],
        "status": "requested",
        "intent": "plan",
        **extra,
    }


def _search_total(fhir: httpx.Client, query: str) -> int:
    resource_type, _, search = query.partition("?")
    params = dict(part.split("=", 1) for part in search.split("&") if part)
    response = fhir.get(resource_type, params={**params, "_total": "accurate"})
    assert response.status_code == 200, response.text
    bundle = response.json()
    return int(bundle.get("total", len(bundle.get("entry", []))))


# ------------------------------------------------------------------------------------------ CRUD


def test_task_create_read_update(fhir: httpx.Client) -> None:
    created = fhir.post("Task", json=_task(str(uuid.uuid4()), description="first"))
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["meta"]["versionId"] == "1"
    assert created.headers["Location"].split("/_history")[0].endswith(f"Task/{task['id']}")

    read = fhir.get(f"Task/{task['id']}")
    assert read.status_code == 200
    assert read.json()["description"] == "first"

    task["status"] = "in-progress"
    updated = fhir.put(f"Task/{task['id']}", json=task)
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"
    assert fhir.get(f"Task/{task['id']}").json()["status"] == "in-progress"
    history = fhir.get(f"Task/{task['id']}/_history").json()
    assert history["total"] == 2


def test_update_with_client_chosen_id_creates_then_versions(fhir: httpx.Client) -> None:
    task_id = f"vt-{uuid.uuid4().hex[:16]}"
    first = fhir.put(f"Task/{task_id}", json={**_task(task_id), "id": task_id})
    assert first.status_code == 201, first.text
    second = fhir.put(f"Task/{task_id}", json={**_task(task_id), "id": task_id, "status": "completed"})
    assert second.status_code == 200
    assert second.json()["meta"]["versionId"] == "2"


def test_bad_writes_are_refused(fhir: httpx.Client) -> None:
    # id in the body differs from the id in the URL
    mismatch = fhir.put("Task/abc-1", json={**_task("x"), "id": "abc-2"})
    assert mismatch.status_code == 400
    assert mismatch.json()["resourceType"] == "OperationOutcome"
    # not a FHIR resource at all
    garbage = fhir.post("Task", content=b'{"resourceType": "Task", "status": ')
    assert garbage.status_code == 400
    # a reference to a resource that does not exist (referential integrity on write)
    dangling = fhir.post("Task", json=_task("y", **{"for": {"reference": "Patient/does-not-exist-42"}}))
    assert dangling.status_code in (400, 404, 409, 422), dangling.text
    assert fhir.get(f"Task/{uuid.uuid4()}").status_code == 404


# ------------------------------------------------------------------------------ conditional create


def test_conditional_create_returns_existing_resource(fhir: httpx.Client) -> None:
    ident = str(uuid.uuid4())
    query = f"Task?identifier={TEST_SYSTEM}|{ident}"
    # Searching before the write also checks that search results are not cached: the search after the
    # write must see the new Task, not the earlier empty result.
    assert _search_total(fhir, query) == 0
    header = {"If-None-Exist": f"identifier={TEST_SYSTEM}|{ident}"}
    first = fhir.post("Task", json=_task(ident), headers=header)
    assert first.status_code == 201, first.text
    assert _search_total(fhir, query) == 1

    again = fhir.post("Task", json=_task(ident, description="would be a duplicate"), headers=header)
    assert again.status_code == 200, again.text
    assert again.headers["Location"].split("/_history")[0].endswith(f"Task/{first.json()['id']}")
    assert _search_total(fhir, query) == 1


def test_conditional_create_matching_several_is_refused(fhir: httpx.Client) -> None:
    ident = str(uuid.uuid4())
    for _ in range(2):
        assert fhir.post("Task", json=_task(ident)).status_code == 201
    clash = fhir.post("Task", json=_task(ident), headers={"If-None-Exist": f"identifier={TEST_SYSTEM}|{ident}"})
    assert clash.status_code == 412, clash.text


# -------------------------------------------------------------------------------------- transaction


def test_transaction_resolves_urn_uuid_references(fhir: httpx.Client) -> None:
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    ident = str(uuid.uuid4())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": {"resourceType": "Patient", "identifier": [{"system": TEST_SYSTEM, "value": ident}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={TEST_SYSTEM}|{ident}"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": _task(ident, **{"for": {"reference": patient_urn}}),
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in result["entry"]]
    assert all(status.startswith("201") for status in statuses), statuses
    patient_ref = result["entry"][0]["response"]["location"].split("/_history")[0]
    task_ref = result["entry"][1]["response"]["location"].split("/_history")[0]
    task = fhir.get(task_ref).json()
    assert task["for"]["reference"] == patient_ref
    assert patient_ref.startswith("Patient/")

    # The same bundle again: the conditional entry matches, the Patient is not duplicated.
    again = fhir.post("", json=bundle).json()
    assert again["entry"][0]["response"]["status"].startswith("200")
    assert _search_total(fhir, f"Patient?identifier={TEST_SYSTEM}|{ident}") == 1


def test_failed_transaction_writes_nothing(fhir: httpx.Client) -> None:
    ident = str(uuid.uuid4())
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {"resourceType": "Patient", "identifier": [{"system": TEST_SYSTEM, "value": ident}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                # points to a placeholder that no entry defines: the whole transaction must fail
                "resource": _task(ident, **{"for": {"reference": f"urn:uuid:{uuid.uuid4()}"}}),
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }
    response = fhir.post("", json=bundle)
    assert response.status_code >= 400, response.text
    assert _search_total(fhir, f"Patient?identifier={TEST_SYSTEM}|{ident}") == 0


# ------------------------------------------------------------------------------ REST-hook delivery


@dataclass
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Receiver:
    """A tiny HTTP server that records what HAPI delivers (any method, any path), answering 200."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def matching(self, method: str, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.method == method and d.path == path]


@pytest.fixture
def receiver(hapi: Any) -> Iterator[Receiver]:
    """Receiver reachable by the session's server (``hapi`` is conftest's HapiTarget)."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw.strip() else None
            delivery = Delivery(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with holder["r"].lock:
                holder["r"].deliveries.append(delivery)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST = do_DELETE = _record  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((hapi.bind_host, 0), Handler)
    port = server.server_address[1]
    holder["r"] = Receiver(url=f"http://{hapi.callback_host}:{port}/hook")
    thread = threading.Thread(target=server.serve_forever, name="rest-hook-receiver", daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_rest_hook_subscription_delivers_updated_task(fhir: httpx.Client, receiver: Receiver) -> None:
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "vtdui integration test",
        "criteria": "Task?",
        "channel": {
            "type": "rest-hook",
            "endpoint": receiver.url,
            "payload": "application/fhir+json",
            "header": ["X-Vtdui-Test: rest-hook"],
        },
    }
    created = fhir.post("Subscription", json=subscription)
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    try:
        _wait_for(lambda: fhir.get(f"Subscription/{sub_id}").json().get("status") == "active",
                  "the Subscription to become active")

        task = fhir.post("Task", json=_task(str(uuid.uuid4()))).json()
        task["status"] = "in-progress"
        task["businessStatus"] = {"text": "updated by the test"}
        assert fhir.put(f"Task/{task['id']}", json=task).status_code == 200

        path = f"/hook/Task/{task['id']}"

        def updated_delivery() -> Delivery | None:
            for delivery in receiver.matching("PUT", path):
                if delivery.body and delivery.body.get("status") == "in-progress":
                    return delivery
            return None

        delivery = _wait_for(updated_delivery, f"PUT {path} with the updated Task")
        assert delivery.body is not None
        assert delivery.body["resourceType"] == "Task"
        assert delivery.body["businessStatus"]["text"] == "updated by the test"
        assert delivery.headers.get("x-vtdui-test") == "rest-hook"
        assert "application/fhir+json" in delivery.headers.get("content-type", "")
    finally:
        # An active Subscription on Task? would keep posting every later Task write to a closed receiver.
        fhir.delete(f"Subscription/{sub_id}")


def test_rest_hook_subscription_without_endpoint_is_refused(fhir: httpx.Client) -> None:
    bad = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "no endpoint",
        "criteria": "Task?",
        "channel": {"type": "rest-hook", "payload": "application/fhir+json"},
    }
    response = fhir.post("Subscription", json=bad)
    assert response.status_code == 422, response.text


# ------------------------------------------------------------------------------------ $validate


@pytest.fixture
def esms_task_profile(official_ig: IgPackage, fhir: httpx.Client, hapi_base_url: str) -> str:
    """Upload ESMSTask, its input CodeSystem and the NOS terminology snapshot; return the profile URL."""
    from vtdui.profiles import install_terminology  # the lead's module: NOS CodeSystems and JDV ValueSets

    install_terminology(hapi_base_url)
    for name in ("CodeSystem-input-task-sdo-codesystem.json", "StructureDefinition-esms-task.json"):
        resource = official_ig.resource(name)
        response = fhir.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
        assert response.status_code in (200, 201), response.text
    return sdo.PROFILE_TASK


def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": sdo.input_type(code), **value}


def _esms_task(**overrides: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [sdo.PROFILE_TASK], "lastUpdated": "2026-01-15T10:00:00+01:00"},
        "status": "completed",
        "intent": "plan",
        "input": [
            _input(sdo.ID_NAT_STRUCT, valueIdentifier={"system": f"urn:oid:{sdo.OID_ID_NAT_STRUCT}",
                                                       "value": "1750000001"}),
            _input(sdo.NOM_ESMS, valueString="Foyer de vie Les Tilleuls"),
            _input(sdo.STATUT_ESMS, valueCodeableConcept={"coding": [{"system": sdo.TRE_R357, "code": "40"}]}),
            _input(sdo.DATE_STATUT_ESMS, valueDate="2026-01-15"),
            _input(sdo.ID_DECISION, valueIdentifier={"system": "urn:oid:1.2.250.1.999.1", "value": "DEC-1"}),
            _input(sdo.ID_NAT_DECISION, valueIdentifier={"system": sdo.ID_NAT_DECISION_SYSTEM, "value": "42"}),
        ],
    }
    task.update(overrides)
    return task


def _validate(fhir: httpx.Client, resource: dict[str, Any], profile: str) -> list[dict[str, Any]]:
    response = fhir.post("Task/$validate", params={"profile": profile}, json=resource)
    # HAPI answers 200 with the outcome, or 412 when it holds errors
    assert response.status_code in (200, 412), response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issues: list[dict[str, Any]] = outcome.get("issue", [])
    return issues


def _errors(issues: list[dict[str, Any]]) -> list[str]:
    return [str(i.get("diagnostics", "")) for i in issues if i.get("severity") in ("error", "fatal")]


def test_validate_accepts_a_conformant_esms_task(fhir: httpx.Client, esms_task_profile: str) -> None:
    issues = _validate(fhir, _esms_task(), esms_task_profile)
    assert _errors(issues) == []


def test_validate_reports_profile_violations(fhir: httpx.Client, esms_task_profile: str) -> None:
    bad = _esms_task(intent="order")
    bad["input"] = bad["input"][:2]  # idNat_Struct and nomESMS only: fewer than 4, idDecision slices missing
    errors = _errors(_validate(fhir, bad, esms_task_profile))
    text = "\n".join(errors)
    assert any("intent" in e.lower() or "plan" in e for e in errors), text
    assert any("Task.input" in e for e in errors), text
    assert any("idNat_Decision" in e or "idDecision" in e for e in errors), text


def test_validate_reports_a_code_outside_the_bound_value_set(fhir: httpx.Client, esms_task_profile: str) -> None:
    bad = _esms_task()
    bad["input"][2] = _input(sdo.STATUT_ESMS,
                             valueCodeableConcept={"coding": [{"system": sdo.TRE_R357, "code": "999"}]})
    errors = _errors(_validate(fhir, bad, esms_task_profile))
    assert errors, "a statutESMS code outside JDV_J252 must be an error (required binding)"


def test_validate_sees_terminology_uploaded_after_a_first_validation(fhir: httpx.Client, hapi: Any) -> None:
    """A ValueSet uploaded after a validation that missed it is used at once (no stale "not found" cache)."""
    if not hapi.origin.startswith("launcher"):
        pytest.skip("cache invalidation on terminology writes is a feature of our launcher, not of the image")
    key = uuid.uuid4().hex[:12]
    cs_url, vs_url = f"urn:vtdui:test:cs:{key}", f"urn:vtdui:test:vs:{key}"
    profile_url = f"urn:vtdui:test:sd:{key}"
    profile = {
        "resourceType": "StructureDefinition", "id": f"test-task-{key}", "url": profile_url,
        "name": f"TestTask{key}", "status": "active", "kind": "resource", "abstract": False, "type": "Task",
        "fhirVersion": "4.0.1", "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Task",
        "differential": {"element": [{"id": "Task.code", "path": "Task.code", "min": 1, "binding": {
            "strength": "required", "valueSet": vs_url}}]},
    }
    assert fhir.put(f"StructureDefinition/{profile['id']}", json=profile).status_code == 201
    task = _task(key, code={"coding": [{"system": cs_url, "code": "not-in-the-value-set"}]})

    def errors() -> list[str]:
        return _errors(_validate(fhir, task, profile_url))

    assert errors() == []  # value set unknown yet: HAPI only warns
    codesystem = {"resourceType": "CodeSystem", "id": f"cs-{key}", "url": cs_url, "status": "active",
                  "content": "complete", "concept": [{"code": "ok"}]}
    valueset = {"resourceType": "ValueSet", "id": f"vs-{key}", "url": vs_url, "status": "active",
                "compose": {"include": [{"system": cs_url}]}}
    assert fhir.put(f"CodeSystem/{codesystem['id']}", json=codesystem).status_code == 201
    assert fhir.put(f"ValueSet/{valueset['id']}", json=valueset).status_code == 201
    assert errors(), "the code is outside the value set uploaded meanwhile"
    task["code"]["coding"][0]["code"] = "ok"
    assert errors() == []
