"""``vtdui rehearse`` end to end: the command as a subprocess on the embedded default, its report in a real browser.

Real components: the command starts its own HAPI (the launcher) and the simulator; the report is rendered by
Debian's headless Chromium to a PNG, with its console read. A vendor hook building a non-conformant ESMSTask
makes exactly the scenarios with a unit status fail, the broken rule named in the exit message and the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vtdui.rehearsal.scenarios import NOT_ON_EMBEDDED, SCENARIOS, RetryKept, Save

pytestmark = pytest.mark.integration

VTDUI = str(Path(sys.executable).parent / "vtdui")
HOOKS = Path(__file__).parent / "rehearsal_hooks"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]
#: the scenarios whose ESMSTask carries a unit status: the ones the broken hook must make fail
WITH_UNIT = {s.name for s in SCENARIOS if any(isinstance(step, Save) and step.statut_unite for step in s.steps)}


def _rehearse(out: Path, hooks: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VTDUI_HOOKS_DIR"}
    env["VTDUI_HOOKS_DIR"] = str(hooks or out.parent / "no-hooks")
    return subprocess.run([VTDUI, "rehearse", "--dir", str(out)], cwd=out.parent, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("rehearse") / "out"
    return out, _rehearse(out)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180, check=False)


def _console_errors(stderr: str) -> list[str]:
    """The page's console messages (Chromium logs them as ``:CONSOLE`` lines on stderr, without their level).

    The report has no script: any console message (an error, an uncaught exception) is a fault.
    """
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _render(html: Path, tmp: Path) -> tuple[Path, str, list[str]]:
    """Screenshot ``html`` to a PNG, dump its DOM, return (png, dom, console errors)."""
    png = tmp / f"{html.stem}.png"
    shot = _chromium(tmp / "profile-shot", f"--screenshot={png}", "--window-size=1280,4000", html.as_uri())
    dom = _chromium(tmp / "profile-dom", "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return png, dom.stdout, _console_errors(shot.stderr) + _console_errors(dom.stderr)


def test_every_scenario_passes_and_the_evidence_is_written(
        rehearsal: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, run = rehearsal
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # progress shown scenario by scenario
    for index, scenario in enumerate(SCENARIOS, 1):
        assert f"[{index}/{len(SCENARIOS)}] {scenario.name}" in run.stdout
    assert f"{len(SCENARIOS)} passed, 0 failed, {len(NOT_ON_EMBEDDED)} not run" in run.stdout
    results = json.loads((out / "results.json").read_text())
    assert {r["name"]: r["verdict"] for r in results["scenarios"]} == {s.name: "pass" for s in SCENARIOS}
    assert results["not_run"] == NOT_ON_EMBEDDED
    # the payloads for EVSClient: one per DUI save, each the resource as sent
    payloads = sorted(p.name for p in (out / "payloads").iterdir())
    saves = sum(isinstance(step, (Save, RetryKept)) for s in SCENARIOS for step in s.steps)
    assert len([p for p in payloads if p.endswith("-esms-task.json")]) == saves
    assert payloads.count("consent-evaluation-1-esms-consent.json") == 1
    task = json.loads((out / "payloads" / "contact-1-esms-task.json").read_text())
    assert task["resourceType"] == "Task" and task["meta"]["profile"][0].endswith("/esms-task")
    # traces: the credentials are never there
    secret = json.loads((out / "run" / "simulator" / "info.json").read_text())["client_secret"]
    for path in [*(out / "traces").iterdir(), *(out / "payloads").iterdir(), out / "report.html"]:
        text = path.read_text()
        assert secret not in text, path
        assert not re.search(r"Bearer [A-Za-z0-9]", text), path
    trace = json.loads((out / "traces" / "esat-trial.trace.json").read_text())
    sent = [e for step in trace["steps"] for e in step["exchanges"] if e["label"] == "vtdui -> ViaTrajectoire"]
    assert len(sent) == 2 and all(e["status"] == 201 for e in sent)
    assert all(e["request"]["headers"].get("authorization") == "***" for e in sent)
    # HAPI's own log: no failed Subscription delivery, no write refused (failed reads are the start probe's
    # /metadata and the Subscriptions' first lookup, 404 before they exist)
    hapi_log = (out / "run" / "hapi-db" / "hapi-server.log").read_text()
    assert not re.search(r"HAPI-(1359|1838|2659)", hapi_log)
    failed = [line for line in hapi_log.splitlines() if "fhir.access" in line and ": ERROR " in line]
    assert not [line for line in failed if re.search(r": ERROR (PUT|POST|DELETE|PATCH) ", line)], failed
    # self-contained: no attribute or CSS fetching anything
    html = (out / "report.html").read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", html)
    assert "url(" not in html and "@import" not in html and "<script" not in html
    assert html.count("<svg") >= saves


def test_the_jdv_update_reason_is_kept_failed_before_and_accepted_after(
        rehearsal: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, run = rehearsal
    assert run.returncode == 0, run.stdout[-3000:]
    steps = json.loads((out / "traces" / "jdv-update.trace.json").read_text())["steps"]
    publish, refused, update, retry, save = steps
    assert all(step["ok"] for step in steps)
    # before the update: vtdui kept the save failed for the JDV binding, ViaTrajectoire received nothing
    assert {c["check"]: c["ok"] for c in refused["checks"]} == {
        "kept failed by vtdui for binding-JDV_J251": True, "nothing received by ViaTrajectoire": True}
    assert not [e for e in refused["exchanges"] if e["label"] == "vtdui -> ViaTrajectoire"]
    # the update fetched the new versions from the simulator's terminology endpoint
    versions = next(c for c in update["checks"] if c["check"] == "JDV versions before -> after the update")
    published = next(c for c in publish["checks"] if c["check"] == "published on the terminology server")
    assert versions["errors"] == []
    assert versions["JDV_J251"].endswith(f" -> {published['version']}")
    assert versions["ASS_A32"].endswith(f" -> {published['version']}")
    # after: the kept save (retried) and a new save with the new reason are sent and accepted
    for step in (retry, save):
        sent = [e for e in step["exchanges"] if e["label"] == "vtdui -> ViaTrajectoire"]
        assert [e["status"] for e in sent] == [201], step["label"]
    assert json.loads((out / "payloads" / "jdv-update-5-esms-task.json").read_text())["resourceType"] == "Task"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium): "
                                             "the report cannot be rendered in a real browser")
def test_the_report_renders_in_headless_chromium_with_every_scenario_and_verdict(
        rehearsal: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    out, run = rehearsal
    assert run.returncode == 0, run.stdout[-3000:]
    png, dom, errors = _render(out / "report.html", tmp_path)
    assert errors == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    for scenario in SCENARIOS:
        row = re.search(rf'<tr><td><a href="#{re.escape(scenario.name)}">{re.escape(scenario.name)}</a></td>'
                        r'<td><span class="verdict (\w+)">(\w+)</span>', dom)
        assert row is not None, scenario.name
        assert row.groups() == ("pass", "PASS"), scenario.name
        assert f'id="{scenario.name}"' in dom
    for name in NOT_ON_EMBEDDED:
        assert re.search(rf'<tr><td>{re.escape(name)}</td><td><span class="verdict notrun">NOT RUN</span>', dom)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_console_check_sees_a_page_error(tmp_path: Path) -> None:
    """The control of the check above: a page that logs an error is caught (the check can fail)."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom")</script></body></html>')
    _, _, errors = _render(page, tmp_path)
    assert any("boom" in e for e in errors), errors


def test_a_hook_building_a_non_conformant_esmstask_fails_exactly_the_matching_scenarios(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = _rehearse(out, HOOKS)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    results: dict[str, Any] = {r["name"]: r for r in json.loads((out / "results.json").read_text())["scenarios"]}
    assert {name for name, r in results.items() if r["verdict"] == "fail"} == WITH_UNIT
    assert {name for name, r in results.items() if r["verdict"] == "pass"} == {s.name for s in SCENARIOS} - WITH_UNIT
    for name in WITH_UNIT:
        assert results[name]["rule"] == "regle-StatutUnite", results[name]
        assert f"{name}: step 'DUI save: status" in run.stderr
    assert run.stderr.count("[rule regle-StatutUnite]") == len(WITH_UNIT)
    html = (out / "report.html").read_text()
    assert html.count("(rule regle-StatutUnite)") == len(WITH_UNIT)
