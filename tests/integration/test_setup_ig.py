"""``vtdui setup --ig-package`` makes a fresh HAPI validate against the official profiles.

A HAPI server of its own (our launcher, in-memory database, started for this module), so that nothing another
test uploaded can be what makes ``$validate`` work: right after start it does not know ESMSTask; after
``vtdui setup --ig-package`` with the official package it does, accepts a conformant ESMSTask and rejects a
broken one. Skipped without the official package (``official_ig``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui import hapi_server, sdo
from vtdui.ig_package import IG_PACKAGE_NAME, IG_TAG, IgPackage
from vtdui.simulator.pki import ensure_pki

pytestmark = pytest.mark.integration

EJ, EG = "350000014", "350000022"
VTDUI = str(Path(sys.executable).parent / "vtdui")
#: What HAPI logs when a client closed the connection before the answer was written.
CLIENT_GAVE_UP = ("ClientAbortException", "Broken pipe", "after response has been committed",
                  "getOutputStream() has already been called")


@pytest.fixture(scope="module")
def fresh_hapi(official_ig: IgPackage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("fresh-hapi")
    info = hapi_server.start(port=hapi_server.free_port(), state_dir=state, owner_pid=os.getpid())
    try:
        yield info.base_url.rstrip("/")
    finally:
        hapi_server.stop(state_dir=state)
        # IG resources HAPI refused or could not use would show as errors in its log. A client that gave up
        # waiting (the start-up probe's short timeout while HAPI is still busy) shows as a broken pipe and the
        # failed clean-up of that response: not an error of the server, so such entries are left out.
        entries = re.split(r"\n(?=\d{4}-\d\d-\d\dT)", info.log_file.read_text(encoding="utf-8", errors="replace"))
        errors = [e for e in entries if re.match(r"\S+\s+ERROR\s", e) and not any(
            sign in e for sign in CLIENT_GAVE_UP)]
        assert errors == [], [e[:400] for e in errors[:5]]


@pytest.fixture(scope="module")
def config(fresh_hapi: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("setup-config")
    pki = ensure_pki(tmp / "pki", [(EJ, "Association Exemple")])
    creds = pki.clients[EJ]
    path = tmp / "vtdui.toml"
    path.write_text(f'''
state_dir = "{tmp / "state"}"

[hapi]
base_url = "{fresh_hapi}"

[viatrajectoire]
base_url = "https://127.0.0.1:9/fhir"
token_url = "https://127.0.0.1:9/token"
client_id = "generic"
client_secret = "s3cret"
ca_file = "{pki.ca_cert}"

[receiver]
host = "127.0.0.1"
port = {hapi_server.free_port()}
secret = "a-long-random-secret-for-this-test"

[[legal_entities]]
finess_ej = "{EJ}"
name = "Association Exemple"
p12_file = "{creds.p12}"
p12_password = "{creds.p12_password}"

[[legal_entities.establishments]]
finess_eg = "{EG}"
name = "ESAT Les Ateliers"
is_esat = true
''', encoding="utf-8")
    return path


def _setup(config: Path, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("FHIR_BASE_URL", "VTDUI_CONFIG")}
    done = subprocess.run([VTDUI, "setup", "--config", str(config), "--json", *args], capture_output=True, text=True,
                          timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": sdo.input_type(code), **value}


def _esms_task() -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "meta": {"profile": [sdo.PROFILE_TASK], "lastUpdated": "2026-05-12T09:30:00+02:00"},
        "status": "completed",
        "intent": "plan",
        "input": [
            _input(sdo.ID_NAT_STRUCT, valueIdentifier={"value": "1" + EG}),
            _input(sdo.NOM_ESMS, valueString="ESAT Les Ateliers"),
            _input(sdo.ID_DECISION, valueIdentifier={"value": "MDPH35-DEC-000123"}),
            _input(sdo.ID_NAT_DECISION, valueIdentifier={"value": "VT-9f2c1e"}),
            _input(sdo.STATUT_ESMS, valueCodeableConcept={"coding": [{"system": sdo.TRE_R357, "code": "41"}]}),
            _input(sdo.MOTIF_ESMS, valueCodeableConcept={"coding": [{"system": sdo.TRE_R358, "code": "152"}]}),
            _input(sdo.DATE_STATUT_ESMS, valueDate="2026-05-12"),
        ],
    }


def _errors(base: str, task: dict[str, Any]) -> list[str]:
    response = httpx.post(f"{base}/Task/$validate", params={"profile": sdo.PROFILE_TASK}, json=task, timeout=300,
                          headers={"Accept": "application/fhir+json"})
    assert response.status_code in (200, 412), response.text  # 412: the outcome holds errors
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return [str(i.get("diagnostics")) for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]


def test_setup_with_the_official_package_makes_validate_work(fresh_hapi: str, config: Path,
                                                             official_ig: IgPackage) -> None:
    broken = _esms_task()
    broken["status"] = "draft"  # fixed to "completed" by the profile
    broken["input"] = broken["input"][1:]  # idNat_Struct is 1..1
    # a fresh server does not know the profile: it cannot see what is wrong with the broken Task
    assert not any("completed" in e for e in _errors(fresh_hapi, broken))

    done = _setup(config, "--ig-package", str(official_ig.source))
    expected = {f"{r['resourceType']}/{r['id']}" for r in official_ig.conformance_resources()}
    assert set(done["ig"]["created"]) == expected and done["ig"]["version"] == sdo.IG_VERSION
    stored = httpx.get(f"{fresh_hapi}/StructureDefinition", params={"_tag": f"{IG_TAG['system']}|{IG_TAG['code']}"},
                       timeout=60).json()
    assert {e["resource"]["url"] for e in stored["entry"]} >= {sdo.PROFILE_TASK, sdo.PROFILE_CONSENT}

    assert _errors(fresh_hapi, _esms_task()) == []
    errors = _errors(fresh_hapi, broken)
    assert any("completed" in e for e in errors), errors
    assert any("idNat_Struct" in e or "input" in e for e in errors), errors


def test_setup_again_changes_nothing_and_a_wrong_package_is_refused(fresh_hapi: str, config: Path,
                                                                    official_ig: IgPackage, tmp_path: Path) -> None:
    done = _setup(config, "--ig-package", str(official_ig.source))
    assert done["ig"]["created"] == [] and done["ig"]["updated"] == []
    assert done["ig"]["unchanged"] == len(official_ig.conformance_resources())
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "package.json").write_text(json.dumps({"name": IG_PACKAGE_NAME, "version": "4.0.6"}))
    (tmp_path / "package" / "StructureDefinition-x.json").write_text(json.dumps(
        {"resourceType": "StructureDefinition", "id": "x", "url": "urn:x", "version": "4.0.6"}))
    env = {k: v for k, v in os.environ.items() if k not in ("FHIR_BASE_URL", "VTDUI_CONFIG")}
    refused = subprocess.run([VTDUI, "setup", "--config", str(config), "--ig-package", str(tmp_path)],
                             capture_output=True, text=True, timeout=300, check=False, env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "vtdui needs ans.fhir.fr.sdo 4.0.7" in refused.stderr
