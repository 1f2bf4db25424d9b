"""The integrators' testing kit (``vtdui.testing`` and its pytest fixtures), without HAPI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vtdui import testing
from vtdui.cda.records import DecisionDocument, EvaluationDocument
from vtdui.conformance import check_esms_task, has_errors
from vtdui.errors import ConfigError


def test_contexts_need_no_certificate_nor_file() -> None:
    config = testing.sample_config()
    assert config.path is None
    assert all(entity.cert_file is None for entity in config.legal_entities)
    eg = config.legal_entities[1].establishments[2].finess_eg
    inbound = testing.inbound_context(config, finess_eg=eg)
    assert inbound.establishment.finess_eg == eg and inbound.legal_entity is config.legal_entities[1]
    outbound = testing.outbound_context(config, finess_eg=eg)
    assert outbound.establishment.units, "the sample establishments have ROR units"


def test_sample_documents_are_what_viatrajectoire_serves() -> None:
    decision, evaluation = testing.sample_decision(2), testing.sample_evaluation(2)
    assert isinstance(decision, DecisionDocument) and isinstance(evaluation, EvaluationDocument)
    assert decision.decision.id_nat_decision == evaluation.id_nat_decision
    assert testing.sample_decision_cda(2) == testing.sample_decision_cda(2)  # seeded: the same every run
    assert testing.sample_decision(2, version=2).header.version_number == 2
    with pytest.raises(IndexError, match=r"index 0\.\.4"):
        testing.sample_decision_cda(5)


def test_the_builtin_builder_answers_a_sample_change_with_a_conformant_task() -> None:
    context = testing.outbound_context()
    task = testing.plugin_manager().hook.build_esms_task(change=testing.status_change(context, statut_esms="41",
                                                                                      motif_esms="152"),
                                                         context=context)
    assert task is not None
    assert not has_errors(check_esms_task(task, expected_struct=context.establishment.id_nat_struct))


def test_plugin_manager_checks_hook_names() -> None:
    class Typo:
        from vtdui import hookimpl

        @hookimpl
        def map_decison(self, document: object, context: object) -> None:
            return None

    with pytest.raises(ConfigError, match="map_decison"):
        testing.plugin_manager(Typo())


def test_simulator_session_serves_decisions_over_http(tmp_path: Path) -> None:
    with testing.SimulatorSession(tmp_path, seed=5) as sim:
        eg = sim.establishments()[0]["finess_eg"]
        [made] = sim.new_decisions([eg])
        assert made["notified_to"] == [eg]
        rule = sim.arm_fault("POST /fhir/Task", status=503)
        assert rule["remaining"] == 1
        sim.clear_faults()
        assert sim.admin("GET", "faults")["faults"] == []
        assert sim.received() == []


def test_the_pytest_fixtures_come_with_the_installed_package(tmp_path: Path) -> None:
    (tmp_path / "test_vendor.py").write_text(textwrap.dedent("""
        from vtdui import hookimpl, testing

        class Vendor:
            @hookimpl
            def before_store(self, entries, context):
                entries.append({"vendor": context.establishment.finess_eg})

        def test_fixtures(vtdui_plugin_manager, vtdui_inbound_context, vtdui_decision, vtdui_evaluation_cda):
            pm = vtdui_plugin_manager(Vendor())
            entries = pm.hook.map_decision(document=vtdui_decision, context=vtdui_inbound_context)
            pm.hook.before_store(entries=entries, context=vtdui_inbound_context)
            assert entries[-1] == {"vendor": vtdui_inbound_context.establishment.finess_eg}
            assert testing.worklist_task(entries)["resourceType"] == "Task"
            assert vtdui_evaluation_cda.startswith(b"<?xml")
    """))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_vendor.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
