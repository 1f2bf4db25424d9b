"""Helpers of the soak test and the outbox-workers benchmark: several `vtdui run` workers on one database.

Real components only: the session's HAPI server, the ViaTrajectoire simulator (HTTPS, mutual TLS, OAuth2),
a PostgreSQL database of the session's cluster (``postgres`` fixture) shared by the workers, and
``vtdui db migrate`` / ``vtdui setup`` / ``vtdui run`` as subprocesses of the installed console script.

``wait_for``, ``free_port`` and ``own_profiles`` come from the outbound end-to-end helpers.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from outbound_e2e_helpers import wait_for

from vtdui import sdo
from vtdui.config import load_config
from vtdui.mapping.worklist import set_business_status, worklist_query
from vtdui.plugins import get_plugin_manager
from vtdui.runtime import Runtime

VTDUI = str(Path(sys.executable).with_name("vtdui"))
FHIR_HEADERS = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
#: What HAPI answers to a save whose ``If-Match`` is not the current version: FHIR says 412, HAPI 8.8 answers
#: 409 (HAPI-0989 "Trying to update ... but this is not the current version").
CONFLICT = (409, 412)


def _s(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_config(path: Path, sim: Any, establishments: list[str], *, state_dir: Path, hapi_base_url: str,
                 receiver_port: int, receiver_secret: str, database_url: str | None,
                 sync_interval: float = 3600, reconcile_seconds: float = 5, log_level: str = "INFO") -> Path:
    """``vtdui.toml`` serving ``establishments`` (FINESS EG) of the simulator, JSON logs, fast retries."""
    info = sim.info
    lines = [f"state_dir = {_s(str(state_dir))}", 'hooks_dir = ""', "",
             "[hapi]", f"base_url = {_s(hapi_base_url)}", "",
             "[viatrajectoire]", f"base_url = {_s(info['fhir_base_url'])}", f"token_url = {_s(info['token_url'])}",
             f"client_id = {_s(info['client_id'])}", f"client_secret = {_s(info['client_secret'])}",
             f"ca_file = {_s(info['ca_cert'])}", "timeout = 10.0", "",
             "[retry]", "attempts = 2", "base_delay = 0.3", "max_delay = 2.0", "max_age_seconds = 900", "",
             "[receiver]", 'host = "127.0.0.1"', f"port = {receiver_port}",
             f"public_url = {_s(f'http://127.0.0.1:{receiver_port}')}", f"secret = {_s(receiver_secret)}", "",
             "[outbox]", "poll_seconds = 0.5", f"reconcile_seconds = {reconcile_seconds}", "lease_seconds = 120", "",
             "[sync]", f"interval_seconds = {sync_interval}", "",
             "[logging]", f"level = {_s(log_level)}", 'format = "json"', ""]
    if database_url:
        lines += ["[database]", f"url = {_s(database_url)}", ""]
    for entity in info["legal_entities"]:
        chosen = [e for e in entity["establishments"] if e["finess_eg"] in establishments]
        if not chosen:
            continue
        lines += ["[[legal_entities]]", f"finess_ej = {_s(entity['finess_ej'])}", f"name = {_s(entity['name'])}",
                  f"cert_file = {_s(entity['cert_file'])}", f"key_file = {_s(entity['key_file'])}"]
        if entity.get("p12_file") and entity.get("p12_password"):
            lines += [f"p12_file = {_s(entity['p12_file'])}", f"p12_password = {_s(entity['p12_password'])}"]
        lines.append("")
        for est in chosen:
            lines += ["[[legal_entities.establishments]]", f"finess_eg = {_s(est['finess_eg'])}",
                      f"name = {_s(est['name'])}", f"is_esat = {'true' if est['is_esat'] else 'false'}", ""]
            for unit in est["units"]:
                lines += ["[[legal_entities.establishments.units]]"]
                lines += [f"{key} = {_s(unit[key])}" for key in ("id_unite", "nom_unite", "categorie_organisation",
                                                                  "mode_prise_charge", "temporalite_accueil")]
                lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def status_pair(task: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(statutESMS, motifESMS)`` of an ESMSTask."""
    values: dict[str, str | None] = {}
    for item in task.get("input", []):
        name = item["type"]["coding"][0]["code"]
        if name in (sdo.STATUT_ESMS, sdo.MOTIF_ESMS):
            codings = (item.get("valueCodeableConcept") or {}).get("coding", [])
            values[name] = str(codings[0]["code"]) if codings else None
    return values.get(sdo.STATUT_ESMS), values.get(sdo.MOTIF_ESMS)


