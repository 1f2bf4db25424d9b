"""Issue 12 end to end: ViaTrajectoire as it really may behave, each behaviour against the simulator over HTTPS.

Real components only: the simulator (mTLS + OAuth2; its admin port arms the faults, the token policy and the
MDPH side), the session's HAPI JPA server, the plugin's SQLite state, the built-in mapping plugin. Every test
has its own state directory and its own decisions, on two establishments A and B of one legal entity.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from inbound_helpers import admin, event, new_decisions, write_config

from vtdui import sdo
from vtdui.config import load_config
from vtdui.mapping import worklist
from vtdui.plugins import get_plugin_manager
from vtdui.runtime import Runtime
from vtdui.simulator.resources import document_reference
from vtdui.simulator.server import RunningSimulator, start_simulator
from vtdui.state import QuarantineItem
from vtdui.sync import EstablishmentReport, SyncReport

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

VTDUI = str(Path(sys.executable).with_name("vtdui"))


@dataclass
class Env:
    """The simulator and the two establishments (A gets the faults, B stays normal)."""

    sim: RunningSimulator
    a: str
    b: str
    ej: str
    chosen: dict[str, list[dict[str, Any]]]
    hapi_base_url: str


@pytest.fixture(scope="module")
def env(hapi_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A simulator of a few decisions (random seed: FINESS and ids never collide with other tests in HAPI)."""
    tmp = tmp_path_factory.mktemp("vt-behaviours")
    seed = random.SystemRandom().randrange(1, 10**9)
    sim = start_simulator(tmp / "simulator", seed=seed, n_decisions=2, port=0, admin_port=0,
                          hapi_base_url=hapi_base_url, max_lookback_days=30)
    try:
        entity = sim.info["legal_entities"][0]
        a, b = entity["establishments"][0], entity["establishments"][1]
        yield Env(sim=sim, a=a["finess_eg"], b=b["finess_eg"], ej=entity["finess_ej"],
                  chosen={entity["finess_ej"]: [a, b]}, hapi_base_url=hapi_base_url)
    finally:
        sim.stop()


@dataclass
class Dui:
    """One DUI: its configuration file, its runtime (own state directory)."""

    config_path: Path
    runtime: Runtime

    def sync(self, *egs: str) -> SyncReport:
        return self.runtime.sync.run_once(list(egs) or None)

    def settings(self, **sync: Any) -> None:
        """Change ``[sync]`` settings of the running engine (the next cycle uses them)."""
        config = self.runtime.sync.config
        self.runtime.sync.config = dataclasses.replace(config, sync=dataclasses.replace(config.sync, **sync))

    def quarantined(self, eg: str) -> dict[str, QuarantineItem]:
        return {q.vt_id: q for q in self.runtime.state.quarantined() if q.finess_eg == eg}

    def item(self, id_nat: str, eg: str) -> dict[str, Any] | None:
        return self.runtime.store.worklist_item(id_nat, eg)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VTDUI, *args, "--config", str(self.config_path)], capture_output=True, text=True,
                              timeout=300, check=False, env={**os.environ, "VTDUI_PLUGINS": ""})


