"""Helpers of the inbound end-to-end tests: the simulator's admin side, the DUI configuration, HAPI look-ups.

Everything talks to real components: the ViaTrajectoire simulator over HTTPS with mutual TLS (its admin
port for the MDPH side), the session's HAPI JPA server, the plugin's SQLite state.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from vtdui import sdo
from vtdui.mapping import systems, worklist
from vtdui.simulator.server import RunningSimulator
from vtdui.store import HapiStore
from vtdui.sync import SyncReport

#: Decisions the issue asks for (flux 1 back-fill), over three establishments of which one ESAT.
TARGET_DECISIONS = 500


def admin(sim: RunningSimulator, method: str, path: str, body: Any = None) -> httpx.Response:
    """Call the simulator's admin (MDPH) port."""
    return httpx.request(method, f"{sim.admin_url}/{path}", json=body, timeout=60)


def new_decisions(sim: RunningSimulator, notified_to: list[str], count: int = 1) -> list[dict[str, Any]]:
    """Create decisions notified to ``notified_to`` (MDPH side); return their admin summaries."""
    out: list[dict[str, Any]] = []
    for _ in range(count):
        response = admin(sim, "POST", "decisions", {"notified_to": notified_to})
        assert response.status_code == 201, response.text
        out += response.json()["decisions"]
    return out


def decisions(sim: RunningSimulator) -> list[dict[str, Any]]:
    """Every decision the simulator holds (admin summaries)."""
    response = admin(sim, "GET", "decisions")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["decisions"]
    return found


def event(sim: RunningSimulator, **body: Any) -> dict[str, Any]:
    """Post an MDPH event or another establishment's status (served by flux 5)."""
    response = admin(sim, "POST", "events", body)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["tasks"][0]
    return task


def serve_raw_cda(sim: RunningSimulator, id_nat_decision: str, cda: bytes) -> None:
    """Make flux 1.3 serve ``cda`` (any bytes) for the current version of a decision.

    Through the admin API (``PUT /_admin/decisions/{idNat}/document``), as a user rehearsing the quarantine
    would; a later update (new version) serves a regular document again.
    """
    response = httpx.put(f"{sim.admin_url}/decisions/{id_nat_decision}/document", params={"kind": "decision"},
                         content=cda, timeout=60)
    assert response.status_code == 200, response.text


@dataclass
class InboundEnv:
    """The simulator and the DUI configuration of the inbound tests.

    Attributes:
        sim: the running simulator (800 seeded decisions spread over 33 days, plus decisions added to
            reach :data:`TARGET_DECISIONS` in the J-30 window of the three establishments).
        config_path: ``vtdui.toml`` of the DUI (three establishments of two legal entities).
        egs: FINESS EG of the three establishments, the ESAT first.
        esat: FINESS EG of the ESAT.
        started: when the simulator started (UTC).
        hapi_base_url: the HAPI server.
    """

    sim: RunningSimulator
    config_path: Path
    egs: list[str]
    esat: str
    started: datetime
    hapi_base_url: str
    tmp: Path

    def in_window(self, now: datetime) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """idNat_Decision notified to each of our establishments: surely inside J-30, and surely before it.

        The sync keeps a few minutes inside the J-30 bound (the server's clock decides), so decisions in
        the 15 minutes after J-30 are in neither set.
        """
        limit = now - timedelta(days=30)
        inside: dict[str, set[str]] = {eg: set() for eg in self.egs}
        before: dict[str, set[str]] = {eg: set() for eg in self.egs}
        for d in decisions(self.sim):
            updated = datetime.fromisoformat(d["last_updated"])
            target = inside if updated > limit + timedelta(minutes=15) else before if updated <= limit else None
            for eg in d["notified_to"]:
                if target is not None and eg in target:
                    target[eg].add(d["id_nat_decision"])
        return inside, before


