"""``vtdui rehearse --config F`` against a configured ViaTrajectoire: the simulator as a separate process.

The simulator plays the vendor's test environment: started on its own over HTTPS (mTLS + OAuth2) with the
``vtdui.toml`` it writes, it is reached only through that configuration. The rehearsal gets no admin URL, so
every check comes from what a real environment gives: the decisions it notifies, vtdui's exchange log (the
201 answered and the payload's rule check) and the work list in the session's real HAPI. The scenarios that
need an action outside the DUI are skipped with the instruction a vendor needs, never shown as passed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui.receiver import subscription_templates
from vtdui.rehearsal.scenarios import NOT_ON_EMBEDDED, SCENARIOS, Save

pytestmark = pytest.mark.integration

VTDUI = str(Path(sys.executable).parent / "vtdui")
#: what needs an MDPH action, another establishment or a take-over in ViaTrajectoire's screens, or a new JDV
#: version on the ANS's terminology server
NEEDS_OUTSIDE = {"aptitude-reprise", "mdph-cancellation", "shared-decision", "jdv-update"}


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory, hapi: Any) -> Iterator[tuple[Path, str]]:
    """The simulator as ``vtdui simulator`` runs it, in its own process: its data dir (with ``vtdui.toml``)
    and its admin URL (used only to play the MDPH test contact, never for a check)."""
    data = tmp_path_factory.mktemp("vt-test-env")
    proc = subprocess.Popen([VTDUI, "simulator", "--data-dir", str(data), "--port", "0", "--admin-port", "0",
                             "--seed", "1818", "--decisions", "60", "--hapi-base-url", hapi.base_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        admin = ""
        for line in proc.stdout:
            if line.strip().startswith("admin"):
                admin = line.split()[1].removesuffix("/info")
            if line.startswith("Serving"):
                break
        else:
            pytest.fail(f"the simulator did not start: {proc.stderr.read() if proc.stderr else ''}")
        yield data, admin
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_configured_environment_non_mdph_scenarios_pass_and_the_others_are_skipped_with_instructions(
        simulator: tuple[Path, str], hapi: Any, hapi_log: Any, tmp_path: Path) -> None:
    simulator_dir, admin_url = simulator
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "VTDUI_HOOKS_DIR"}
    env.update({"FHIR_BASE_URL": hapi.base_url, "VTDUI_STATE_DIR": str(tmp_path / "state"),
                "VTDUI_HOOKS_DIR": str(tmp_path / "no-hooks")})
    config_file = simulator_dir / "vtdui.toml"
    # no Subscription of vtdui's is on before the first run (an earlier test of the session may have left some)
    off = subprocess.run([VTDUI, "setup", "--config", str(config_file), "--off"], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert off.returncode == 0, off.stderr
    command = [VTDUI, "rehearse", "--config", str(config_file)]
    run = subprocess.run([*command, "--dir", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    playable = {s.name for s in SCENARIOS} - NEEDS_OUTSIDE
    results: dict[str, Any] = {r["name"]: r for r in json.loads((out / "results.json").read_text())["scenarios"]}
    assert {n: r["verdict"] for n, r in results.items()} == {
        **{n: "pass" for n in playable}, **{n: "skipped" for n in NEEDS_OUTSIDE}}
    assert f"{len(playable)} passed, 0 failed, {len(NEEDS_OUTSIDE)} skipped, {len(NOT_ON_EMBEDDED)} not run" \
        in run.stdout
    # each skip says what to do and how to play it afterwards
    mdph = results["mdph-cancellation"]["reason"]
    assert "ask the MDPH test contact to cancel (status 49) decision " in mdph
    assert mdph.endswith("then run `vtdui rehearse --config F --only mdph-cancellation`")
    for name in NEEDS_OUTSIDE - {"mdph-cancellation", "jdv-update"}:
        assert "show the work-list item after the next cycle" in results[name]["reason"]
    assert "run `vtdui terminology update --server <the ANS terminology server" in results["jdv-update"]["reason"]
    for name in NEEDS_OUTSIDE:
        assert f"skipped {name}: " in run.stdout
    # the decisions are the ones the environment notified, one per scenario
    traces = {n: json.loads((out / "traces" / f"{n}.trace.json").read_text()) for n in playable}
    decisions = [t["id_nat"] for t in traces.values()]
    assert len(set(decisions)) == len(playable) and all(decisions)
    # the witness is vtdui's exchange log: ViaTrajectoire's 201 to every POST, the rule check of each payload
    for name, trace in traces.items():
        for step in trace["steps"]:
            checks = {c["check"]: c for c in step["checks"]}
            sent = [e for e in step["exchanges"] if e["label"] == "vtdui -> ViaTrajectoire"]
            if step["label"].startswith("DUI save"):
                assert [e["status"] for e in sent] == [201], (name, step["label"])
                assert checks["IG rules of the payload (vtdui's conformance checker)"]["ok"], (name, checks)
                accepted = [c for k, c in checks.items() if k.endswith("accepted by ViaTrajectoire (vtdui's "
                                                                         "exchange log)")]
                assert accepted and accepted[0]["found"] == 201, (name, checks)
    saves = sum(isinstance(step, Save) for s in SCENARIOS if s.name in playable for step in s.steps)
    payloads = [p.name for p in (out / "payloads").iterdir()]
    assert len([p for p in payloads if p.endswith("-esms-task.json")]) == saves
    assert "consent-evaluation-1-esms-consent.json" in payloads
    # the report shows the skips as such, with their instruction
    html = (out / "report.html").read_text()
    for name in NEEDS_OUTSIDE:
        assert f'<tr><td><a href="#{name}">{name}</a></td><td><span class="verdict notrun">SKIPPED</span>' in html
    assert html.count("not played: ") == len(NEEDS_OUTSIDE)
    assert html.count("ask the MDPH test contact to cancel") == 2  # the summary row and the scenario's section
    # the credentials of the environment are never in the evidence
    secret = json.loads((simulator_dir / "info.json").read_text())["client_secret"]
    for path in [*(out / "traces").iterdir(), *(out / "payloads").iterdir(), out / "report.html"]:
        assert secret not in path.read_text(), path
    assert "run `vtdui setup` again before `vtdui run`" in run.stdout
    # HAPI's log: no failed Subscription delivery during the run
    assert hapi_log.delivery_failures() == []

    # the vendor follows the instruction: the MDPH test contact cancels that decision (the simulator's admin
    # API plays the MDPH here, as ViaTrajectoire's team would), then the scenario alone passes
    named = re.search(r"cancel \(status 49\) decision (\S+) of establishment (\S+),", mdph)
    assert named is not None, mdph
    event = {"id_nat_decision": named[1], "source": "mdph", "finess_eg": named[2], "statut_esms": "49"}
    assert httpx.post(f"{admin_url}/events", json=event, timeout=30).status_code == 201
    # this time `vtdui setup` had pointed vtdui's Subscriptions at the production receiver: the rehearsal borrows
    # them and points them back there at the end
    with config_file.open("a", encoding="utf-8") as toml:
        toml.write('\n[receiver]\nsecret = "rehearsal-test-receiver-secret"\n')
    production = "http://127.0.0.1:9/vtdui/hook"
    setup = subprocess.run([VTDUI, "setup", "--config", str(config_file), "--endpoint", production,
                            "--no-terminology"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    try:
        again = subprocess.run([*command, "--dir", str(tmp_path / "out2"), "--only", "mdph-cancellation"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert f"vtdui's Subscriptions in HAPI point again at {production}" in again.stdout, again.stdout[-3000:]
        for template in subscription_templates():
            stored = httpx.get(f"{hapi.base_url}/Subscription/{template['id']}", timeout=30).json()
            assert stored["channel"]["endpoint"] == production and stored["status"] in ("active", "requested")
    finally:
        subprocess.run([VTDUI, "setup", "--config", str(config_file), "--off"], env=env, capture_output=True,
                       timeout=120, check=False)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "1 passed, 0 failed, 0 not run" in again.stdout
    cancelled = json.loads((tmp_path / "out2" / "traces" / "mdph-cancellation.trace.json").read_text())
    assert cancelled["id_nat"] == named[1] and cancelled["verdict"] == "pass"
    assert [s["label"] for s in cancelled["steps"]] == ["work list: decision retrieved, status 49"]
