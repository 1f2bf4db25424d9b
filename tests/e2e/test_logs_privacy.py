"""Logs carry neither health data nor secrets, on the happy path and on the error paths.

A real sync (simulator over mTLS + OAuth2, real HAPI) runs with every vtdui logger at DEBUG through the
production JSON formatter, with faults injected (5xx, an expired token, a dropped connection). Then the
names, NIR, birth dates of the persons HAPI now holds, the OAuth2 client secret, the PKCS#12 passwords and
the access tokens are searched in the captured log text.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui.config import load_config
from vtdui.logs import setup_logging
from vtdui.runtime import Runtime
from vtdui.simulator.server import RunningSimulator, start_simulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, hapi: Any) -> Iterator[RunningSimulator]:
    running = start_simulator(tmp_path_factory.mktemp("vt-logs"), seed=4242, n_decisions=15, port=0, admin_port=0,
                              hapi_base_url=hapi.base_url)
    yield running
    running.stop()


def _fault(sim: RunningSimulator, **rule: Any) -> None:
    response = httpx.post(f"{sim.admin_url}/faults", json=rule, timeout=30)
    assert response.status_code in (200, 201), response.text


def _sensitive_values(patients: list[dict[str, Any]]) -> set[str]:
    values: set[str] = set()
    for patient in patients:
        for name in patient.get("name", []):
            values.update(part for part in [name.get("family", ""), *name.get("given", [])] if len(part) >= 3)
        for identifier in patient.get("identifier", []):
            value = str(identifier.get("value", ""))
            if len(value) >= 13 and value[:13].isdigit():  # NIR (13 digits + key)
                values.add(value[:13])
        if patient.get("birthDate"):
            values.add(patient["birthDate"])
    return values


def test_no_health_data_nor_secret_reaches_the_logs(sim: RunningSimulator, hapi: Any,
                                                    tmp_path: Path) -> None:
    config = load_config(sim.config_path, env={"FHIR_BASE_URL": hapi.base_url, "VTDUI_STATE_DIR": str(tmp_path)})
    stream = io.StringIO()
    setup_logging("DEBUG", "json", stream=stream)
    logging.getLogger("vtdui").setLevel(logging.DEBUG)
    try:
        with Runtime(config) as runtime:
            first = runtime.sync.run_once()
            assert first.total("decisions_stored") > 0, first
            # error paths: a server error, an expired token, a dropped connection
            _fault(sim, route="GET /fhir/DocumentReference*", action="status", status=500, remaining=2)
            _fault(sim, route="GET /fhir/*", action="expire-token", remaining=1)
            _fault(sim, route="GET /fhir/Task*", action="drop", remaining=1)
            created = httpx.post(f"{sim.admin_url}/decisions", json={"count": 3}, timeout=30)
            assert created.status_code == 201, created.text
            runtime.sync.run_once()
            runtime.sync.run_once()
            patients = runtime.store.search("Patient", {"_count": "200"})
    finally:
        setup_logging("WARNING", "text")
    text = stream.getvalue()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(records) >= 10, "the sync logged almost nothing: the test would prove nothing"
    assert any(r.get("level") in ("warning", "error") for r in records), "no error path was exercised"

    sensitive = _sensitive_values(patients)
    assert len(sensitive) >= 10, "HAPI holds too few persons for the check to mean anything"
    secrets = {config.viatrajectoire.client_secret}
    secrets |= {e.p12_password for e in config.legal_entities if e.p12_password}
    leaked = sorted(v for v in sensitive | secrets if v and v in text)
    assert leaked == [], f"{len(leaked)} sensitive value(s) found in the logs"
    assert "Bearer " not in text and "access_token" not in text
