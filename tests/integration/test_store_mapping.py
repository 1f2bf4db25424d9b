"""The default mapping stored in a real HAPI server: idempotency, updates, work-list search, validity.

Each test generates its own decisions (a fresh seed), so tests neither collide nor depend on order, and
every resource they write carries the tag ``urn:vtdui:test|store-mapping``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from vtdui import sdo
from vtdui.cda.parse import parse_decision, parse_evaluation
from vtdui.config import Config, Establishment, HapiSettings, LegalEntity
from vtdui.errors import HapiError
from vtdui.hookcontext import InboundContext
from vtdui.mapping import map_decision_entries, map_evaluation_entries, remote_status_entries, worklist
from vtdui.simulator.cda_builder import build_decision_cda
from vtdui.simulator.dataset import Dataset, SimulatedDecision
from vtdui.store import HapiStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)
TAG = {"system": "urn:vtdui:test", "code": "store-mapping"}


@pytest.fixture
def store(hapi_base_url: str) -> Iterator[HapiStore]:
    with HapiStore(hapi_base_url) as hapi:
        yield hapi


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.generate(seed=uuid.uuid4().int % 10**9, n_decisions=2, now=NOW)


def _context(hapi_base_url: str, dataset: Dataset, item: SimulatedDecision,
             worklist_task: dict[str, Any] | None = None) -> InboundContext:
    finess = item.notified_to[0]
    eg = Establishment(finess_eg=finess, name=dataset.establishment(finess).name)
    entity = LegalEntity(finess_ej="010000024", name="EJ test", establishments=(eg,))
    return InboundContext(config=Config(hapi=HapiSettings(base_url=hapi_base_url)), legal_entity=entity,
                          establishment=eg, source="urn:vtdui:plugin", now=NOW, worklist_task=worklist_task)


def _tagged(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for entry in entries:  # what a before_store hook would do
        entry["resource"].setdefault("meta", {}).setdefault("tag", []).append(TAG)
    return entries


def _store_decision(store: HapiStore, ctx: InboundContext, raw: bytes) -> dict[str, dict[str, Any]]:
    """Store one decision; return the stored resources by type (Organization: the establishment, listed first).

    Every written resource is also kept under ``"<type>/<id>"``.
    """
    entries = _tagged(map_decision_entries(parse_decision(raw), ctx, raw=raw))
    response = store.transaction(entries)
    stored: dict[str, dict[str, Any]] = {}
    for answer in response["entry"]:
        kind, ident = answer["response"]["location"].split("/")[:2]
        resource = store.read(kind, ident)
        assert resource is not None
        stored.setdefault(kind, resource)
        stored[f"{kind}/{ident}"] = resource
    return stored


def _versions(stored: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {key: r["meta"]["versionId"] for key, r in stored.items() if "/" in key}


def test_storing_the_same_decision_twice_changes_nothing(store: HapiStore, hapi_base_url: str,
                                                         dataset: Dataset) -> None:
    item = dataset.decisions[0]
    ctx = _context(hapi_base_url, dataset, item)
    first = _store_decision(store, ctx, item.decision_cda())
    second = _store_decision(store, ctx, item.decision_cda())
    assert _versions(second) == _versions(first)
    assert len(_versions(first)) == 7  # Patient, 2 Organizations, ServiceRequest, Basic, DocumentReference, Task
    assert {k for k in first if "/" not in k} == {"Patient", "Organization", "ServiceRequest", "Basic",
                                                  "DocumentReference", "Task"}
    assert first["Task"]["meta"]["source"].startswith("urn:vtdui:plugin")


def test_updated_decision_keeps_person_and_worklist_status(store: HapiStore, hapi_base_url: str,
                                                           dataset: Dataset) -> None:
    item = dataset.decisions[0]
    ctx = _context(hapi_base_url, dataset, item)
    first = _store_decision(store, ctx, item.decision_cda())
    # a DUI user reads the notification: the item moves to 41 "Contact effectué"
    task = worklist.set_business_status(first["Task"], "41", reason="151")
    task["status"] = "in-progress"
    task["meta"] = {"source": "urn:dui:screen", "tag": [TAG]}
    store.update(task, if_match=first["Task"]["meta"]["versionId"])

    assert item.person.address is not None
    moved = dataclasses.replace(item.person, address=dataclasses.replace(item.person.address, city="RENNES"))
    raw2 = build_decision_cda(moved, item.decision, version=2, effective_time=item.notified_at)
    second = _store_decision(store, ctx, raw2)

    assert second["Patient"]["id"] == first["Patient"]["id"]
    assert second["Patient"]["address"][0]["city"] == "RENNES"
    assert second["Task"]["id"] == first["Task"]["id"]
    assert worklist.business_status(second["Task"]) == "41"  # never reset by a new version
    assert worklist.status_reason(second["Task"]) == "151"
    assert second["DocumentReference"]["id"] == first["DocumentReference"]["id"]
    doc_version = int(first["DocumentReference"]["meta"]["versionId"])
    assert int(second["DocumentReference"]["meta"]["versionId"]) == doc_version + 1
    assert second["DocumentReference"]["relatesTo"][0]["code"] == "replaces"
    history = store.history("DocumentReference", first["DocumentReference"]["id"])
    assert [h["meta"]["versionId"] for h in history] == ["2", "1"]
    assert "relatesTo" not in history[1]
    tasks = store.search("Task", {"identifier": worklist.worklist_query(item.id_nat_decision,
                                                                        ctx.establishment.finess_eg).split("=", 1)[1]})
    assert len(tasks) == 1


def test_worklist_is_searchable_by_business_status_and_establishment(store: HapiStore, hapi_base_url: str,
                                                                     dataset: Dataset, fhir: httpx.Client) -> None:
    item = dataset.decisions[1]
    ctx = _context(hapi_base_url, dataset, item)
    stored = _store_decision(store, ctx, item.decision_cda())
    response = fhir.get("Task", params={"business-status": f"{sdo.TRE_R357}|39", "_tag": "urn:vtdui:test|store-mapping",
                                        "_count": "500"})
    assert response.status_code == 200
    ids = {e["resource"]["id"] for e in response.json().get("entry", [])}
    assert stored["Task"]["id"] in ids
    mine = store.worklist(finess_eg=ctx.establishment.finess_eg, business_status="39")
    assert stored["Task"]["id"] in {t["id"] for t in mine}
    assert stored["Task"]["id"] not in {t["id"] for t in store.worklist(business_status="46")}
    other = dataset.decisions[0]
    other_task = _store_decision(store, _context(hapi_base_url, dataset, other), other.decision_cda())["Task"]
    keys = ",".join(f"{sdo.ID_NAT_DECISION_SYSTEM}|{d.id_nat_decision}" for d in dataset.decisions)
    paged = store.search("Basic", {"identifier": keys, "_count": "1"})  # one per page: next links followed
    assert len(paged) == 2
    assert other_task["id"] in {t["id"] for t in store.worklist(business_status="39")}
    found = store.worklist_item(item.id_nat_decision, ctx.establishment.finess_eg)
    assert found is not None and found["id"] == stored["Task"]["id"]
    assert store.worklist_item("VT-NOT-THERE", ctx.establishment.finess_eg) is None


def test_remote_status_updates_the_item_once_and_respects_concurrent_edits(
        store: HapiStore, hapi_base_url: str, dataset: Dataset) -> None:
    item = dataset.decisions[0]
    ctx = _context(hapi_base_url, dataset, item)
    stored = _store_decision(store, ctx, item.decision_cda())
    finess = ctx.establishment.finess_eg
    inputs = [
        ("idNat_Struct", {"valueIdentifier": {"value": "1" + finess}}), ("nomESMS", {"valueString": "X"}),
        ("statutESMS", {"valueCodeableConcept": {"coding": [{"system": sdo.TRE_R357, "code": "49"}]}}),
        ("motifESMS", {"valueCodeableConcept": {"coding": [{"system": sdo.TRE_R358, "code": "109"}]}}),
        ("idDecision", {"valueIdentifier": {"value": item.decision.id_decision}}),
        ("idNat_Decision", {"valueIdentifier": {"value": item.id_nat_decision}}),
    ]
    event = {"resourceType": "Task", "id": f"tk-{uuid.uuid4().hex[:8]}", "status": "completed", "intent": "plan",
             "meta": {"lastUpdated": "2026-05-13T08:00:00.000+02:00"}, "description": "Déménagement",
             "input": [{"type": sdo.input_type(code), **value} for code, value in inputs]}
    current = store.worklist_item(item.id_nat_decision, finess)
    entries = remote_status_entries(event, _context(hapi_base_url, dataset, item, current))
    assert entries
    store.transaction(_tagged(entries))
    after = store.read("Task", stored["Task"]["id"])
    assert after is not None
    assert (worklist.business_status(after), after["status"]) == ("49", "cancelled")
    assert after["note"][0]["text"] == "Déménagement"
    # applying it again: nothing to write
    assert remote_status_entries(event, _context(hapi_base_url, dataset, item, after)) is None
    # a stale read (the DUI changed the item meanwhile) is refused, not silently overwritten
    stale = dict(event, id=f"tk-{uuid.uuid4().hex[:8]}")
    entries = remote_status_entries(stale, _context(hapi_base_url, dataset, item, current))
    assert entries
    with pytest.raises(HapiError) as caught:
        store.transaction(entries)
    assert caught.value.status in (409, 412)


def test_evaluation_is_stored_against_its_decision(store: HapiStore, hapi_base_url: str, dataset: Dataset) -> None:
    item = dataset.decisions[0]
    ctx = _context(hapi_base_url, dataset, item)
    stored = _store_decision(store, ctx, item.decision_cda())
    raw = item.evaluation_cda()
    entries = _tagged(map_evaluation_entries(parse_evaluation(raw), ctx, raw=raw))
    response = store.transaction(entries)
    doc_id = response["entry"][0]["response"]["location"].split("/")[1]
    doc = store.read("DocumentReference", doc_id)
    assert doc is not None
    assert doc["context"]["related"][0]["reference"] == f"Basic/{stored['Basic']['id']}"
    assert doc["subject"]["reference"] == f"Patient/{stored['Patient']['id']}"
    again = store.transaction(_tagged(map_evaluation_entries(parse_evaluation(raw), ctx, raw=raw)))
    assert {e["response"]["status"] for e in again["entry"]} == {"200 OK"}


def test_evaluation_before_its_decision_is_refused(store: HapiStore, hapi_base_url: str, dataset: Dataset) -> None:
    item = dataset.decisions[1]
    raw = item.evaluation_cda()
    with pytest.raises(HapiError) as caught:
        store.transaction(map_evaluation_entries(parse_evaluation(raw), _context(hapi_base_url, dataset, item),
                                                 raw=raw))
    assert caught.value.status is not None and 400 <= caught.value.status < 500


def test_every_stored_resource_is_valid_r4(store: HapiStore, hapi_base_url: str, dataset: Dataset,
                                           fhir: httpx.Client) -> None:
    item = dataset.decisions[0]
    ctx = _context(hapi_base_url, dataset, item)
    stored = {k: v for k, v in _store_decision(store, ctx, item.decision_cda()).items() if "/" in k}
    raw = item.evaluation_cda()
    response = store.transaction(_tagged(map_evaluation_entries(parse_evaluation(raw), ctx, raw=raw)))
    for answer in response["entry"]:
        kind, ident = answer["response"]["location"].split("/")[:2]
        resource = store.read(kind, ident)
        assert resource is not None
        stored[f"{kind}/{ident}"] = resource
    kinds = {key.split("/")[0] for key in stored}
    assert kinds == {"Patient", "Organization", "ServiceRequest", "Basic", "DocumentReference", "Task", "Observation"}
    for key, resource in stored.items():
        result = fhir.post(f"{resource['resourceType']}/$validate", json=resource)
        outcome = result.json()
        errors = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]
        assert errors == [], f"{key}: {errors}"


def test_non_ascii_text_is_stored_as_written(store: HapiStore) -> None:
    """Bodies are sent as ASCII JSON (``\\u`` escapes, see ``vtdui.fhirjson``): HAPI keeps the text itself."""
    name = "Établissement « Les Œillets » — Ngọc 𝔄"
    value = f"nonascii-{uuid.uuid4()}"
    org = {"resourceType": "Organization", "meta": {"tag": [TAG]}, "name": name,
           "identifier": [{"system": "urn:vtdui:test:org", "value": value}]}
    response = store.transaction([{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": org,
                                   "request": {"method": "POST", "url": "Organization",
                                               "ifNoneExist": f"identifier=urn:vtdui:test:org|{value}"}}])
    kind, ident = response["entry"][0]["response"]["location"].split("/")[:2]
    stored = store.read(kind, ident)
    assert stored is not None and stored["name"] == name
    renamed = {**stored, "name": name + " (ÿ)"}
    updated = store.update(renamed, if_match=stored["meta"]["versionId"])
    assert updated["name"] == name + " (ÿ)"
    again = store.read(kind, ident)
    assert again is not None and again["name"] == name + " (ÿ)"
