"""The built-in mapping is an ordinary trylast plugin: a user's plugin replaces it, or defers to it."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pluggy

from vtdui import PROJECT_NAME, hookimpl, hookspecs
from vtdui.cda.records import DecisionDocument
from vtdui.hookcontext import InboundContext
from vtdui.mapping import builtin


def _manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name="builtin:vtdui.mapping.builtin")
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


class _Vendor:
    def __init__(self, answer: list[dict[str, Any]] | None) -> None:
        self.answer = answer

    @hookimpl
    def map_decision(self, document: Any, context: InboundContext) -> list[dict[str, Any]] | None:
        return self.answer


def test_default_mapping_answers_alone(decision_doc: DecisionDocument, context: InboundContext) -> None:
    entries = _manager().hook.map_decision(document=decision_doc, context=context)
    assert [e["resource"]["resourceType"] for e in entries][-1] == "Task"


def test_a_user_plugin_wins_and_can_defer(decision_doc: DecisionDocument, context: InboundContext) -> None:
    mine = [{"resource": {"resourceType": "Basic"}, "request": {"method": "POST", "url": "Basic"}}]
    assert _manager(_Vendor(mine)).hook.map_decision(document=decision_doc, context=context) == mine
    deferred = _manager(_Vendor(None)).hook.map_decision(document=decision_doc, context=context)
    assert len(deferred) > 1


def test_builtin_hook_keeps_the_bytes_the_record_carries(decision_doc: DecisionDocument, context: InboundContext,
                                                         decision_raw: bytes) -> None:
    # contract with the parser: the record carries its bytes and the CDA is stored in the DocumentReference
    assert decision_doc.raw == decision_raw
    without = builtin.map_decision(document=replace(decision_doc, raw=b""), context=context) or []
    doc = next(e["resource"] for e in without if e["resource"]["resourceType"] == "DocumentReference")
    assert "data" not in doc["content"][0]["attachment"]
    with_raw = builtin.map_decision(document=decision_doc, context=context) or []
    doc = next(e["resource"] for e in with_raw if e["resource"]["resourceType"] == "DocumentReference")
    assert base64.b64decode(doc["content"][0]["attachment"]["data"]) == decision_raw
