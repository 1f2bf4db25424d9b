"""The default inbound mapping, registered as an ordinary plugin (``trylast``: your hooks win).

Each hook calls the pure mapping function with :data:`vtdui.mapping.options.DEFAULT_OPTIONS`; a plugin
that wants other options implements the same hook and calls the same function with its own.
"""

from __future__ import annotations

from typing import Any

from vtdui import hookimpl
from vtdui.cda.records import DecisionDocument, EvaluationDocument
from vtdui.hookcontext import InboundContext
from vtdui.mapping.decision import map_decision_entries
from vtdui.mapping.evaluation import map_evaluation_entries
from vtdui.mapping.remote_status import remote_status_entries

__all__ = ["map_decision", "map_evaluation", "map_remote_status"]


@hookimpl(trylast=True)
def map_decision(document: Any, context: InboundContext) -> list[dict[str, Any]] | None:
    """Default flux-1 mapping: Patient, Organizations, ServiceRequest, Basic, DocumentReference, work-list Task."""
    if not isinstance(document, DecisionDocument):
        return None
    return map_decision_entries(document, context)


@hookimpl(trylast=True)
def map_evaluation(document: Any, context: InboundContext) -> list[dict[str, Any]] | None:
    """Default flux-3 mapping: DocumentReference linked to the decision, and its coded Observations."""
    if not isinstance(document, EvaluationDocument):
        return None
    return map_evaluation_entries(document, context)


@hookimpl(trylast=True)
def map_remote_status(task: dict[str, Any], context: InboundContext) -> list[dict[str, Any]] | None:
    """Default flux-5 mapping: record the status on the work-list item, apply MDPH events."""
    return remote_status_entries(task, context)