def write_config(path: Path, sim: RunningSimulator, chosen: dict[str, list[dict[str, Any]]], *, state_dir: Path,
                 hapi_base_url: str) -> Path:
    """Write a ``vtdui.toml`` for the DUI: ``chosen`` maps a FINESS EJ to the establishments to serve."""
    info = sim.info

    def s(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = [f"state_dir = {s(str(state_dir))}", 'hooks_dir = ""', "",
             "[logging]", 'level = "WARNING"', "",
             "[hapi]", f"base_url = {s(hapi_base_url)}", "",
             "[viatrajectoire]", f"base_url = {s(info['fhir_base_url'])}", f"token_url = {s(info['token_url'])}",
             f"client_id = {s(info['client_id'])}", f"client_secret = {s(info['client_secret'])}",
             f"ca_file = {s(info['ca_cert'])}", "timeout = 30.0", "",
             "[retry]", "attempts = 2", "base_delay = 0.1", "max_delay = 1.0", ""]
    for entity in info["legal_entities"]:
        wanted = chosen.get(entity["finess_ej"])
        if not wanted:
            continue
        lines += ["[[legal_entities]]", f"finess_ej = {s(entity['finess_ej'])}", f"name = {s(entity['name'])}",
                  f"cert_file = {s(entity['cert_file'])}", f"key_file = {s(entity['key_file'])}", ""]
        for est in wanted:
            lines += ["[[legal_entities.establishments]]", f"finess_eg = {s(est['finess_eg'])}",
                      f"name = {s(est['name'])}", f"is_esat = {'true' if est['is_esat'] else 'false'}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


# -- HAPI ---------------------------------------------------------------------------------------------


def chunks(items: list[str], size: int = 40) -> Iterator[list[str]]:
    """Split ``items`` for searches with comma-separated (OR) values."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def by_ids(store: HapiStore, resource_type: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Read resources by logical id, 40 per search (``_id=a,b,…``)."""
    out: dict[str, dict[str, Any]] = {}
    for part in chunks(sorted(set(ids))):
        for resource in store.search(resource_type, {"_id": ",".join(part), "_count": "100"}):
            out[resource["id"]] = resource
    return out


def source_documents(store: HapiStore, id_nats: Iterable[str], kind: str = "decision") -> dict[str, dict[str, Any]]:
    """The DocumentReferences keeping the raw CDA of these decisions, by idNat_Decision."""
    out: dict[str, dict[str, Any]] = {}
    for part in chunks(sorted(set(id_nats))):
        value = ",".join(f"{systems.SOURCE_DOCUMENT_SYSTEM}|{n}\\|{kind}" for n in part)
        for doc in store.search("DocumentReference", {"identifier": value, "_count": "100"}):
            for ident in doc.get("identifier", []):
                if ident.get("system") == systems.SOURCE_DOCUMENT_SYSTEM:
                    out[ident["value"].split("|")[0]] = doc
    return out


def decisions_basic(store: HapiStore, id_nats: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The Basic (tddui-basic-decision) resources of these decisions, by idNat_Decision (a list: must be one)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for part in chunks(sorted(set(id_nats))):
        value = ",".join(f"{sdo.ID_NAT_DECISION_SYSTEM}|{n}" for n in part)
        for basic in store.search("Basic", {"identifier": value, "_count": "100"}):
            for ident in basic.get("identifier", []):
                if ident.get("system") == sdo.ID_NAT_DECISION_SYSTEM:
                    out.setdefault(ident["value"], []).append(basic)
    return out


def cda_of(doc: dict[str, Any]) -> bytes:
    """The raw CDA kept in a DocumentReference."""
    return base64.b64decode(doc["content"][0]["attachment"]["data"])


def versions_since(hapi_base_url: str, since: str) -> list[str]:
    """The resource versions HAPI wrote after ``since`` (system ``_history``), as ``Type/id/_history/v``."""
    found: list[str] = []
    url: str | None = f"{hapi_base_url}/_history"
    params: dict[str, str] | None = {"_since": since, "_count": "500"}
    while url is not None:
        response = httpx.get(url, params=params, headers={"Accept": "application/fhir+json"}, timeout=60)
        assert response.status_code == 200, response.text
        bundle = response.json()
        found += [f"{e['resource']['resourceType']}/{e['resource']['id']}/_history/{e['resource']['meta']['versionId']}"
                  for e in bundle.get("entry", []) if "resource" in e]
        url = next((link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"), None)
        params = None
    return found


def history_mark(hapi_base_url: str) -> str:
    """An instant on HAPI's clock after which nothing was written yet (for :func:`versions_since`).

    HAPI's ``Date`` header is truncated to the second: the mark is the next second, and this waits
    until HAPI's clock passed it.
    """
    response = httpx.get(f"{hapi_base_url}/metadata", params={"_summary": "true"}, timeout=60)
    moment = datetime.strptime(response.headers["Date"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    time.sleep(1.2)
    return (moment + timedelta(seconds=1)).isoformat()


@dataclass(frozen=True)
class Backfill:
    """The first cycle: its report, duration, and the decisions expected in the work list."""

    report: SyncReport
    seconds: float
    expected: dict[str, set[str]]
    before_window: dict[str, set[str]]
    at: datetime


def worklist_ids(tasks: list[dict[str, Any]]) -> list[str]:
    """idNat_Decision of each work-list Task (duplicates kept, to count them)."""
    return [str(worklist.id_nat_decision(t)) for t in tasks]
