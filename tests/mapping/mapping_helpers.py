"""Helpers shared by the mapping tests (imported by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vtdui import sdo
from vtdui.cda.parse import parse_decision
from vtdui.cda.records import DecisionDocument
from vtdui.config import Config, Establishment, LegalEntity
from vtdui.hookcontext import InboundContext
from vtdui.simulator.cda_builder import build_decision_cda
from vtdui.simulator.dataset import Dataset, SimulatedDecision

NOW = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


def make_context(dataset: Dataset, simulated: SimulatedDecision, *, now: datetime = NOW,
                 worklist_task: dict[str, object] | None = None, source: str = "urn:vtdui:plugin",
                 finess_eg: str | None = None) -> InboundContext:
    finess = finess_eg or simulated.notified_to[0]
    eg = Establishment(finess_eg=finess, name=dataset.establishment(finess).name)
    entity = LegalEntity(finess_ej="010000024", name="EJ test", establishments=(eg,))
    return InboundContext(config=Config(), legal_entity=entity, establishment=eg, source=source, now=now,
                          worklist_task=worklist_task)


def version_of(simulated: SimulatedDecision, version: int,
               change: Callable[[SimulatedDecision], SimulatedDecision] | None = None,
               ) -> tuple[bytes, DecisionDocument]:
    """A later version of the decision document (optionally with changed content)."""
    item = change(simulated) if change else simulated
    raw = build_decision_cda(item.person, item.decision, version=version, effective_time=item.notified_at)
    return raw, parse_decision(raw)


def with_new_address(simulated: SimulatedDecision) -> SimulatedDecision:
    """The same decision after the person moved (a change the MDPH republishes)."""
    person = simulated.person
    assert person.address is not None
    moved = dataclasses.replace(person.address, street="99 rue du Déménagement", postal_code="35000", city="RENNES")
    return dataclasses.replace(simulated, person=dataclasses.replace(person, address=moved))


def esms_input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": sdo.INPUT_SYSTEM, "code": code}]}, **value}


def esms_task(task_id: str, *, id_nat_decision: str, finess: str, status: str, motif: str | None = None,
              last_updated: str = "2026-05-13T08:00:00.000+02:00", description: str | None = None,
              unit_status: str | None = None, id_decision: str = "35-2026-000001") -> dict[str, Any]:
    """An ESMSTask as flux 5 returns it."""
    inputs = [esms_input("idNat_Struct", valueIdentifier={"value": "1" + finess}),
              esms_input("nomESMS", valueString="ESMS " + finess)]
    if unit_status is None:
        inputs.append(esms_input("statutESMS", valueCodeableConcept={"coding": [{"system": sdo.TRE_R357,
                                                                                   "code": status}]}))
        inputs.append(esms_input("dateStatutESMS", valueDate="2026-05-12"))
    else:
        inputs += [esms_input("idUnite", valueIdentifier={"value": "U1"}), esms_input("nomUnite", valueString="Unité"),
                   esms_input("statutUnite", valueCodeableConcept={"coding": [{"system": sdo.TRE_R357,
                                                                                "code": unit_status}]}),
                   esms_input("dateStatutUnite", valueDate="2026-05-12")]
    if motif:
        inputs.append(esms_input("motifESMS", valueCodeableConcept={"coding": [{"system": sdo.TRE_R358,
                                                                                 "code": motif}]}))
    inputs += [esms_input("idDecision", valueIdentifier={"value": id_decision}),
               esms_input("idNat_Decision", valueIdentifier={"value": id_nat_decision})]
    task: dict[str, Any] = {"resourceType": "Task", "id": task_id, "meta": {"lastUpdated": last_updated},
                            "status": "completed", "intent": "plan", "input": inputs}
    if description:
        task["description"] = description
    return task


def by_type(entries: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["resource"]["resourceType"] == resource_type]


def one(entries: list[dict[str, Any]], resource_type: str) -> dict[str, Any]:
    found = by_type(entries, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, got {len(found)}"
    return found[0]
