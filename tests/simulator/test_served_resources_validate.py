"""Everything the simulator serves validates with zero errors against the official profiles (HAPI ``$validate``).

Uploads the IG's StructureDefinitions, CodeSystem and ValueSet (``official_ig``: skipped without it) and the
NOS terminology snapshot into the session's HAPI server, then validates a decision and an evaluation
DocumentReference (flux 1.4 / 3.2), the flux 1.2 and 3.2 Bundles, and a flux 5.2 Bundle of Tasks (MDPH event,
another establishment's unit status, a status posted through flux 4).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sim_helpers import Dui, admin, consent_body, gt, just_before, new_decision, task_body

from vtdui import sdo
from vtdui.ig_package import IgPackage
from vtdui.profiles import install_terminology
from vtdui.simulator.server import RunningSimulator

pytestmark = pytest.mark.integration

LOINC_FRAGMENT = {
    "resourceType": "CodeSystem", "id": "vtdui-test-loinc-fragment", "url": "http://loinc.org",
    "meta": {"tag": [{"system": "urn:vtdui:fhir:tag", "code": "test"}]},
    "name": "LOINCFragment", "status": "active", "content": "complete",
    "concept": [{"code": "57830-2", "display": "Admission request Document"},
                {"code": "51848-0", "display": "Evaluation note"},
                {"code": "59284-0", "display": "Consent"}],
}


@pytest.fixture(scope="module")
def hapi_with_ig(official_ig: IgPackage, hapi_base_url: str) -> Iterator[httpx.Client]:
    install_terminology(hapi_base_url)
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=hapi_base_url, headers=headers, timeout=300) as client:
        # HAPI ships no LOINC; the official validators know it. The three codes the IG uses let the required
        # binding of DocumentReference.type be checked instead of failing as "unknown code system". Uploaded
        # before the IG ValueSet so that its expansion sees them. Declared "complete": HAPI treats a "fragment"
        # as an unknown code system. Other LOINC codes then fail in this HAPI session: only these are used.
        response = client.put("CodeSystem/vtdui-test-loinc-fragment", json=LOINC_FRAGMENT)
        assert response.status_code in (200, 201), response.text
        for resource in official_ig.conformance_resources():
            response = client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
            assert response.status_code in (200, 201), response.text
        yield client


def errors_of(client: httpx.Client, resource: dict[str, Any], profile: str) -> list[str]:
    response = client.post(f"{resource['resourceType']}/$validate", params={"profile": profile}, json=resource)
    assert response.status_code in (200, 412), response.text
    issues = response.json().get("issue", [])
    return [f"{i.get('diagnostics')} @ {i.get('location') or i.get('expression')}" for i in issues
            if i.get("severity") in ("error", "fatal")]


@pytest.fixture(scope="module")
def served(simulator: RunningSimulator) -> dict[str, dict[str, Any]]:
    """One of each resource the simulator serves, fetched over mTLS like a DUI does."""
    dui, other = Dui(simulator, 0), Dui(simulator, 1)
    eg, eg_b, foreign = dui.egs[0], dui.egs[1], other.egs[0]
    since = gt(just_before())
    decision = new_decision(simulator, [eg, eg_b, foreign])
    out: dict[str, dict[str, Any]] = {}
    out["flux 1.2 bundle"] = dui.get("DocumentReference", eg, {"type": "57830-2", "_lastUpdated": since,
                                                                "_elements": "id"}).json()
    out["flux 1.4 decision"] = dui.get(f"DocumentReference/{decision['docref_id']}", eg).json()
    assert dui.post("Consent", eg, consent_body("1" + eg, decision["id_nat_decision"])).status_code == 201
    out["flux 3.2 bundle"] = dui.get("DocumentReference", eg, {"identifier": decision["id_nat_decision"],
                                                               "type": "51848-0"}).json()
    out["flux 3.2 evaluation"] = out["flux 3.2 bundle"]["entry"][0]["resource"]
    name_b = next(e["name"] for e in dui.ej["establishments"] if e["finess_eg"] == eg_b)
    assert dui.post("Task", eg_b, task_body("1" + eg_b, name_b, decision)).status_code == 201
    unit = other.ej["establishments"][0]["units"][0]
    for event in ({"id_nat_decision": decision["id_nat_decision"], "finess_eg": eg, "statut_esms": "49",
                   "motif_esms": "112", "description": "Notification annulée par la MDPH"},
                  {"source": "esms", "id_nat_decision": decision["id_nat_decision"], "finess_eg": foreign,
                   "statut_esms": "43", "id_unite": unit["id_unite"], "statut_unite": "185"}):
        assert admin(simulator, "POST", "events", event).status_code == 201
    out["flux 5.2 bundle"] = dui.get("Task", eg, {"_lastUpdated": since}).json()
    assert out["flux 5.2 bundle"]["total"] == 3
    for index, entry in enumerate(out["flux 5.2 bundle"]["entry"]):
        out[f"flux 5.2 task {index}"] = entry["resource"]
    dui.close()
    other.close()
    return out


PROFILES = {
    "flux 1.2 bundle": sdo.PROFILE_BUNDLE_DECISION_EVALUATION,
    "flux 1.4 decision": sdo.PROFILE_DOCUMENT_REFERENCE,
    "flux 3.2 bundle": sdo.PROFILE_BUNDLE_DECISION_EVALUATION,
    "flux 3.2 evaluation": sdo.PROFILE_DOCUMENT_REFERENCE,
    "flux 5.2 bundle": sdo.PROFILE_BUNDLE_NOTIFICATION,
    "flux 5.2 task 0": sdo.PROFILE_TASK,
    "flux 5.2 task 1": sdo.PROFILE_TASK,
    "flux 5.2 task 2": sdo.PROFILE_TASK,
}


@pytest.mark.parametrize("name", list(PROFILES))
def test_served_resource_validates_against_the_official_profile(
        hapi_with_ig: httpx.Client, served: dict[str, dict[str, Any]], name: str) -> None:
    assert errors_of(hapi_with_ig, served[name], PROFILES[name]) == []


def test_validation_would_catch_a_broken_served_resource(
        hapi_with_ig: httpx.Client, served: dict[str, dict[str, Any]]) -> None:
    broken = json.loads(json.dumps(served["flux 1.4 decision"]))
    broken["content"][0]["attachment"]["title"] = "Autre titre"
    broken["identifier"] = broken["identifier"][:1]
    assert len(errors_of(hapi_with_ig, broken, sdo.PROFILE_DOCUMENT_REFERENCE)) >= 2
