"""The rehearsal's evidence writer and scenario selection, on results built by hand (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vtdui.rehearsal.report import render_html, timeline_svg, write_evidence
from vtdui.rehearsal.runner import Rehearsal, ScenarioResult, StepFailedError, StepResult
from vtdui.rehearsal.scenarios import NOT_ON_EMBEDDED, SCENARIOS, by_name

NIR = "1 84 12 75 123 456 78"


def _results() -> list[ScenarioResult]:
    ok = StepResult("DUI save: status 41 reason 152", ok=True, times={"save": 100.0, "queued": 100.2, "sent": 100.3,
                                                                       "answered": 100.35},
                    payload={"resourceType": "Task", "description": f"<script>alert(1)</script> NIR {NIR}"},
                    payload_kind="esms-task",
                    exchanges=[{"label": "DUI save", "method": "PUT", "url": "http://h/Task/<script>x", "status": 200,
                                "duration": 0.01}])
    bad = StepResult("DUI save: status 44, unit 181 reason 84", failure="vtdui did not send it: regle-StatutUnite: x",
                     rule="regle-StatutUnite")
    task = {"resourceType": "Task", "id": "t1", "meta": {"versionId": "2"}, "note": [{"text": f"appel {NIR}"}],
            "businessStatus": {"coding": [{"code": "41"}]}}
    return [ScenarioResult("contact", "Contact", "pass", id_nat="D1", finess_eg="E1", steps=[ok], before=task,
                           after=task),
            ScenarioResult("esat-trial", "Trial", "fail", id_nat="D2", finess_eg="E2", steps=[bad])]


def test_the_report_escapes_payload_text_and_names_the_broken_rule() -> None:
    html = render_html(_results(), {"jdv-update": "reason <b>"}, "title")
    assert "<script" not in html and "/Task/&lt;script&gt;x" in html
    assert NIR not in html and "reason &lt;b&gt;" in html
    assert "(rule regle-StatutUnite)" in html
    assert '<span class="verdict fail">FAIL</span>' in html and '<span class="verdict notrun">NOT RUN</span>' in html


def test_the_timeline_places_the_four_points_in_milliseconds() -> None:
    svg = timeline_svg(_results()[0].steps[0])
    assert svg.count("<circle") == 4
    assert "+0 ms" in svg and "+350 ms" in svg
    assert timeline_svg(StepResult("no times")) == ""


def test_evidence_files_are_redacted_and_private(tmp_path: Path) -> None:
    report = write_evidence(_results(), dict(NOT_ON_EMBEDDED), tmp_path)
    payload = (tmp_path / "payloads" / "contact-1-esms-task.json").read_text()
    assert NIR not in payload and "alert" not in payload
    trace = (tmp_path / "traces" / "contact.trace.json").read_text()
    assert NIR not in trace
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["name"], r["verdict"], r["rule"]) for r in results["scenarios"]] == [
        ("contact", "pass", None), ("esat-trial", "fail", "regle-StatutUnite")]
    for path in (report, tmp_path / "results.json", tmp_path / "payloads" / "contact-1-esms-task.json"):
        assert path.stat().st_mode & 0o077 == 0


def test_scenarios_are_selected_by_name_in_their_order() -> None:
    assert [s.name for s in by_name([])] == [s.name for s in SCENARIOS]
    assert [s.name for s in by_name(["exit", "contact"])] == ["contact", "exit"]
    with pytest.raises(ValueError, match="unknown scenario"):
        by_name(["nope"])


def _configured(places: dict[str, str]) -> Rehearsal:
    """A rehearsal in configured mode (no simulator admin API), without a runtime: only its rules are used."""
    rehearsal = Rehearsal.__new__(Rehearsal)
    rehearsal.admin_url, rehearsal.places = None, places
    return rehearsal


def test_configured_mode_skips_what_needs_an_action_outside_the_dui_with_the_instruction() -> None:
    rehearsal = _configured({"other": "E1", "esat": "E2"})
    reasons = {s.name: rehearsal.skip_reason(s, "D9") for s in SCENARIOS}
    assert {n for n, r in reasons.items() if r} == {"aptitude-reprise", "mdph-cancellation", "shared-decision",
                                                   "jdv-update"}
    # a real environment's JDV come from the ANS's terminology server: the instruction says which command
    assert "run `vtdui terminology update --server <the ANS terminology server FHIR base>`" in str(
        reasons["jdv-update"])
    assert reasons["mdph-cancellation"] == (
        "needs an MDPH action: ask the MDPH test contact to cancel (status 49) decision D9 of establishment E1, "
        "then run `vtdui rehearse --config F --only mdph-cancellation`")
    # without a configured ESAT the unit scenarios are skipped too, with what to add
    no_esat = _configured({"other": "E1"})
    assert "is_esat = true" in str(no_esat.skip_reason(by_name(["waiting-list"])[0]))
    assert no_esat.skip_reason(by_name(["contact"])[0]) is None


def test_configured_mode_requires_viatrajectoire_s_201_from_the_exchange_log() -> None:
    rehearsal = _configured({"other": "E1"})
    accepted = StepResult("s", exchanges=[{"label": "vtdui -> ViaTrajectoire", "status": 201}])
    rehearsal._received("D1", "Task", accepted, lambda body: True)
    assert accepted.checks[-1]["ok"] is True
    refused = StepResult("s", exchanges=[{"label": "vtdui -> ViaTrajectoire", "status": 422}])
    with pytest.raises(StepFailedError, match="answered 422"):
        rehearsal._received("D1", "Task", refused, lambda body: True)


def test_a_skipped_scenario_shows_its_instruction_not_an_empty_work_list() -> None:
    skipped = ScenarioResult("mdph-cancellation", "MDPH", "skipped", reason="ask the MDPH test contact <x>")
    html = render_html([skipped], {}, "t")
    assert '<span class="verdict notrun">SKIPPED</span>' in html
    assert html.count("ask the MDPH test contact &lt;x&gt;") == 2 and "work list before" not in html
    assert "0 passed, 0 failed, 1 skipped" in html
