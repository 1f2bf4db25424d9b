"""``vtdui cda FILE [--base64]``: JSON of what was extracted, exit 1 with the reason on a bad document."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner

from vtdui.cli import cli
from vtdui.simulator.dataset import Dataset


def test_prints_the_decision_as_json(tmp_path: Path, dataset: Dataset, decision_xml: bytes) -> None:
    path = tmp_path / "decision.xml"
    path.write_bytes(decision_xml)
    result = CliRunner().invoke(cli, ["cda", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    sim = dataset.decisions[0]
    assert data["kind"] == "decision"
    assert data["id_nat_decision"] == sim.id_nat_decision
    assert data["decision"]["id_decision"] == sim.decision.id_decision
    assert data["decision"]["rights"][0]["id_nat_structs"] == ["1" + f for f in sim.notified_to]
    assert data["warnings"] == []


def test_reads_base64(tmp_path: Path, evaluation_xml: bytes) -> None:
    path = tmp_path / "evaluation.b64"
    path.write_bytes(base64.encodebytes(evaluation_xml))
    result = CliRunner().invoke(cli, ["cda", "--base64", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "evaluation"
    assert data["evaluation"]["observations"]


def test_bad_document_exits_1_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "xxe.xml"
    path.write_bytes(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
    result = CliRunner().invoke(cli, ["cda", str(path)])
    assert result.exit_code == 1
    assert "dtd-forbidden" in result.stderr
    assert result.stdout == ""


def test_xml_given_as_base64_is_refused(tmp_path: Path, decision_xml: bytes) -> None:
    path = tmp_path / "decision.xml"
    path.write_bytes(decision_xml)
    result = CliRunner().invoke(cli, ["cda", "--base64", str(path)])
    assert result.exit_code == 1
    assert "(base64)" in result.stderr


def test_size_limit_option(tmp_path: Path, decision_xml: bytes) -> None:
    path = tmp_path / "decision.xml"
    path.write_bytes(decision_xml)
    result = CliRunner().invoke(cli, ["cda", "--max-bytes", "100", str(path)])
    assert result.exit_code == 1
    assert "too-large" in result.stderr
