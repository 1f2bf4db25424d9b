"""Flux 1.1 (search of decision ids) and 1.3 (read of the decision document)."""

from __future__ import annotations

import base64
from urllib.parse import quote

import httpx
import pytest
from lxml import etree
from sim_helpers import Dui, admin, gt, just_before, new_decision

from vtdui import conformance, sdo


def search(dui: Dui, eg: str, since: str, **extra: str) -> httpx.Response:
    return dui.get("DocumentReference", eg, {"type": "57830-2", "_lastUpdated": since, "_elements": "id", **extra})


def test_search_returns_only_decisions_notified_to_the_caller(dui: Dui) -> None:
    eg_a, eg_b = dui.egs[0], dui.egs[1]
    since = gt(just_before())
    d_a = new_decision(dui.sim, [eg_a])
    d_ab = new_decision(dui.sim, [eg_a, eg_b])
    d_b = new_decision(dui.sim, [eg_b])
    response = search(dui, eg_a, since)
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert bundle["meta"]["profile"] == [sdo.PROFILE_BUNDLE_DECISION_EVALUATION]
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert ids == [d_a["docref_id"], d_ab["docref_id"]]
    assert bundle["total"] == 2
    assert d_b["docref_id"] not in ids
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{dui.sim.fhir_base_url}/DocumentReference/{resource['id']}"
        assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"
        assert "data" not in resource["content"][0]["attachment"]
    assert not conformance.has_errors(conformance.check_bundle(bundle, "decision-evaluation"))


def test_search_with_nothing_new_is_an_empty_searchset(dui: Dui) -> None:
    response = search(dui, dui.egs[0], gt(just_before()))
    assert response.status_code == 200
    assert response.json()["total"] == 0
    assert "entry" not in response.json()


def test_percent_encoded_offset_and_z_and_date_are_accepted(dui: Dui) -> None:
    eg = dui.egs[0]
    url = f"{dui.sim.fhir_base_url}/DocumentReference?type=57830-2&_elements=id&_lastUpdated="
    for value in ("gt2020-01-01T00:00:00.000%2B02:00", "gt2020-01-01T00:00:00Z", "gt2020-01-01"):
        response = dui.http.get(url + value, headers=dui.headers(eg))
        assert response.status_code == 200, (value, response.text)
        assert response.json()["total"] >= 1


def test_unencoded_plus_is_400_explaining_percent_2b(dui: Dui) -> None:
    url = (f"{dui.sim.fhir_base_url}/DocumentReference?type=57830-2&_elements=id"
           "&_lastUpdated=gt2026-05-10T06:00:00.000+02:00")
    response = dui.http.get(url, headers=dui.headers(dui.egs[0]))
    assert response.status_code == 400
    assert "%2B" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("params, fragment", [
    ({"type": "57830-2", "_elements": "id"}, "_lastUpdated"),
    ({"type": "57830-2", "_lastUpdated": "gt2020-01-01"}, "_elements"),
    ({"_lastUpdated": "gt2020-01-01", "_elements": "id"}, "type"),
    ({"type": "57830-2", "_lastUpdated": "ge2020-01-01", "_elements": "id"}, "gt"),
    ({"type": "57830-2", "_lastUpdated": "gt2020-13-45", "_elements": "id"}, "date"),
    ({"type": "57830-2", "_lastUpdated": "gt2020-01-01T10:00:00", "_elements": "id"}, "instant"),
    ({"type": "57830-2", "_lastUpdated": "gt2020-01-01", "_elements": "id,meta"}, "_elements"),
    ({"type": "11111-1", "_lastUpdated": "gt2020-01-01", "_elements": "id"}, "type"),
    ({"type": "57830-2", "_lastUpdated": "gt2020-01-01", "_elements": "id", "patient": "x"}, "patient"),
    ({"type": "57830-2", "_lastUpdated": "gt2020-01-01", "_elements": "id", "_count": "zero"}, "_count"),
])
def test_bad_searches_are_400_with_an_explanation(dui: Dui, params: dict[str, str], fragment: str) -> None:
    response = dui.get("DocumentReference", dui.egs[0], params)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert fragment in outcome["issue"][0]["diagnostics"]


