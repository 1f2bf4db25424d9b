"""Helpers of the simulator contract tests: mTLS DUI clients, admin calls, FHIR bodies.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from vtdui import sdo
from vtdui.simulator.server import RunningSimulator


def mtls_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


class Dui:
    """The DUI side of one legal entity: an mTLS client, its token and the struct_idnat header."""

    def __init__(self, sim: RunningSimulator, ej_index: int = 0) -> None:
        info = sim.info
        self.sim = sim
        self.info = info
        self.ej = info["legal_entities"][ej_index]
        self.http = httpx.Client(verify=mtls_context(info["ca_cert"], self.ej["cert_file"], self.ej["key_file"]),
                                 timeout=30)
        self._token: str | None = None

    @property
    def egs(self) -> list[str]:
        return [e["finess_eg"] for e in self.ej["establishments"]]

    def fetch_token(self) -> httpx.Response:
        return self.http.post(self.sim.token_url, data={"grant_type": "client_credentials"},
                              auth=(self.info["client_id"], self.info["client_secret"]))

    def token(self, *, renew: bool = False) -> str:
        if self._token is None or renew:
            response = self.fetch_token()
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def headers(self, eg: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", "struct_idnat": "1" + eg,
                "Accept": "application/fhir+json", **extra}

    def get(self, path: str, eg: str, params: Any = None, **headers: str) -> httpx.Response:
        return self.http.get(f"{self.sim.fhir_base_url}/{path}", params=params, headers=self.headers(eg, **headers))

    def post(self, path: str, eg: str, body: Any) -> httpx.Response:
        return self.http.post(f"{self.sim.fhir_base_url}/{path}", json=body,
                              headers=self.headers(eg, **{"Content-Type": "application/fhir+json"}))

    def close(self) -> None:
        self.http.close()


def admin(sim: RunningSimulator, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{sim.admin_url}/{path}", json=body, timeout=30)


def new_decision(sim: RunningSimulator, notified_to: list[str]) -> dict[str, Any]:
    response = admin(sim, "POST", "decisions", {"notified_to": notified_to})
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()["decisions"][0]
    return decision


def gt(moment: datetime) -> str:
    """``gt`` + instant with its offset (the caller's HTTP client percent-encodes the ``+``)."""
    return "gt" + moment.astimezone(UTC).isoformat(timespec="milliseconds")


def just_before() -> datetime:
    return datetime.now(UTC) - timedelta(milliseconds=5)


def consent_body(struct: str, id_nat: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "meta": {"profile": [sdo.PROFILE_CONSENT], "source": struct},
        "status": "active",
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
        "dateTime": "2026-05-11",
        "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]},
        "provision": {"data": [{"meaning": "related",
                                "reference": {"identifier": {"use": "official", "value": id_nat}}}]},
    }


def task_body(struct: str, name: str, decision: dict[str, Any], *, statut: str = "41",
              motif: str | None = "152") -> dict[str, Any]:
    def inp(code: str, key: str, value: Any) -> dict[str, Any]:
        return {"type": sdo.input_type(code), key: value}

    inputs = [
        inp(sdo.ID_NAT_STRUCT, "valueIdentifier", {"value": struct}),
        inp(sdo.NOM_ESMS, "valueString", name),
        inp(sdo.STATUT_ESMS, "valueCodeableConcept", {"coding": [{"system": sdo.TRE_R357, "code": statut}]}),
    ]
    if motif:
        inputs.append(inp(sdo.MOTIF_ESMS, "valueCodeableConcept",
                          {"coding": [{"system": sdo.TRE_R358, "code": motif}]}))
    inputs += [
        inp(sdo.DATE_STATUT_ESMS, "valueDate", "2026-05-12"),
        inp(sdo.ID_DECISION, "valueIdentifier", {"value": decision["id_decision"]}),
        inp(sdo.ID_NAT_DECISION, "valueIdentifier", {"value": decision["id_nat_decision"]}),
    ]
    return {"resourceType": "Task", "meta": {"profile": [sdo.PROFILE_TASK]}, "status": "completed",
            "intent": "plan", "input": inputs}
