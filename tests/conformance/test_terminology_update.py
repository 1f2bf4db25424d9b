"""update_from_server against a real local HTTP terminology server: versions, paging, diffs, never dropping."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from terminology_server import TermServerState, serve

from vtdui import sdo
from vtdui.commands.terminology import terminology as terminology_cli
from vtdui.conformance import check_esms_task
from vtdui.profiles import terminology_resources
from vtdui.terminology import REMOVED_EXTENSION, StateTerminology, Terminology, update_from_server


def _server_j252(version: str) -> dict[str, Any]:
    term = Terminology.load()
    codes = sorted((c for _, c in term.valueset_codes(sdo.JDV_J252)), key=lambda c: (len(c), c))
    contains = [{"system": sdo.TRE_R357, "code": c, "display": term.display(sdo.TRE_R357, c)}
                for c in codes if c != "72"]  # 72 leaves the JDV
    contains.append({"system": sdo.TRE_R357, "code": "73", "display": "Statut de test"})  # a new code
    for entry in contains:
        if entry["code"] == "41":
            entry["display"] = "Contact établi"  # a display change
    return {"resourceType": "ValueSet", "id": "JDV-J252-StatutPersonnePriseChargeESMS", "url": sdo.JDV_J252,
            "version": version, "status": "active", "name": "JDV_J252_StatutPersonnePriseChargeESMS",
            "codes": contains}


def _server_a32() -> dict[str, Any]:
    cm = copy.deepcopy(next(r for r in terminology_resources() if r["url"] == sdo.ASS_A32))
    cm["version"] = "20990101120000"
    cm["group"][0]["element"].append({"code": "42", "target": [{"code": "168", "equivalence": "relatedto"}]})
    return cm


@pytest.fixture
def term_server() -> Iterator[tuple[str, TermServerState]]:
    state = TermServerState()
    state.valuesets[sdo.JDV_J252] = _server_j252("20990101120000")
    state.conceptmaps[sdo.ASS_A32] = _server_a32()
    with serve(state) as base:
        yield base, state


def test_update_reports_diffs_pages_and_keeps_removed_codes(term_server: tuple[str, TermServerState],
                                                            tmp_path: Path) -> None:
    base, state = term_server
    with httpx.Client(timeout=10) as client:
        report = update_from_server(base, [sdo.JDV_J252], client=client, state_dir=tmp_path, page_size=5)
    (change,) = report.changes
    assert change.error is None
    assert (change.old_version, change.new_version) == ("20230922120000", "20990101120000")
    assert change.added == [(sdo.TRE_R357, "73")]
    assert change.removed == [(sdo.TRE_R357, "72")]
    assert change.display_changes == [(sdo.TRE_R357, "41", "Contact effectué", "Contact établi")]
    expands = [r for r in state.requests if "$expand" in r]
    assert len(expands) == 4  # 16 codes by pages of 5
    assert any("offset=15" in r for r in expands) and all("count=5" in r for r in expands)

    written = json.loads(change.written.read_text(encoding="utf-8")) if change.written else {}
    assert written["version"] == "20990101120000"
    concepts = {c["code"]: c for i in written["compose"]["include"] for c in i["concept"]}
    assert concepts["72"]["extension"][0]["url"] == REMOVED_EXTENSION  # kept, marked

    updated = Terminology.load(state_dir=tmp_path)
    assert updated.valueset_version(sdo.JDV_J252) == "20990101120000"
    assert updated.contains(sdo.JDV_J252, sdo.TRE_R357, "73")
    assert not updated.contains(sdo.JDV_J252, sdo.TRE_R357, "72")
    assert updated.removed_codes(sdo.JDV_J252) == {(sdo.TRE_R357, "72")}
    assert updated.display(sdo.TRE_R357, "72") is not None  # stored data keeps its display
    # the checks use the updated snapshot: a status the server removed is now refused, with the reason
    from conformance_examples import statut_esms, task
    found = check_esms_task(task(statut_esms("72")), terminology=updated)
    assert any(v.rule == "binding-JDV_J252" and "removed" in v.message for v in found)
    # the shipped snapshot is untouched
    assert Terminology.load().contains(sdo.JDV_J252, sdo.TRE_R357, "72")


def test_second_update_is_unchanged_and_still_remembers_removed(term_server: tuple[str, TermServerState],
                                                                tmp_path: Path) -> None:
    base, _ = term_server
    update_from_server(base, [sdo.JDV_J252], state_dir=tmp_path)
    (change,) = update_from_server(base, [sdo.JDV_J252], state_dir=tmp_path).changes
    assert not change.changed and change.written is None
    assert Terminology.load(state_dir=tmp_path).removed_codes(sdo.JDV_J252) == {(sdo.TRE_R357, "72")}


def test_readded_code_is_reported_as_added(term_server: tuple[str, TermServerState], tmp_path: Path) -> None:
    base, state = term_server
    update_from_server(base, [sdo.JDV_J252], state_dir=tmp_path)
    state.valuesets[sdo.JDV_J252]["codes"].append({"system": sdo.TRE_R357, "code": "72", "display": "x"})
    state.valuesets[sdo.JDV_J252]["version"] = "20990201120000"
    (change,) = update_from_server(base, [sdo.JDV_J252], state_dir=tmp_path).changes
    assert change.added == [(sdo.TRE_R357, "72")]
    assert Terminology.load(state_dir=tmp_path).contains(sdo.JDV_J252, sdo.TRE_R357, "72")


def test_conceptmap_update(term_server: tuple[str, TermServerState], tmp_path: Path) -> None:
    base, _ = term_server
    (change,) = update_from_server(base, [sdo.ASS_A32], state_dir=tmp_path).changes
    assert change.added == [("42", "168")] and change.removed == []
    assert Terminology.load(state_dir=tmp_path).allowed_motifs("42") == {"168"}


def test_unknown_canonical_and_server_errors_are_reported_per_canonical(
        term_server: tuple[str, TermServerState], tmp_path: Path) -> None:
    base, state = term_server
    report = update_from_server(base, [sdo.JDV_J30, sdo.JDV_J252], state_dir=tmp_path)
    assert report.changes[0].error and "not found" in report.changes[0].error
    assert report.changes[1].error is None and report.changes[1].written is not None
    state.fail_status = 503
    report = update_from_server(base, [sdo.JDV_J252], state_dir=tmp_path)
    assert report.errors and "503" in str(report.errors[0].error)


def test_unreachable_server(tmp_path: Path) -> None:
    report = update_from_server("http://127.0.0.1:9/fhir", [sdo.JDV_J252], state_dir=tmp_path)
    assert report.errors and "unreachable" in str(report.errors[0].error)
    assert not (tmp_path / "terminology").exists()


def test_cli_update_and_show(term_server: tuple[str, TermServerState], tmp_path: Path) -> None:
    base, _ = term_server
    runner = CliRunner()
    done = runner.invoke(terminology_cli, ["update", "--server", base, "--state-dir", str(tmp_path),
                                           "--canonical", sdo.JDV_J252, "--page-size", "3"])
    assert done.exit_code == 0, done.output
    assert "added 73" in done.output and "removed 72" in done.output
    assert "'Contact effectué' -> 'Contact établi'" in done.output
    shown = runner.invoke(terminology_cli, ["show", "J252", "--state-dir", str(tmp_path)])
    assert shown.exit_code == 0
    assert "73  Statut de test" in shown.output and "(removed from the JDV)" in shown.output
    failed = runner.invoke(terminology_cli, ["update", "--server", base, "--state-dir", str(tmp_path),
                                             "--canonical", sdo.JDV_J30])
    assert failed.exit_code == 1 and "ERROR" in failed.output


def test_cli_show_unknown_name() -> None:
    done = CliRunner().invoke(terminology_cli, ["show", "J999", "--state-dir", "/nonexistent-vtdui"])
    assert done.exit_code == 2 and "J999" in done.output


def test_state_terminology_follows_an_update_without_a_restart(term_server: tuple[str, TermServerState],
                                                               tmp_path: Path) -> None:
    """What a running vtdui checks with sees the update at the next check (ASS_A32 42 -> 168 is new)."""
    base, _ = term_server
    watched = StateTerminology(tmp_path)
    before = watched.current()
    assert "168" not in before.allowed_motifs("42")
    assert watched.current() is before  # nothing changed: not read again
    update_from_server(base, [sdo.JDV_J252, sdo.ASS_A32], state_dir=tmp_path)
    after = watched.current()
    assert "168" in after.allowed_motifs("42")
    assert after.valueset_version(sdo.JDV_J252) == "20990101120000"
    assert after.contains(sdo.JDV_J252, sdo.TRE_R357, "73")
    assert watched.current() is after