def test_system_qualified_type_is_accepted(dui: Dui) -> None:
    response = search(dui, dui.egs[0], "gt2020-01-01", type="http://loinc.org|57830-2")
    assert response.status_code == 200


def test_read_returns_the_full_document_with_the_cda(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    response = dui.get(f"DocumentReference/{decision['docref_id']}", eg)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    resource = response.json()
    assert resource["meta"]["profile"] == [sdo.PROFILE_DOCUMENT_REFERENCE]
    assert resource["meta"]["versionId"] == "1"
    assert resource["meta"]["lastUpdated"] == decision["last_updated"]
    assert {"use": "usual", "value": decision["id_decision"]} in resource["identifier"]
    assert {"use": "official", "value": decision["id_nat_decision"]} in resource["identifier"]
    assert resource["type"]["coding"][0]["code"] == "57830-2"
    attachment = resource["content"][0]["attachment"]
    assert attachment["title"] == "Document Individu et décision"
    cda = etree.fromstring(base64.b64decode(attachment["data"]))
    ns = {"h": "urn:hl7-org:v3"}
    assert cda.xpath("string(h:setId/@extension)", namespaces=ns) == decision["id_nat_decision"]
    assert cda.xpath("string(h:versionNumber/@value)", namespaces=ns) == "1"
    assert conformance.check_esms_document_reference(resource) == []


def test_read_of_a_decision_not_notified_to_the_caller_is_404(dui: Dui) -> None:
    decision = new_decision(dui.sim, [dui.egs[1]])
    response = dui.get(f"DocumentReference/{decision['docref_id']}", dui.egs[0])
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"
    assert dui.get("DocumentReference/does-not-exist", dui.egs[0]).status_code == 404


def test_updated_decision_reappears_with_a_new_version(dui: Dui) -> None:
    eg = dui.egs[0]
    decision = new_decision(dui.sim, [eg])
    since = "gt" + decision["last_updated"]  # the DUI's cursor: the lastUpdated it last saw
    assert search(dui, eg, since).json()["total"] == 0
    updated = admin(dui.sim, "POST", f"decisions/{decision['id_nat_decision']}/update").json()
    assert updated["version"] == 2
    assert [e["resource"]["id"] for e in search(dui, eg, since).json()["entry"]] == [decision["docref_id"]]
    resource = dui.get(f"DocumentReference/{decision['docref_id']}", eg).json()
    assert resource["meta"]["versionId"] == "2"
    assert resource["meta"]["lastUpdated"] == updated["last_updated"] != decision["last_updated"]
    cda = etree.fromstring(base64.b64decode(resource["content"][0]["attachment"]["data"]))
    ns = {"h": "urn:hl7-org:v3"}
    assert cda.xpath("string(h:versionNumber/@value)", namespaces=ns) == "2"
    assert cda.xpath("string(h:relatedDocument/@typeCode)", namespaces=ns) == "RPLC"


def test_paging_follows_next_links_until_all_ids_are_read(dui: Dui) -> None:
    eg = dui.egs[2]
    since = gt(just_before())
    created = [new_decision(dui.sim, [eg])["docref_id"] for _ in range(5)]
    response = search(dui, eg, since, _count="2")
    seen: list[str] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["total"] == 5
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        pages += 1
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        response = dui.http.get(nxt[0], headers=dui.headers(eg))
    assert pages == 3
    assert seen == created


def test_page_token_belongs_to_the_establishment_that_searched(dui: Dui) -> None:
    eg = dui.egs[3]
    since = gt(just_before())
    for _ in range(3):
        new_decision(dui.sim, [eg])
    bundle = search(dui, eg, since, _count="1").json()
    nxt = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert dui.http.get(nxt, headers=dui.headers(dui.egs[0])).status_code == 404
    assert dui.http.get(nxt + "&type=57830-2", headers=dui.headers(eg)).status_code == 400
    assert dui.http.get(nxt, headers=dui.headers(eg)).status_code == 200


def test_query_value_encoding_of_lastupdated(dui: Dui) -> None:
    since = quote("gt2020-01-01T00:00:00.000+01:00", safe="")
    url = f"{dui.sim.fhir_base_url}/DocumentReference?type=57830-2&_elements=id&_lastUpdated={since}"
    assert dui.http.get(url, headers=dui.headers(dui.egs[0])).status_code == 200