def id_nat_of(task: dict[str, Any]) -> str | None:
    """idNat_Decision of an ESMSTask."""
    for item in task.get("input", []):
        if item["type"]["coding"][0]["code"] == sdo.ID_NAT_DECISION:
            return str((item.get("valueIdentifier") or {}).get("value"))
    return None


@dataclass
class Deployment:
    """The simulator, the DUI's configuration, its database and the environment of its processes."""

    sim: Any
    config_path: Path
    tmp: Path
    hapi_base_url: str
    child_env: dict[str, str]
    database_url: str | None

    # -- processes -------------------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([VTDUI, *args, "--config", str(self.config_path)], cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout, check=False, env=self.child_env)
        if check:
            assert done.returncode == 0, f"vtdui {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def migrate(self) -> None:
        """``vtdui db migrate`` when the state lives in PostgreSQL (SQLite creates its files itself)."""
        if self.database_url:
            self.cli("db", "migrate")

    def worker(self, name: str, port: int) -> Worker:
        return Worker(name=name, config_path=self.config_path, cwd=self.tmp, port=port, env=self.child_env)

    @contextmanager
    def runtime(self) -> Iterator[Runtime]:
        """The plugin's stores as the workers see them (outbox, state), for the checks."""
        config = load_config(self.config_path, env=self.child_env)
        with Runtime(config, pm=get_plugin_manager(None, load_entrypoints=False)) as runtime:
            yield runtime

    # -- ViaTrajectoire side -----------------------------------------------------------------------------

    def new_decision(self, notified_to: list[str]) -> dict[str, Any]:
        response = httpx.post(f"{self.sim.admin_url}/decisions", json={"notified_to": notified_to}, timeout=30)
        assert response.status_code == 201, response.text
        decision: dict[str, Any] = response.json()["decisions"][0]
        return decision

    def event(self, **body: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.sim.admin_url}/events", json=body, timeout=30)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()["tasks"][0]
        return task

    def fault(self, **spec: Any) -> None:
        response = httpx.post(f"{self.sim.admin_url}/faults", json=spec, timeout=30)
        assert response.status_code == 201, response.text

    def clear_faults(self) -> None:
        httpx.delete(f"{self.sim.admin_url}/faults", timeout=30)

    def accepted_tasks(self) -> list[dict[str, Any]]:
        """The ESMSTask POSTs the simulator accepted (201), in arrival order."""
        requests = httpx.get(f"{self.sim.admin_url}/received", timeout=60).json()["requests"]
        return [r for r in requests if r["method"] == "POST" and r["path"].endswith("/Task")
                and r["status"] == 201 and r.get("body")]

    # -- HAPI as the DUI's screens -------------------------------------------------------------------------

    def fhir(self) -> httpx.Client:
        return httpx.Client(base_url=self.hapi_base_url + "/", headers=FHIR_HEADERS, timeout=60)

    def worklist_task(self, id_nat: str, finess_eg: str, client: httpx.Client | None = None) -> dict[str, Any] | None:
        name, _, value = worklist_query(id_nat, finess_eg).partition("=")
        if client is None:
            with self.fhir() as own:
                found = own.get("Task", params={name: value}).json().get("entry", [])
        else:
            found = client.get("Task", params={name: value}).json().get("entry", [])
        return found[0]["resource"] if found else None

    def user_change(self, client: httpx.Client, id_nat: str, finess_eg: str, statut: str,
                    motif: str | None, think: float = 0.0) -> tuple[dict[str, Any], int]:
        """Read the work-list item, set its ESMS status (+ reason) ``think`` seconds later, save it as a screen does.

        The save is guarded by ``If-Match``; when the plugin wrote the item meanwhile (a flux-5 status, a
        note), HAPI refuses it (:data:`CONFLICT`) and the screen reads it again, as a user reloading would
        (at most 5 times).
        Returns the stored version and the number of conflicts met.
        """
        for conflicts in range(5):
            task = self.worklist_task(id_nat, finess_eg, client)
            assert task is not None, f"no work-list item for {id_nat} in {finess_eg}"
            time.sleep(think)
            changed = set_business_status(copy.deepcopy(task), statut, reason=motif, date=date.today().isoformat())
            version = changed["meta"]["versionId"]
            changed["meta"] = {k: v for k, v in changed["meta"].items() if k in ("profile", "tag")}
            response = client.put(f"Task/{task['id']}", json=changed, headers={"If-Match": f'W/"{version}"'})
            if response.status_code in CONFLICT:
                continue
            assert response.status_code == 200, response.text
            stored: dict[str, Any] = response.json()
            return stored, conflicts
        raise AssertionError(f"the work-list item of {id_nat} kept changing under the user (5 conflicts)")


