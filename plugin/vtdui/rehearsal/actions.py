"""The DUI's side of the rehearsal: what a DUI screen does on HAPI, in plain FHIR over HTTP.

Nothing here calls vtdui: the work-list item is searched by its identifier, changed in its JSON and saved
with a ``PUT`` and ``If-Match`` (GET-modify-PUT), a consent is a ``POST Consent``. The element names and
codes are the local model's documented in the README (``businessStatus``/``statusReason`` and the
ESMSTask-named ``Task.input`` slices).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from vtdui import sdo

__all__ = ["DuiScreen", "SavedVersion"]

FHIR_HEADERS = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
WORKLIST_SYSTEM = "urn:vtdui:worklist"


@dataclass
class SavedVersion:
    """One save of the DUI: what was sent, HAPI's answer and when."""

    resource: dict[str, Any]
    method: str
    url: str
    status: int
    started: float
    duration: float

    @property
    def key(self) -> str:
        """``Task/<id>/_history/<version>``: the version the save created."""
        meta = self.resource.get("meta") or {}
        return f"{self.resource.get('resourceType')}/{self.resource.get('id')}/_history/{meta.get('versionId')}"


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _set_input(task: dict[str, Any], code: str, value: dict[str, Any] | None) -> None:
    """Put ``value`` (``{"valueX": ...}``) in the input slice ``code``, or remove the slice."""
    kept = [i for i in task.get("input", [])
            if code not in {c.get("code") for c in (i.get("type") or {}).get("coding", [])}]
    if value is not None:
        kept.append({"type": sdo.input_type(code), **value})
    task["input"] = kept


class DuiScreen:
    """A DUI screen working on HAPI."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        """Open an HTTP client on HAPI's FHIR base ``base_url``."""
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url + "/", headers=FHIR_HEADERS, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def worklist_item(self, id_nat: str, finess_eg: str) -> dict[str, Any] | None:
        """The work-list Task of a decision for an establishment (``None`` when absent)."""
        value = f"{id_nat}\\|{finess_eg}"
        response = self.client.get("Task", params={"identifier": f"{WORKLIST_SYSTEM}|{value}"})
        response.raise_for_status()
        entries = response.json().get("entry", [])
        return dict(entries[0]["resource"]) if entries else None

    def worklist_in_status(self, finess_eg: str, statut: str) -> list[str]:
        """The decisions (``idNat_Decision``) whose work-list item of ``finess_eg`` is in ``statut``, oldest first."""
        found: list[str] = []
        url: str | None = "Task"
        params: dict[str, str] | None = {"identifier": f"{WORKLIST_SYSTEM}|", "_count": "200", "_sort": "_lastUpdated"}
        while url:
            response = self.client.get(url, params=params)
            response.raise_for_status()
            bundle = response.json()
            for entry in bundle.get("entry", []):
                task = entry.get("resource", {})
                codes = [c.get("code") for c in (task.get("businessStatus") or {}).get("coding", [])]
                for ident in task.get("identifier", []):
                    value = str(ident.get("value", ""))
                    if ident.get("system") == WORKLIST_SYSTEM and value.endswith("|" + finess_eg) and statut in codes:
                        found.append(value[: -len(finess_eg) - 1])
            url = next((link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"), None)
            params = None
        return found

    def save_status(self, task: dict[str, Any], *, statut: str | None, motif: str | None,
                    statut_unite: str | None, motif_unite: str | None, id_unite: str | None,
                    today: date | None = None) -> SavedVersion:
        """Set the ESMS status and/or the unit status on ``task`` and PUT it (If-Match its version)."""
        day = (today or date.today()).isoformat()
        changed = copy.deepcopy(task)
        if statut is not None:
            changed["businessStatus"] = _coding(sdo.TRE_R357, statut)
            _set_input(changed, sdo.STATUT_ESMS, {"valueCodeableConcept": _coding(sdo.TRE_R357, statut)})
            _set_input(changed, sdo.DATE_STATUT_ESMS, {"valueDate": day})
            if motif is not None:
                changed["statusReason"] = _coding(sdo.TRE_R358, motif)
                _set_input(changed, sdo.MOTIF_ESMS, {"valueCodeableConcept": _coding(sdo.TRE_R358, motif)})
            else:
                changed.pop("statusReason", None)
                _set_input(changed, sdo.MOTIF_ESMS, None)
        if statut_unite is not None:
            _set_input(changed, sdo.ID_UNITE, {"valueIdentifier": {"value": id_unite}})
            _set_input(changed, sdo.STATUT_UNITE, {"valueCodeableConcept": _coding(sdo.TRE_R357, statut_unite)})
            _set_input(changed, sdo.MOTIF_UNITE, None if motif_unite is None else
                       {"valueCodeableConcept": _coding(sdo.TRE_R358, motif_unite)})
            _set_input(changed, sdo.DATE_STATUT_UNITE, {"valueDate": day})
        changed["lastModified"] = day
        version = str((task.get("meta") or {}).get("versionId"))
        # a screen keeps what it read of meta but the profile and tags: the plugin's own mark is not the user's
        changed["meta"] = {k: v for k, v in (task.get("meta") or {}).items() if k in ("profile", "tag")}
        url = f"Task/{task['id']}"
        started = time.time()
        response = self.client.put(url, json=changed, headers={"If-Match": f'W/"{version}"'})
        duration = time.time() - started
        if response.status_code != 200:
            raise RuntimeError(f"HAPI refused the save of {url}: HTTP {response.status_code}")
        return SavedVersion(response.json(), "PUT", f"{self.base_url}/{url}", response.status_code, started, duration)

    def give_consent(self, task: dict[str, Any], finess_eg: str, today: date | None = None) -> SavedVersion:
        """POST the person's consent to share the evaluation of the item's decision with ``finess_eg``."""
        consent = {
            "resourceType": "Consent", "status": "active",
            "scope": _coding(sdo.CONSENT_SCOPE_SYSTEM, sdo.CONSENT_SCOPE_CODE),
            "category": [_coding(sdo.LOINC, sdo.CONSENT_CATEGORY_CODE)],
            "patient": task["for"], "dateTime": (today or date.today()).isoformat(),
            "organization": [{"identifier": {"system": sdo.FINESS_SYSTEM, "value": finess_eg}}],
            "policyRule": _coding(sdo.ACT_CODE_SYSTEM, sdo.OPTIN),
            "provision": {"data": [{"meaning": "related", "reference": task["focus"]}]},
        }
        started = time.time()
        response = self.client.post("Consent", json=consent)
        duration = time.time() - started
        if response.status_code != 201:
            raise RuntimeError(f"HAPI refused the Consent: HTTP {response.status_code}")
        return SavedVersion(response.json(), "POST", f"{self.base_url}/Consent", 201, started, duration)

    def evaluations(self, id_nat: str) -> list[dict[str, Any]]:
        """The evaluation DocumentReferences of a decision HAPI holds."""
        response = self.client.get("DocumentReference",
                                   params={"identifier": f"urn:vtdui:source-document|{id_nat}\\|evaluation"})
        response.raise_for_status()
        return [e["resource"] for e in response.json().get("entry", [])]
