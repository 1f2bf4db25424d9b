"""``vtdui validate FILE``: same checks, one line per broken rule, exit status a script can use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from conformance_examples import STRUCT, consent, motif_esms, statut_esms, task

from vtdui.commands.validate import validate


def _write(tmp_path: Path, resource: Any, name: str = "r.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(resource), encoding="utf-8")
    return str(path)


def test_conformant_task(tmp_path: Path) -> None:
    done = CliRunner().invoke(validate, [_write(tmp_path, task(statut_esms("42"))), "--struct", STRUCT])
    assert done.exit_code == 0 and "conformant" in done.output and "NOT" not in done.output


def test_broken_task_one_line_per_rule(tmp_path: Path) -> None:
    t = task(statut_esms("41"), motif_esms("113"))
    t["status"] = "draft"
    done = CliRunner().invoke(validate, [_write(tmp_path, t), "--struct", "1350000017"])
    assert done.exit_code == 1
    lines = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 3
    assert any("[ESMSTask.status] Task.status" in line for line in lines)
    assert any("[ASS_A32] Task.input[5].valueCodeableConcept" in line for line in lines)
    assert any("[ESMSTask.idNat_Struct]" in line for line in lines)
    assert "NOT conformant" in done.output


def test_warnings_do_not_fail(tmp_path: Path) -> None:
    done = CliRunner().invoke(validate, [_write(tmp_path, task(statut_esms("41")))])
    assert done.exit_code == 0 and "warning: [ASS_A32]" in done.output and "1 warning" in done.output


def test_kind_forces_the_profile(tmp_path: Path) -> None:
    done = CliRunner().invoke(validate, [_write(tmp_path, consent()), "--kind", "task"])
    assert done.exit_code == 1 and "[resourceType]" in done.output
    assert CliRunner().invoke(validate, [_write(tmp_path, consent()), "--kind", "consent"]).exit_code == 0


def test_json_output_is_an_operation_outcome(tmp_path: Path) -> None:
    c = consent()
    del c["policyRule"]
    done = CliRunner().invoke(validate, [_write(tmp_path, c), "--json"])
    assert done.exit_code == 1
    outcome = json.loads(done.output)
    assert outcome["issue"][0]["code"] == "invariant" and outcome["issue"][0]["expression"] == ["Consent"]


def test_bad_input_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    done = CliRunner().invoke(validate, [str(bad)])
    assert done.exit_code == 2 and "not JSON" in done.output
    done = CliRunner().invoke(validate, [_write(tmp_path, [1, 2], "list.json")])
    assert done.exit_code == 2
    done = CliRunner().invoke(validate, [_write(tmp_path, {"resourceType": "Patient"})])
    assert done.exit_code == 1 and "no IG profile applies" in done.output


def test_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("vtdui")
    done = subprocess.run([str(exe), "validate", _write(tmp_path, task(statut_esms("45")))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "[ASS_A32]" in done.stdout


def test_missing_last_updated_and_malformed_struct_are_errors_without_struct_option(tmp_path: Path) -> None:
    t = task(statut_esms("42"), struct="12345")
    del t["meta"]["lastUpdated"]
    done = CliRunner().invoke(validate, [_write(tmp_path, t)])
    assert done.exit_code == 1, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert any("[ESMSTask.meta.lastUpdated] Task.meta.lastUpdated" in line for line in errors)
    assert any("[ESMSTask.idNat_Struct]" in line and "'12345'" in line for line in errors)
    assert len(errors) == 2