@pytest.fixture
def make_dui(env: Env, tmp_path: Path) -> Iterator[Callable[..., Dui]]:
    """Build a DUI with extra ``[sync]`` lines and ``[viatrajectoire]`` overrides; closed after the test."""
    opened: list[Runtime] = []

    def make(name: str = "dui", vt: dict[str, Any] | None = None, **sync: Any) -> Dui:
        path = write_config(tmp_path / f"{name}.toml", env.sim, env.chosen, state_dir=tmp_path / f"{name}-state",
                            hapi_base_url=env.hapi_base_url)
        settings = {"quarantine_backoff_seconds": 0, **sync}
        lines = ["[sync]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        path.write_text(path.read_text(encoding="utf-8") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
        config = load_config(path)
        if vt:
            config = dataclasses.replace(config, viatrajectoire=dataclasses.replace(config.viatrajectoire, **vt))
        runtime = Runtime(config, pm=get_plugin_manager(None, load_entrypoints=False))
        opened.append(runtime)
        return Dui(path, runtime)

    yield make
    for runtime in opened:
        runtime.close()


@pytest.fixture(autouse=True)
def _clean_simulator(env: Env) -> Iterator[None]:
    yield
    admin(env.sim, "DELETE", "faults")
    admin(env.sim, "PUT", "token-policy", {"client_auth": "any", "scope": None})


def _only(report: SyncReport, eg: str) -> EstablishmentReport:
    found = [r for r in report.establishments if r.finess_eg == eg]
    assert len(found) == 1
    return found[0]


def _arm(sim: RunningSimulator, route: str, **spec: Any) -> None:
    response = admin(sim, "POST", "faults", {"route": route, **spec})
    assert response.status_code == 201, response.text


def _docref(sim: RunningSimulator, id_nat: str) -> dict[str, Any]:
    """The DocumentReference the simulator serves for a decision (flux 1.3), as JSON."""
    return document_reference(sim.context.state.decisions[id_nat], "decision")


def _reads(sim: RunningSimulator, since: int, docref_id: str) -> int:
    received = admin(sim, "GET", f"received?since={since}").json()["requests"]
    return sum(1 for r in received if r["method"] == "GET" and r["path"].endswith(f"/DocumentReference/{docref_id}"))


def _received_count(sim: RunningSimulator) -> int:
    return int(admin(sim, "GET", "received?since=0").json()["count"])


# -- 403 on one read ------------------------------------------------------------------------------------------


def test_403_on_one_read_quarantines_that_document_not_the_establishment(env: Env, make_dui: Callable[..., Dui]
                                                                        ) -> None:
    dui = make_dui()
    refused, good = new_decisions(env.sim, [env.a], 2)
    _arm(env.sim, f"GET /fhir/DocumentReference/{refused['docref_id']}", status=403)
    report = _only(dui.sync(env.a), env.a)
    assert report.ok, report.errors  # not an authentication error: the flux went on
    assert dui.item(good["id_nat_decision"], env.a) is not None
    assert dui.item(refused["id_nat_decision"], env.a) is None
    item = dui.quarantined(env.a)[refused["docref_id"]]
    assert item.reason == "read-forbidden" and "403" in item.message
    assert dui.runtime.state.cursor(env.a, "1") is not None  # the cursor moved past the window

    report = _only(dui.sync(env.a), env.a)  # the fault is spent: retried and stored
    assert report.ok and dui.item(refused["id_nat_decision"], env.a) is not None
    assert refused["docref_id"] not in dui.quarantined(env.a)


# -- malformed JSON -----------------------------------------------------------------------------------------------


def _set_data(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["content"][0]["attachment"]["data"] = value
    return change


DOCREF_SHAPES: dict[str, Callable[[dict[str, Any]], None]] = {
    "attachment.data an int": _set_data(12345),
    "attachment.data a list": _set_data(["PD94bWw="]),
    "content an object": lambda doc: doc.__setitem__("content", doc["content"][0]),
    "attachment a list": lambda doc: doc["content"][0].__setitem__("attachment", [doc["content"][0]["attachment"]]),
    "meta a string": lambda doc: doc.__setitem__("meta", "v1"),
    "content[0] a string": lambda doc: doc.__setitem__("content", ["attachment"]),
    # well-formed for the sync's own shape checks, not for the FHIR R4 structural check (vtdui.fhir_structure)
    "type.coding[0].code an object": lambda doc: doc["type"]["coding"][0].__setitem__("code", {"code": "57830-2"}),
    "an unknown element": lambda doc: doc.__setitem__("statut", "current"),
    "identifier an object (0..*)": lambda doc: doc.__setitem__("identifier", doc["identifier"][1]),
}
STRUCTURAL_DOCREF_SHAPES = ("type.coding[0].code an object", "an unknown element", "identifier an object (0..*)")


def test_malformed_document_references_are_quarantined_and_the_batch_lands(env: Env,
                                                                           make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    bad = new_decisions(env.sim, [env.a], len(DOCREF_SHAPES) + 1)
    good = new_decisions(env.sim, [env.a])[0]
    for change, decision in zip(DOCREF_SHAPES.values(), bad, strict=False):
        doc = _docref(env.sim, decision["id_nat_decision"])
        change(doc)
        _arm(env.sim, f"GET /fhir/DocumentReference/{decision['docref_id']}", action="body", body=json.dumps(doc))
    not_json = bad[-1]
    _arm(env.sim, f"GET /fhir/DocumentReference/{not_json['docref_id']}", action="body",
         body='{"resourceType": "DocumentReference", "content": [')
    report = _only(dui.sync(env.a), env.a)
    assert report.ok, report.errors
    assert report.quarantined == len(bad)
    assert dui.item(good["id_nat_decision"], env.a) is not None
    kept = dui.quarantined(env.a)
    for name, decision in zip(DOCREF_SHAPES, bad, strict=False):
        assert kept[decision["docref_id"]].reason == "malformed-resource", kept[decision["docref_id"]]
        assert dui.runtime.state.quarantine_raw(kept[decision["docref_id"]].key, env.a)  # kept for inspection
        if name in STRUCTURAL_DOCREF_SHAPES:
            assert "fhir-structure" in (kept[decision["docref_id"]].message or ""), name
    assert kept[not_json["docref_id"]].reason == "read-refused"
    assert "not valid JSON" in kept[not_json["docref_id"]].message

    report = _only(dui.sync(env.a), env.a)  # faults spent: every one is stored now
    assert report.ok and not dui.quarantined(env.a)
    assert all(dui.item(d["id_nat_decision"], env.a) is not None for d in bad)


def _malformed_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One wrong JSON shape per Task (same id: the real, well-formed Task is served once the fault is spent).

    The first six are caught by the sync's own shape checks, the next three by the FHIR R4 structural check only.
    """
    out = [copy.deepcopy(t) for t in tasks]
    out[0]["meta"] = "v1"
    out[1]["input"] = "idNat_Decision"
    out[2]["input"][0] = "idNat_Struct"
    out[3]["input"][0]["type"] = "idNat_Struct"
    value_of = next(i for i in out[4]["input"] if "valueIdentifier" in i and
                    i["type"]["coding"][0]["code"] == sdo.ID_NAT_DECISION)
    value_of["valueIdentifier"] = value_of["valueIdentifier"]["value"]
    out[5]["input"][0]["type"]["coding"] = "idNat_Struct"
    if len(out) > 6:  # a wrong datatype deep in an input value
        out[6]["input"][0]["valueIdentifier"]["period"] = {"start": ["2026-05-12"]}
    if len(out) > 7:
        out[7]["statutESMS"] = "42"
    if len(out) > 8:  # Task.for is 0..1
        out[8]["for"] = [{"reference": "Patient/p1"}]
    return out


def test_malformed_tasks_are_quarantined_and_stored_once_well_formed(env: Env, make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    shared = new_decisions(env.sim, [env.a, env.b])[0]["id_nat_decision"]
    refused = new_decisions(env.sim, [env.a])[0]["id_nat_decision"]
    assert _only(dui.sync(env.a), env.a).ok
    others = [event(env.sim, source="esms", finess_eg=env.b, id_nat_decision=shared, statut_esms=code)
              for code in ("42", "43", "42", "43", "42", "43", "42", "43", "42")]
    mdph = event(env.sim, source="mdph", finess_eg=env.a, id_nat_decision=refused, statut_esms="46",
                 motif_esms="114")
    entries = [{"fullUrl": f"{env.sim.fhir_base_url}/Task/{t['id']}", "resource": t, "search": {"mode": "match"}}
               for t in [*_malformed_tasks([o["resource"] for o in others]), mdph["resource"]]]
    _arm(env.sim, "GET /fhir/Task", action="body",
         body=json.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}))
    report = _only(dui.sync(env.a), env.a)
    assert report.ok, report.errors  # no traceback, flux 1 and 3 went on, the good Task was applied
    assert report.statuses_received == 1 and report.quarantined == len(others)
    kept = dui.quarantined(env.a)
    assert {o["id"] for o in others} <= set(kept)
    assert all(kept[o["id"]].reason == "malformed-task" and kept[o["id"]].flux == "5" for o in others)
    assert all("fhir-structure" in (kept[o["id"]].message or "") for o in others[6:])
    assert not any("Patient/p1" in (kept[o["id"]].message or "") for o in others)
    item = dui.item(refused, env.a)
    assert item is not None and worklist.business_status(item) == "46"

    report = _only(dui.sync(env.a), env.a)  # the window is searched again: the real Tasks are well formed
    assert report.ok and not dui.quarantined(env.a)
    item = dui.item(shared, env.a)
    assert item is not None
    recorded = {r["vtTaskId"] for r in worklist.remote_statuses(item)}
    assert {o["id"] for o in others} <= recorded
    assert worklist.business_status(item) == "39"  # other establishments' statuses do not change ours


# -- size -------------------------------------------------------------------------------------------------------


def test_answer_over_the_size_cap_is_quarantined_without_being_read_whole(env: Env,
                                                                          make_dui: Callable[..., Dui]) -> None:
    dui = make_dui(vt={"max_response_bytes": 1024 * 1024})
    big, good = new_decisions(env.sim, [env.a], 2)
    doc = _docref(env.sim, big["id_nat_decision"])
    doc["content"][0]["attachment"]["data"] = "A" * (3 * 1024 * 1024)
    _arm(env.sim, f"GET /fhir/DocumentReference/{big['docref_id']}", action="body", body=json.dumps(doc))
    report = _only(dui.sync(env.a), env.a)
    assert report.ok, report.errors
    assert dui.item(good["id_nat_decision"], env.a) is not None
    item = dui.quarantined(env.a)[big["docref_id"]]
    assert item.reason == "too-large" and "1048576-byte cap" in item.message


# -- quarantine: retried with backoff, never given up; the CLI ---------------------------------------------------


def test_quarantined_item_is_retried_beyond_five_failures_until_stored(env: Env,
                                                                       make_dui: Callable[..., Dui]) -> None:
    dui = make_dui(overlap_seconds=0)
    refused = new_decisions(env.sim, [env.a])[0]
    _arm(env.sim, f"GET /fhir/DocumentReference/{refused['docref_id']}", status=403, count=7)
    for attempt in range(1, 8):
        assert _only(dui.sync(env.a), env.a).ok
        assert dui.quarantined(env.a)[refused["docref_id"]].attempts == attempt
    assert _only(dui.sync(env.a), env.a).ok  # the 8th try: the fault is spent
    assert dui.item(refused["id_nat_decision"], env.a) is not None
    assert not dui.quarantined(env.a)


def test_backoff_and_the_quarantine_cli(env: Env, make_dui: Callable[..., Dui]) -> None:
    dui = make_dui(overlap_seconds=0, quarantine_backoff_seconds=3600)
    first, second = new_decisions(env.sim, [env.a], 2)
    for decision in (first, second):
        _arm(env.sim, f"GET /fhir/DocumentReference/{decision['docref_id']}", status=403, count=50)
    time.sleep(1.1)  # the window ends at the search's Date (whole seconds): the next search lists them no more
    done = dui.cli("sync", "--once", "--establishment", env.a, "--json")
    assert done.returncode == 3, done.stderr  # items kept aside in this cycle: said by the exit status
    assert json.loads(done.stdout)["quarantine_unresolved"] >= 2

    mark = _received_count(env.sim)
    assert _only(dui.sync(env.a), env.a).ok
    assert _reads(env.sim, mark, first["docref_id"]) == 0  # not due yet: backoff

    listed = dui.cli("quarantine", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    items = {i["vt_id"]: i for i in json.loads(listed.stdout)["items"]}
    assert items[first["docref_id"]]["reason"] == "read-forbidden" and items[first["docref_id"]]["next_try"]
    status = dui.cli("status", "--json")
    assert {q["key"] for q in json.loads(status.stdout)["quarantined"]} >= {items[first["docref_id"]]["key"]}

    admin(env.sim, "DELETE", "faults")
    retried = dui.cli("quarantine", "retry", items[first["docref_id"]]["key"], "--json")
    assert retried.returncode == 0, retried.stderr
    dropped = dui.cli("quarantine", "drop", items[second["docref_id"]]["key"])
    assert dropped.returncode == 0 and "dropped" in dropped.stdout
    mark = _received_count(env.sim)
    assert _only(dui.sync(env.a), env.a).ok
    assert _reads(env.sim, mark, first["docref_id"]) == 1 and _reads(env.sim, mark, second["docref_id"]) == 0
    assert dui.item(first["id_nat_decision"], env.a) is not None
    assert json.loads(dui.cli("quarantine", "list", "--json").stdout)["count"] == 0
    everything = json.loads(dui.cli("quarantine", "list", "--all", "--json").stdout)["items"]
    assert any(i["vt_id"] == second["docref_id"] and i["message"].startswith("dropped by an operator")
               for i in everything)
    unknown = dui.cli("quarantine", "retry", "no-such-key")
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr and "no quarantined item" in unknown.stderr


# -- token request -----------------------------------------------------------------------------------------------


def test_token_request_with_form_credentials_and_a_scope(env: Env, make_dui: Callable[..., Dui]) -> None:
    assert admin(env.sim, "PUT", "token-policy", {"client_auth": "form", "scope": "sdo.esms"}).status_code == 200
    decision = new_decisions(env.sim, [env.a])[0]
    basic = make_dui("basic")
    report = _only(basic.sync(env.a), env.a)
    assert not report.ok and "token request" in " ".join(report.errors)
    form = make_dui("form", vt={"token_auth": "form", "token_scope": "sdo.esms"})
    assert _only(form.sync(env.a), env.a).ok
    assert form.item(decision["id_nat_decision"], env.a) is not None
    admin(env.sim, "PUT", "token-policy", {"client_auth": "basic", "scope": None})
    admin(env.sim, "POST", "tokens/expire")  # the next call renews its token
    assert not _only(form.sync(env.a), env.a).ok  # form credentials refused by a Basic-only server
    assert _only(basic.sync(env.a), env.a).ok


# -- MDPH events, input typing, setId ---------------------------------------------------------------------------


def test_mdph_event_with_the_ej_idnat_struct(env: Env, make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    eg_only, both = (d["id_nat_decision"] for d in new_decisions(env.sim, [env.a], 2))
    assert _only(dui.sync(env.a), env.a).ok
    dui.settings(mdph_struct_level="eg")
    task = event(env.sim, source="mdph", finess_eg=env.a, id_nat_decision=eg_only, statut_esms="46",
                 motif_esms="114", struct_level="ej")
    assert worklist.id_nat_struct(task["resource"]) == "1" + env.ej
    assert _only(dui.sync(env.a), env.a).ok
    item = dui.item(eg_only, env.a)
    assert item is not None and worklist.business_status(item) == "39"  # recorded, not applied ("eg" only)
    assert [r["applied"] for r in worklist.remote_statuses(item)] == [False]

    dui.settings(mdph_struct_level="both")  # the default
    event(env.sim, source="mdph", finess_eg=env.a, id_nat_decision=both, statut_esms="46", motif_esms="114",
          struct_level="ej")
    assert _only(dui.sync(env.a), env.a).ok
    item = dui.item(both, env.a)
    assert item is not None and worklist.business_status(item) == "46" and item["status"] == "rejected"


def test_flux5_inputs_typed_by_text_only(env: Env, make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    shared, refused = (d["id_nat_decision"] for d in new_decisions(env.sim, [env.a, env.b], 2))
    assert _only(dui.sync(env.a), env.a).ok
    other = event(env.sim, source="esms", finess_eg=env.b, id_nat_decision=shared, statut_esms="43",
                  input_typing="text")
    assert all("coding" not in i["type"] and i["type"]["text"] for i in other["resource"]["input"])
    event(env.sim, source="mdph", finess_eg=env.a, id_nat_decision=refused, statut_esms="46", motif_esms="114",
          input_typing="text")
    report = _only(dui.sync(env.a), env.a)
    assert report.ok and report.statuses_received == 2 and report.statuses_applied == 2
    item = dui.item(shared, env.a)
    assert item is not None
    assert [(r["statutESMS"], r["idNat_Struct"]) for r in worklist.remote_statuses(item)] == [("43", "1" + env.b)]
    item = dui.item(refused, env.a)
    assert item is not None and worklist.business_status(item) == "46"


def test_setid_of_the_2024_samples_strict_by_default_lenient_when_configured(env: Env,
                                                                             make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    response = admin(env.sim, "POST", "decisions", {"notified_to": [env.a], "set_id": "01"})
    assert response.status_code == 201, response.text
    decision = response.json()["decisions"][0]
    assert _only(dui.sync(env.a), env.a).ok
    assert dui.quarantined(env.a)[decision["docref_id"]].reason == "identifier-mismatch"
    assert dui.item(decision["id_nat_decision"], env.a) is None

    dui.settings(setid_rule="lenient")
    assert _only(dui.sync(env.a), env.a).ok
    assert not dui.quarantined(env.a)
    item = dui.item(decision["id_nat_decision"], env.a)  # filed under the official identifier
    assert item is not None and worklist.business_status(item) == "39"


def test_pipe_in_an_id_nat_decision_is_escaped_in_the_identifier_search(env: Env,
                                                                        make_dui: Callable[..., Dui]) -> None:
    id_nat = f"VTS|{random.SystemRandom().randrange(10**6)},P$1"
    response = admin(env.sim, "POST", "decisions", {"notified_to": [env.a], "id_nat_decision": id_nat})
    assert response.status_code == 201, response.text
    dui = make_dui()
    entity, _ = dui.runtime.config.establishment(env.a)
    client = dui.runtime.client_for(entity)
    consent = {"resourceType": "Consent", "meta": {"profile": [sdo.PROFILE_CONSENT], "source": "1" + env.a},
               "status": "active",
               "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
               "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
               "dateTime": "2026-05-11", "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM,
                                                                    "code": sdo.OPTIN}]},
               "provision": {"data": [{"meaning": "related",
                                       "reference": {"identifier": {"use": "official", "value": id_nat}}}]}}
    assert client.post_consent(env.a, consent).status == 201
    found = client.search_evaluation(env.a, id_nat)
    assert len(found) == 1
    assert {"use": "official", "value": id_nat} in found[0]["identifier"]
    query = admin(env.sim, "GET", "received?since=0").json()["requests"][-1]["query"]
    assert "identifier=VTS%5C%7C" in query and "%5C%2CP%5C%241" in query


# -- mode reprise ------------------------------------------------------------------------------------------------


def test_decision_tagged_for_reprise_lands_with_its_viatrajectoire_status(env: Env,
                                                                          make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    dui.runtime.reconciler.run_once()  # the outbound safety net starts watching HAPI now
    decision = new_decisions(env.sim, [env.a])[0]["id_nat_decision"]
    response = admin(env.sim, "POST", f"decisions/{decision}/reprise", {"finess_eg": env.a, "statuses": [
        {"statut_esms": "43", "date_statut_esms": "2025-11-03"},
        {"statut_esms": "42", "date_statut_esms": "2025-12-15"}]})
    assert response.status_code == 201, response.text
    mark = _received_count(env.sim)
    report = _only(dui.sync(env.a), env.a)
    assert report.ok and report.statuses_received >= 2
    item = dui.item(decision, env.a)
    assert item is not None
    assert worklist.business_status(item) == "42"  # the latest status entered in ViaTrajectoire, not 39
    assert worklist.input_value(item, sdo.DATE_STATUT_ESMS) == "2025-12-15"
    history = worklist.remote_statuses(item)
    assert sorted((r["statutESMS"], r.get("reprise")) for r in history) == [("42", True), ("43", True)]
    assert next(r for r in history if r["statutESMS"] == "42")["applied"] is True
    assert item["meta"]["source"].startswith(sdo.PLUGIN_SOURCE)

    # nothing is sent back: the reconciliation sees the item's new version as vtdui's own write
    reconciled = dui.runtime.reconciler.run_once()
    assert reconciled.versions_seen >= 1 and reconciled.items == []
    dui.runtime.emitter.run_pending()
    sent = admin(env.sim, "GET", f"received?since={mark}").json()["requests"]
    assert not [r for r in sent if r["method"] == "POST" and r["path"].startswith("/fhir/")]
    assert _only(dui.sync(env.a), env.a).ok  # the statuses read again change nothing
    assert (dui.item(decision, env.a) or {})["meta"]["versionId"] == item["meta"]["versionId"]


def test_reprise_off_keeps_39(env: Env, make_dui: Callable[..., Dui]) -> None:
    dui = make_dui(reprise=False)
    decision = new_decisions(env.sim, [env.a])[0]["id_nat_decision"]
    admin(env.sim, "POST", f"decisions/{decision}/reprise", {"finess_eg": env.a, "statuses": [{"statut_esms": "42"}]})
    assert _only(dui.sync(env.a), env.a).ok
    item = dui.item(decision, env.a)
    assert item is not None and worklist.business_status(item) == "39" and not worklist.remote_statuses(item)


# -- everything at once ------------------------------------------------------------------------------------------


def test_all_faults_on_one_establishment_while_the_other_is_normal(env: Env, make_dui: Callable[..., Dui]) -> None:
    dui = make_dui()
    shared = new_decisions(env.sim, [env.a, env.b])[0]["id_nat_decision"]
    # back-fill of both; the shared decision is known to A before its statuses arrive
    assert _only(dui.sync(env.a), env.a).ok and _only(dui.sync(env.b), env.b).ok
    forbidden, malformed, too_big, setid_good, good = new_decisions(env.sim, [env.a], 5)
    response = admin(env.sim, "POST", "decisions", {"notified_to": [env.a], "set_id": "02"})
    setid = response.json()["decisions"][0]
    normal = new_decisions(env.sim, [env.b], 3)
    others = [event(env.sim, source="esms", finess_eg=env.b, id_nat_decision=shared, statut_esms=code)
              for code in ("42", "43", "42", "43", "42", "43")]
    text_typed = event(env.sim, source="mdph", finess_eg=env.a, id_nat_decision=setid_good["id_nat_decision"],
                       statut_esms="46", motif_esms="114", input_typing="text", struct_level="ej")

    _arm(env.sim, f"GET /fhir/DocumentReference/{forbidden['docref_id']}", status=403)
    doc = _docref(env.sim, malformed["id_nat_decision"])
    doc["content"][0]["attachment"]["data"] = 7
    _arm(env.sim, f"GET /fhir/DocumentReference/{malformed['docref_id']}", action="body", body=json.dumps(doc))
    doc = _docref(env.sim, too_big["id_nat_decision"])
    doc["content"][0]["attachment"]["data"] = "A" * (17 * 1024 * 1024)
    _arm(env.sim, f"GET /fhir/DocumentReference/{too_big['docref_id']}", action="body", body=json.dumps(doc))
    entries = [{"fullUrl": f"{env.sim.fhir_base_url}/Task/{t['id']}", "resource": t, "search": {"mode": "match"}}
               for t in [*_malformed_tasks([o["resource"] for o in others]), text_typed["resource"]]]
    # flux 5 of A only: B's searches carry its own struct_idnat, the fault answers the next Task search (A first)
    _arm(env.sim, "GET /fhir/Task", action="body",
         body=json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries}))

    report = dui.sync(env.a, env.b)
    a, b = _only(report, env.a), _only(report, env.b)
    assert a.ok and b.ok, (a.errors, b.errors)
    assert b.quarantined == 0 and b.decisions_stored >= 3
    assert all(dui.item(d["id_nat_decision"], env.b) is not None for d in normal)
    assert dui.item(good["id_nat_decision"], env.a) is not None
    assert dui.item(setid_good["id_nat_decision"], env.a) is not None
    assert worklist.business_status(dui.item(setid_good["id_nat_decision"], env.a) or {}) == "46"
    expected = {forbidden["docref_id"]: "read-forbidden", malformed["docref_id"]: "malformed-resource",
                too_big["docref_id"]: "too-large", setid["docref_id"]: "identifier-mismatch",
                **{o["id"]: "malformed-task" for o in others}}
    kept = dui.quarantined(env.a)
    assert {k: kept[k].reason for k in expected} == expected
    status = dui.cli("status", "--json")
    assert status.returncode == 0 and "Traceback" not in status.stderr
    shown = {(q["finess_eg"], q["reason"]) for q in json.loads(status.stdout)["quarantined"]}
    assert {(env.a, reason) for reason in expected.values()} <= shown
    assert not [q for q in json.loads(status.stdout)["quarantined"] if q["finess_eg"] == env.b]

    # faults cleared (spent), the setId rule relaxed: the next cycle stores what was quarantined
    admin(env.sim, "DELETE", "faults")
    dui.settings(setid_rule="lenient")
    report = dui.sync(env.a, env.b)
    assert report.ok and not dui.quarantined(env.a)
    for decision in (forbidden, malformed, too_big, setid):
        assert dui.item(decision["id_nat_decision"], env.a) is not None
    recorded = {r["vtTaskId"] for r in worklist.remote_statuses(dui.item(shared, env.a) or {})}
    assert {o["id"] for o in others} <= recorded
    assert httpx.get(f"{env.hapi_base_url}/metadata", timeout=30).status_code == 200