@dataclass
class Worker:
    """One `vtdui run` subprocess; its output goes to a log file of its own for each start."""

    name: str
    config_path: Path
    cwd: Path
    port: int
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str, wait: bool = True) -> None:
        """``vtdui run --port <port> [extra]``; wait for ``/health`` unless told not to."""
        log = self.cwd / f"vtdui-run-{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as handle:
            self.process = subprocess.Popen([VTDUI, "run", "--config", str(self.config_path), "--port",
                                             str(self.port), *extra], cwd=self.cwd, stdout=handle,
                                            stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 90) -> None:
        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"vtdui run ({self.name}) exited with {self.process.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, f"vtdui run ({self.name}) to answer /health", timeout=timeout, pause=0.1)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 90) -> int | None:
        """Signal the process and wait for it; ``None`` when it was not running."""
        if self.process is None:
            return None
        try:
            if self.process.poll() is None:
                self.process.send_signal(sig)
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
            raise
        finally:
            self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in self.logs if p.exists())

    def log_tail(self, lines: int = 60) -> str:
        if not self.logs or not self.logs[-1].exists():
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


def child_env(profiles: Path | None, database_url: str | None) -> dict[str, str]:
    """Environment of the `vtdui` subprocesses: these profiles (if any), this database (or none: SQLite)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VTDUI_DATABASE_URL", "VTDUI_STATE_DIR", "VTDUI_CONFIG")}
    if profiles is not None:
        env["VTDUI_PROFILES_DIR"] = str(profiles)
    if database_url:
        env["VTDUI_DATABASE_URL"] = database_url
    return env


def sensitive_values(sim: Any) -> set[str]:
    """Names, NIR and birth dates of the persons of the simulator's decisions (see tests/e2e/test_logs_privacy.py)."""
    values: set[str] = set()
    with sim.context.state.lock:
        people = [d.sim.person for d in sim.context.state.decisions.values()]
    for person in people:
        for name in (person.birth_name, person.usage_name, person.first_given_name, person.used_given_name,
                     *person.given_names):
            if name and len(name) >= 3:
                values.add(name)
        for ident in (person.ins, person.social_security):
            value = getattr(ident, "extension", None) if ident is not None else None
            if value and len(value) >= 13 and value[:13].isdigit():
                values.add(value[:13])
        values.add(person.birth_date.isoformat())
    # names that are also in the names of the legal entities, establishments and units (``Victor Hugo``) are
    # not patient data when they show up in a log line
    public = json.dumps(sim.info["legal_entities"], ensure_ascii=False)
    return {v for v in values if v not in public}


def secrets_of(deployment: Deployment) -> set[str]:
    """The OAuth2 client secret, the PKCS#12 passwords and the receiver's secret of the configuration."""
    config = load_config(deployment.config_path, env=deployment.child_env)
    found = {config.viatrajectoire.client_secret, config.receiver.secret}
    found |= {e.p12_password for e in config.legal_entities if e.p12_password}
    return {s for s in found if s}


def wind_down(deployment: Deployment, receiver: Worker, others: list[Worker]) -> None:
    """Subscriptions off while a receiver answers, then everything stopped (see ``wind_down`` in
    ``tests/e2e/outbound/outbound_e2e_helpers.py``: HAPI 8.8 keeps the channel of a Subscription turned off
    while deliveries were retried closed)."""
    for worker in others:
        worker.stop()
    receiver.stop()
    receiver.start("--no-sync")  # no inbound cycle: nothing new for HAPI to deliver while the Subscriptions go off
    time.sleep(6)  # HAPI's retries reach the receiver again
    deployment.cli("setup", "--off")
    time.sleep(6)  # HAPI processes the change of the Subscription (asynchronously)
    receiver.stop()
