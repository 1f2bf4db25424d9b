"""install_terminology against the real HAPI FHIR server of the session: PUT by id, idempotent."""

from __future__ import annotations

import copy

import httpx
import pytest

from vtdui import sdo
from vtdui.errors import HapiError
from vtdui.profiles import SNAPSHOT_TAG, install_terminology, terminology_resources

pytestmark = pytest.mark.integration


def test_install_is_idempotent_and_resources_are_usable(hapi_base_url: str) -> None:
    resources = terminology_resources()
    with httpx.Client(timeout=120) as client:
        first = install_terminology(hapi_base_url, client)
        assert len(first.created) + len(first.updated) + len(first.unchanged) == len(resources)
        second = install_terminology(hapi_base_url, client)
        assert second.created == [] and second.updated == []
        assert len(second.unchanged) == len(resources)

        stored = client.get(f"{hapi_base_url}/ValueSet/JDV-J252-StatutPersonnePriseChargeESMS",
                            headers={"Accept": "application/fhir+json"}).json()
        assert stored["url"] == sdo.JDV_J252
        assert any(t.get("code") == SNAPSHOT_TAG["code"] for t in stored["meta"].get("tag", []))

        changed = copy.deepcopy(next(r for r in resources if r["url"] == sdo.JDV_J30))
        changed["description"] += " (test change)"
        third = install_terminology(hapi_base_url, client, resources=[changed])
        assert third.updated == ["ValueSet/JDV-J30-TemporaliteAccueil-ROR"]
        install_terminology(hapi_base_url, client)  # back to the shipped content


def test_refused_resource_raises_hapi_error(hapi_base_url: str) -> None:
    bad = {"resourceType": "ValueSet", "id": "vtdui-test-bad", "status": "not-a-status"}
    with pytest.raises(HapiError) as info:
        install_terminology(hapi_base_url, resources=[bad])
    assert info.value.status is not None and info.value.status >= 400
