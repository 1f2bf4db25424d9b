"""``on_document_rejected`` fires once per document and reason, whatever the number of cycles that retry it.

Only the installed testing kit: the simulator serves a broken document for a decision (its admin API), each
``run_once`` is a sync cycle with a recording plugin, against the session's HAPI server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vtdui import hookimpl, testing
from vtdui.hookcontext import InboundContext, RejectedDocument
from vtdui.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

NOT_XML = b"this is not a CDA"
WITH_DTD = b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [<!ENTITY e "x">]><ClinicalDocument/>'


class Pager:
    def __init__(self) -> None:
        self.pages: list[RejectedDocument] = []

    @hookimpl
    def on_document_rejected(self, rejected: RejectedDocument, context: InboundContext) -> None:
        self.pages.append(rejected)


def test_a_document_is_reported_once_per_reason_and_again_after_a_success(
        vtdui_simulator: testing.SimulatorSession, vtdui_runtime: Callable[..., Runtime]) -> None:
    eg = vtdui_simulator.establishments()[2]["finess_eg"]
    [decision] = vtdui_simulator.new_decisions([eg])
    id_nat = decision["id_nat_decision"]
    pager = Pager()
    runtime = vtdui_runtime(pager, establishments=[eg])

    def cycle() -> Any:
        return runtime.sync.run_once()

    vtdui_simulator.serve_document(id_nat, NOT_XML)
    first = cycle()
    assert first.total("quarantined") == 1
    assert [p.reason for p in pager.pages] == ["xml-syntax"]

    # the next cycles retry it (still quarantined) without paging again
    for _ in range(2):
        assert cycle().total("quarantined") == 1
    assert len(pager.pages) == 1

    # a new reason for the same document is news
    vtdui_simulator.serve_document(id_nat, WITH_DTD)
    assert cycle().total("quarantined") == 1
    assert [p.reason for p in pager.pages] == ["xml-syntax", "dtd-forbidden"]

    # a new version stores fine (the entry is resolved), then the same broken content pages again
    vtdui_simulator.update_decision(id_nat)
    stored = cycle()
    assert stored.total("quarantined") == 0 and stored.total("decisions_stored") == 1
    vtdui_simulator.update_decision(id_nat)
    vtdui_simulator.serve_document(id_nat, NOT_XML)
    assert cycle().total("quarantined") == 1
    assert [p.reason for p in pager.pages] == ["xml-syntax", "dtd-forbidden", "xml-syntax"]
    assert all(id_nat not in p.message for p in pager.pages)
