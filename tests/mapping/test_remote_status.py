"""Flux 5 onto the work list: other establishments' statuses, MDPH events, idempotency."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from mapping_helpers import esms_task, make_context, one

from vtdui import sdo
from vtdui.cda.records import DecisionDocument
from vtdui.hookcontext import InboundContext
from vtdui.mapping import apply_remote_status, map_decision_entries, remote_status_entries, systems, worklist
from vtdui.mapping.builtin import map_remote_status
from vtdui.simulator.dataset import Dataset, SimulatedDecision

OTHER = "350000025"


@pytest.fixture
def item(decision_doc: DecisionDocument, context: InboundContext) -> dict[str, Any]:
    """The work-list Task as HAPI would return it after the first sync."""
    task = copy.deepcopy(one(map_decision_entries(decision_doc, context), "Task")["resource"])
    task["id"] = "wl-1"
    task["meta"] = {"versionId": "3", "lastUpdated": "2026-05-11T10:00:00+02:00", "source": "urn:dui#x"}
    return task


@pytest.fixture
def own(context: InboundContext) -> str:
    return context.establishment.finess_eg


def test_refusal_ratified_for_this_establishment_closes_the_item(item: dict[str, Any], own: str) -> None:
    event = esms_task("tk-1", id_nat_decision=worklist.id_nat_decision(item) or "", finess=own, status="46",
                      motif="114", description="Refus entériné par la CDAPH")
    before = copy.deepcopy(item)
    updated = apply_remote_status(item, event)
    assert item == before  # pure
    assert updated is not None
    assert worklist.business_status(updated) == "46"
    assert worklist.status_reason(updated) == "114"
    assert worklist.input_value(updated, sdo.DATE_STATUT_ESMS) == "2026-05-12"
    assert updated["status"] == "rejected"
    assert updated["note"] == [{"authorString": "MDPH", "text": "Refus entériné par la CDAPH",
                                "time": "2026-05-13T08:00:00.000+02:00"}]
    (record,) = worklist.remote_statuses(updated)
    assert record[systems.RS_TASK_ID] == "tk-1"
    assert record[systems.RS_APPLIED] is True
    # the same ViaTrajectoire Task again changes nothing
    assert apply_remote_status(updated, event) is None


@pytest.mark.parametrize(("code", "task_status"), [("49", "cancelled"), ("54", "requested")])
def test_notification_cancelled_and_reactivated(item: dict[str, Any], own: str, code: str, task_status: str) -> None:
    event = esms_task("tk-2", id_nat_decision=worklist.id_nat_decision(item) or "", finess=own, status=code)
    updated = apply_remote_status(item, event)
    assert updated is not None
    assert (worklist.business_status(updated), updated["status"]) == (code, task_status)
    assert "note" not in updated  # no MDPH comment, no note


def test_decision_cancelled_applies_whatever_establishment_it_names(item: dict[str, Any]) -> None:
    event = esms_task("tk-3", id_nat_decision=worklist.id_nat_decision(item) or "", finess=OTHER, status="37",
                      motif="173")
    updated = apply_remote_status(item, event)
    assert updated is not None
    assert (worklist.business_status(updated), updated["status"]) == ("37", "cancelled")


@pytest.mark.parametrize(("status", "unit_status"), [("47", None), ("43", None), ("46", None), ("", "186")])
def test_other_establishments_statuses_are_shown_not_applied(item: dict[str, Any], status: str,
                                                             unit_status: str | None) -> None:
    event = esms_task("tk-4", id_nat_decision=worklist.id_nat_decision(item) or "", finess=OTHER, status=status,
                      unit_status=unit_status)
    updated = apply_remote_status(item, event)
    assert updated is not None
    assert worklist.business_status(updated) == "39"
    assert updated["status"] == "requested"
    (record,) = worklist.remote_statuses(updated)
    assert record[systems.RS_ID_NAT_STRUCT] == "1" + OTHER
    assert record[systems.RS_APPLIED] is False
    if unit_status:
        assert record[systems.RS_STATUT_UNITE] == unit_status
    else:
        assert record[systems.RS_STATUT_ESMS] == status


def test_own_status_read_back_is_ignored(item: dict[str, Any], own: str) -> None:
    event = esms_task("tk-5", id_nat_decision=worklist.id_nat_decision(item) or "", finess=own, status="41",
                      motif="150")
    assert apply_remote_status(item, event) is None


def test_older_event_does_not_override_a_newer_one(item: dict[str, Any], own: str) -> None:
    nat = worklist.id_nat_decision(item) or ""
    cancelled = apply_remote_status(item, esms_task("tk-new", id_nat_decision=nat, finess=own, status="49",
                                                    last_updated="2026-05-20T08:00:00+02:00"))
    assert cancelled is not None
    late = apply_remote_status(cancelled, esms_task("tk-old", id_nat_decision=nat, finess=own, status="54",
                                                    last_updated="2026-05-15T08:00:00+02:00"))
    assert late is not None
    assert worklist.business_status(late) == "49"
    assert {r[systems.RS_TASK_ID]: r[systems.RS_APPLIED] for r in worklist.remote_statuses(late)} == {
        "tk-new": True, "tk-old": False}


def test_a_status_of_another_decision_is_refused(item: dict[str, Any], own: str) -> None:
    with pytest.raises(ValueError, match="decision"):
        apply_remote_status(item, esms_task("tk-6", id_nat_decision="VT-OTHER", finess=own, status="46"))


def test_entries_update_the_item_by_id_guarded_by_its_version(dataset: Dataset, simulated: SimulatedDecision,
                                                              item: dict[str, Any], own: str) -> None:
    event = esms_task("tk-7", id_nat_decision=worklist.id_nat_decision(item) or "", finess=own, status="46",
                      motif="114")
    ctx = make_context(dataset, simulated, worklist_task=item)
    (entry,) = remote_status_entries(event, ctx) or []
    assert entry["request"] == {"method": "PUT", "url": "Task/wl-1", "ifMatch": 'W/"3"'}
    assert entry["resource"]["meta"] == {"source": ctx.source}
    assert map_remote_status(task=event, context=ctx) == [entry]


def test_pending_status_without_worklist_item_maps_to_nothing(context: InboundContext, own: str) -> None:
    event = esms_task("tk-8", id_nat_decision="VT-UNKNOWN", finess=own, status="46")
    assert remote_status_entries(event, context) is None


# -- issue 12: EJ or EG on MDPH events, inputs typed by text, mode reprise -----------------------------------------


def _text_typed(task: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(task)
    for item in out["input"]:
        item["type"] = {"text": item["type"]["coding"][0]["code"]}
    return out


def test_mdph_event_naming_the_ej_applies_when_the_ej_is_accepted(item: dict[str, Any]) -> None:
    nat = worklist.id_nat_decision(item) or ""
    event = esms_task("tk-ej", id_nat_decision=nat, finess="350000014", status="46", motif="114")
    own = worklist.id_nat_struct(item) or ""
    refused = apply_remote_status(item, event, own_structs=frozenset({own}))
    assert refused is not None and worklist.business_status(refused) == "39"  # recorded, not applied
    applied = apply_remote_status(item, event, own_structs=frozenset({own, "1350000014"}))
    assert applied is not None and worklist.business_status(applied) == "46"


@pytest.mark.parametrize("level", ["eg", "ej", "both"])
def test_mdph_struct_level_setting(dataset: Dataset, simulated: SimulatedDecision, item: dict[str, Any],
                                   level: str) -> None:
    import dataclasses

    ctx = make_context(dataset, simulated, worklist_task=item)
    config = dataclasses.replace(ctx.config, sync=dataclasses.replace(ctx.config.sync, mdph_struct_level=level))
    ctx = dataclasses.replace(ctx, config=config)
    nat = worklist.id_nat_decision(item) or ""
    by_ej = esms_task("tk-l1", id_nat_decision=nat, finess=ctx.legal_entity.finess_ej, status="49")
    by_eg = esms_task("tk-l2", id_nat_decision=nat, finess=ctx.establishment.finess_eg, status="49")
    applied = {name: worklist.business_status((remote_status_entries(task, ctx) or [{}])[0]["resource"])
               for name, task in (("ej", by_ej), ("eg", by_eg))}
    assert applied == {"eg": "49" if level != "ej" else "39", "ej": "49" if level != "eg" else "39"}


def test_inputs_typed_by_text_only(item: dict[str, Any], own: str) -> None:
    nat = worklist.id_nat_decision(item) or ""
    event = _text_typed(esms_task("tk-txt", id_nat_decision=nat, finess=own, status="46", motif="114"))
    updated = apply_remote_status(item, event)
    assert updated is not None and worklist.business_status(updated) == "46"
    other = _text_typed(esms_task("tk-txt2", id_nat_decision=nat, finess=OTHER, status="43"))
    shown = apply_remote_status(item, other)
    assert shown is not None
    (record,) = worklist.remote_statuses(shown)
    assert (record[systems.RS_STATUT_ESMS], record[systems.RS_ID_NAT_STRUCT]) == ("43", "1" + OTHER)


def test_reprise_takes_the_latest_own_status_entered_in_viatrajectoire(item: dict[str, Any], own: str) -> None:
    nat = worklist.id_nat_decision(item) or ""
    first = esms_task("tk-r1", id_nat_decision=nat, finess=own, status="43", last_updated="2026-05-13T08:00:00+02:00")
    latest = esms_task("tk-r2", id_nat_decision=nat, finess=own, status="42", last_updated="2026-05-14T08:00:00+02:00")
    assert apply_remote_status(item, latest) is None  # reprise off: an own status read back
    newer = apply_remote_status(item, latest, reprise=True)
    assert newer is not None and worklist.business_status(newer) == "42"
    both = apply_remote_status(newer, first, reprise=True)  # the older one arrives later: history only
    assert both is not None and worklist.business_status(both) == "42"
    records = {r[systems.RS_TASK_ID]: (r[systems.RS_APPLIED], r.get(systems.RS_REPRISE))
               for r in worklist.remote_statuses(both)}
    assert records == {"tk-r2": (True, True), "tk-r1": (False, True)}
    assert "note" not in both


def test_reprise_stops_once_a_dui_user_set_a_status(item: dict[str, Any], own: str) -> None:
    nat = worklist.id_nat_decision(item) or ""
    by_user = worklist.set_business_status(item, "41", reason="150")
    read_back = esms_task("tk-u", id_nat_decision=nat, finess=own, status="41", motif="150")
    assert apply_remote_status(by_user, read_back, reprise=True) is None
