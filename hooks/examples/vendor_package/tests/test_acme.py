"""ACME's plugin, tested with vtdui's testing kit only (``vtdui.testing`` and its pytest fixtures).

The first tests need nothing but vtdui installed; the last ones a HAPI server (``FHIR_BASE_URL``, or vtdui's
launcher) and the simulator that the kit runs in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import acme_vtdui
import pytest

from vtdui import testing
from vtdui.errors import ConformanceError


@pytest.fixture(autouse=True)
def _fresh_journal():
    acme_vtdui.JOURNAL.clear()
    acme_vtdui.ALERTS.clear()


def test_the_wrapper_puts_the_orientation_on_the_work_list(vtdui_decision, vtdui_inbound_context):
    pm = testing.plugin_manager(acme_vtdui)
    task = testing.worklist_task(pm.hook.map_decision(document=vtdui_decision, context=vtdui_inbound_context))
    code = vtdui_decision.decision.rights[0].type_droit.code
    assert task["extension"] == [{"url": acme_vtdui.ORIENTATION_TYPE_URL, "valueCode": code}]


def test_every_sample_decision_gets_it():
    pm = testing.plugin_manager(acme_vtdui)
    for index in range(5):
        document = testing.sample_decision(index)
        task = testing.worklist_task(pm.hook.map_decision(document=document, context=testing.inbound_context()))
        assert [e["url"] for e in task["extension"]] == [acme_vtdui.ORIENTATION_TYPE_URL]


def test_installed_entry_point_and_the_module_register_once():
    # loaded from its entry point AND given explicitly: registered once, under the entry-point name
    pm = testing.plugin_manager(acme_vtdui, entrypoints=True)
    assert [name for name, plugin in pm.list_name_plugin() if plugin is acme_vtdui] == ["acme_worklist"]


def test_vtdui_plugins_lists_it_from_its_entry_point(tmp_path):
    done = subprocess.run([sys.executable, "-c", "from vtdui.cli import main; main()", "plugins"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "acme_worklist  [entrypoint (acme-vtdui)]" in done.stdout
    assert "after_send, before_send, map_decision (wrapper), on_document_rejected, on_send_error" in done.stdout
    typo = subprocess.run([sys.executable, "-c", "from vtdui.cli import main; main()", "plugins"], cwd=tmp_path,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "VTDUI_PLUGINS": "acme_wroklist"})
    assert typo.returncode == 1 and "known plugins: acme_worklist" in typo.stderr


def test_a_sync_cycle_and_a_status_going_out(vtdui_simulator, vtdui_runtime):
    eg = vtdui_simulator.establishments()[0]["finess_eg"]
    [decision] = vtdui_simulator.new_decisions([eg])
    runtime = vtdui_runtime(acme_vtdui, establishments=[eg])
    assert runtime.sync.run_once().ok
    task = runtime.store.worklist_item(decision["id_nat_decision"], eg)
    assert [e["url"] for e in task["extension"]] == [acme_vtdui.ORIENTATION_TYPE_URL]

    [item] = testing.user_saves(runtime, task, "41", "152")
    assert runtime.emitter.run_pending().sent == [item.id]
    assert acme_vtdui.JOURNAL == [("before_send", "4", "41"), ("after_send", "4", "41")]
    [received] = [r for r in vtdui_simulator.received() if decision["id_nat_decision"] in str(r["body"])]
    assert received["status"] == 201


def test_failures_alert_once_each(vtdui_simulator, vtdui_runtime):
    eg = vtdui_simulator.establishments()[1]["finess_eg"]
    [hostile, fine] = vtdui_simulator.new_decisions([eg], count=2)
    vtdui_simulator.serve_document(hostile["id_nat_decision"], b"not a CDA at all")
    runtime = vtdui_runtime(acme_vtdui, establishments=[eg])
    runtime.sync.run_once()
    runtime.sync.run_once()
    assert acme_vtdui.ALERTS == [("rejected", "xml-syntax")]

    task = runtime.store.worklist_item(fine["id_nat_decision"], eg)
    testing.user_saves(runtime, task, "41", "999")  # 999 is no TRE_R358 reason
    assert acme_vtdui.ALERTS[-1] == ("send-error", f"{ConformanceError.__name__}:build")
    assert acme_vtdui.JOURNAL == []  # before_send never saw it
