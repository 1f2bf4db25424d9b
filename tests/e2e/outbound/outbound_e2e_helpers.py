"""Helpers of the outbound end-to-end tests: the DUI's `vtdui run` process, the simulator, HAPI as a DUI screen.

Nothing is mocked: HAPI (the session's JPA server with REST-hook Subscriptions), the ViaTrajectoire simulator
(HTTPS, mutual TLS, OAuth2) and `vtdui setup` / `vtdui run` as subprocesses of the installed console script.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from vtdui import sdo
from vtdui.mapping.worklist import set_business_status, set_input, worklist_query
from vtdui.outbox import Outbox, OutboxItem
from vtdui.profiles import profiles_dir
from vtdui.receiver import subscription_templates

VTDUI = str(Path(sys.executable).parent / "vtdui")
#: Environment of the `vtdui` subprocesses (the conftest points VTDUI_PROFILES_DIR to this module's profiles).
CHILD_ENV: dict[str, str] = {}
FHIR_HEADERS = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0, pause: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout:.0f}s for {what}")
        time.sleep(pause)


def own_profiles(target: Path, suffix: str) -> Path:
    """A profiles directory whose Subscription templates have ids of their own (``vtdui-…<suffix>``).

    HAPI 8.8 leaves a Subscription's delivery channel closed when it is turned off or deleted while deliveries
    are queued; the same id installed again by a later test module would then never deliver (HAPI-2659). Ids
    of its own keep a module's Subscriptions apart from the other modules'.
    """
    (target / "subscriptions").mkdir(parents=True)
    (target / "terminology").symlink_to(profiles_dir() / "terminology")
    for template in subscription_templates():
        template["id"] = f"{template['id']}{suffix}"
        (target / "subscriptions" / f"Subscription-{template['id']}.json").write_text(json.dumps(template))
    return target


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def code_of(item: dict[str, Any]) -> str | None:
    """The code of a coded ``Task.input`` value (``None`` otherwise)."""
    for coding in (item.get("valueCodeableConcept") or {}).get("coding", []):
        return str(coding.get("code"))
    return None


def inputs_of(task: dict[str, Any]) -> dict[str, Any]:
    """``{input code: value}`` of an ESMSTask (codes for CodeableConcepts, values for Identifiers)."""
    out: dict[str, Any] = {}
    for item in task.get("input", []):
        name = item["type"]["coding"][0]["code"]
        if "valueCodeableConcept" in item:
            out[name] = code_of(item)
        elif "valueIdentifier" in item:
            out[name] = item["valueIdentifier"].get("value")
        else:
            out[name] = next(v for k, v in item.items() if k.startswith("value"))
    return out


def status_key(task: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """``(statutESMS, motifESMS, statutUnite, motifUnite)`` of an ESMSTask."""
    values = inputs_of(task)
    return values.get("statutESMS"), values.get("motifESMS"), values.get("statutUnite"), values.get("motifUnite")


@dataclass
class ServiceProcess:
    """A `vtdui run` subprocess."""

    config_path: Path
    cwd: Path
    port: int
    host: str
    logs: list[Path] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    current_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.current_port or self.port}"

    def start(self, *extra: str) -> None:
        """Start `vtdui run` (``extra`` options, e.g. ``--port N``) and wait for ``/health``."""
        self.current_port = int(extra[extra.index("--port") + 1]) if "--port" in extra else self.port
        log = self.cwd / f"vtdui-run-{len(self.logs) + 1}.log"
        self.logs.append(log)
        handle = log.open("wb")
        self.process = subprocess.Popen([VTDUI, "run", "--config", str(self.config_path), *extra], cwd=self.cwd,
                                        stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **CHILD_ENV})
        handle.close()

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"vtdui run exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, "vtdui run to answer /health", timeout=60)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        if not self.logs:
            return ""
        return "\n".join(self.logs[-1].read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


def wind_down(env: OutboundEnv, service: ServiceProcess) -> None:
    """Turn the Subscriptions off while the receiver still answers, then stop `vtdui run`.

    HAPI retries failed deliveries for about a minute; a Subscription turned off or deleted while some are
    retried leaves its delivery channel closed in HAPI 8.8, and the same Subscription id installed again
    later (by another test module) would never deliver. So: receiver up, retries drained, then off.
    """
    if service.running():
        service.stop()
    service.start("--no-sync")  # no inbound cycle: nothing new for HAPI to deliver while the Subscriptions go off
    time.sleep(6)  # HAPI's retries (every few seconds) reach the receiver again
    env.cli("setup", "--off")
    time.sleep(6)  # HAPI processes the change of the Subscription (asynchronously, every 5 s)
    service.stop()


@dataclass
class OutboundEnv:
    """The simulator, the DUI's configuration and the session's HAPI server."""

    sim: Any
    config_path: Path
    state_dir: Path
    hapi_base_url: str
    secret: str
    client_secret: str
    esat: str
    esat_units: list[dict[str, Any]]
    other_eg: str
    tmp: Path

    # -- ViaTrajectoire side ------------------------------------------------------------------------

    def new_decision(self, finess_eg: str) -> dict[str, Any]:
        response = httpx.post(f"{self.sim.admin_url}/decisions", json={"notified_to": [finess_eg]}, timeout=30)
        assert response.status_code == 201, response.text
        decision: dict[str, Any] = response.json()["decisions"][0]
        return decision

    def received(self, id_nat: str, resource_type: str = "Task", *, accepted_only: bool = True) -> list[dict[str, Any]]:
        """What the DUI POSTed to the simulator about a decision, in arrival order."""
        requests = httpx.get(f"{self.sim.admin_url}/received", timeout=30).json()["requests"]

        def about(request: dict[str, Any]) -> bool:
            body = request.get("body") or {}
            if resource_type == "Task":
                return any((i.get("valueIdentifier") or {}).get("value") == id_nat for i in body.get("input", []))
            data = (body.get("provision") or {}).get("data") or [{}]
            return ((data[0].get("reference") or {}).get("identifier") or {}).get("value") == id_nat

        return [r for r in requests if r["method"] == "POST" and r["path"].endswith(f"/{resource_type}")
                and (r["status"] == 201 or not accepted_only) and about(r)]

    def fault(self, **spec: Any) -> None:
        response = httpx.post(f"{self.sim.admin_url}/faults", json=spec, timeout=30)
        assert response.status_code == 201, response.text

    def clear_faults(self) -> None:
        httpx.delete(f"{self.sim.admin_url}/faults", timeout=30)

    # -- HAPI as the DUI's screens --------------------------------------------------------------------

    def fhir(self) -> httpx.Client:
        return httpx.Client(base_url=self.hapi_base_url + "/", headers=FHIR_HEADERS, timeout=60)

    def worklist_task(self, id_nat: str, finess_eg: str) -> dict[str, Any] | None:
        name, _, value = worklist_query(id_nat, finess_eg).partition("=")
        with self.fhir() as client:
            found = client.get("Task", params={name: value}).json().get("entry", [])
        return found[0]["resource"] if found else None

    def save_task(self, task: dict[str, Any]) -> dict[str, Any]:
        """PUT the Task as a DUI screen does (If-Match, no plugin ``meta.source``); return the stored version."""
        body = copy.deepcopy(task)
        version = body["meta"]["versionId"]
        body["meta"] = {k: v for k, v in body["meta"].items() if k in ("profile", "tag")}
        with self.fhir() as client:
            response = client.put(f"Task/{task['id']}", json=body, headers={"If-Match": f'W/"{version}"'})
        assert response.status_code == 200, response.text
        stored: dict[str, Any] = response.json()
        return stored

    def user_change(self, task: dict[str, Any], statut: str | None = None, motif: str | None = None, *,
                    statut_unite: str | None = None, motif_unite: str | None = None,
                    id_unite: str | None = None) -> dict[str, Any]:
        """Set the ESMS status (+ reason) and/or the unit status (+ reason, unit) and save: one new version."""
        today = date.today().isoformat()
        changed = copy.deepcopy(task)
        if statut is not None:
            changed = set_business_status(changed, statut, reason=motif, date=today)
        if statut_unite is not None:
            changed = set_input(changed, sdo.ID_UNITE, id_unite)
            changed = set_input(changed, sdo.STATUT_UNITE, statut_unite)
            changed = set_input(changed, sdo.MOTIF_UNITE, motif_unite)
            changed = set_input(changed, sdo.DATE_STATUT_UNITE, today)
        return self.save_task(changed)

    # -- the DUI's state ------------------------------------------------------------------------------

    def outbox_items(self, id_nat: str) -> list[OutboxItem]:
        outbox = Outbox.open(self.state_dir)
        try:
            return outbox.list(id_nat_decision=id_nat)
        finally:
            outbox.close()

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([VTDUI, *args, "--config", str(self.config_path)], cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout, check=False, env={**os.environ, **CHILD_ENV})
        if check:
            assert done.returncode == 0, f"vtdui {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done
