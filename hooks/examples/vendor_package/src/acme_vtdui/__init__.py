"""ACME DUI's vtdui plugin: what an integrator typically adds, in a distribution of its own.

* ``map_decision`` **wrapper**: the built-in mapping runs, then the work-list Task gets the orientation's
  right type as the vendor extension :data:`ORIENTATION_TYPE_URL` (the vendor's screen shows it);
* ``before_send`` / ``after_send``: a journal of what leaves for ViaTrajectoire (:data:`JOURNAL`), and the
  vendor's own trace added to nothing (a conformant resource is never changed here);
* ``on_document_rejected`` / ``on_send_error``: alerts (:data:`ALERTS`), one per problem.

The journal and the alerts are in-memory lists so that tests can read them; a real plugin would write
to the vendor's database or ticketing system.
"""

from __future__ import annotations

from typing import Any

from vtdui import hookimpl
from vtdui.mapping.worklist import is_worklist_task

#: Vendor extension on the work-list Task: the orientation's right type (CNSA No_Type_droit_prestation).
ORIENTATION_TYPE_URL = "https://acme.example/fhir/StructureDefinition/orientation-type"
#: ``(stage, flux, statutESMS or None)`` of every resource about to leave / accepted.
JOURNAL: list[tuple[str, str, str | None]] = []
#: ``(kind, detail)`` of every alert raised.
ALERTS: list[tuple[str, str]] = []


def _status(resource: dict[str, Any]) -> str | None:
    for item in resource.get("input", []):
        if any(c.get("code") == "statutESMS" for c in item.get("type", {}).get("coding", [])):
            return str(item["valueCodeableConcept"]["coding"][0]["code"])
    return None


@hookimpl(wrapper=True)
def map_decision(document: Any, context: Any) -> Any:
    """Let the mapping run, then put the orientation's right type on the work-list Task."""
    entries = yield
    if not entries or not document.decision.rights:
        return entries
    right = document.decision.rights[0].type_droit
    for entry in entries:
        if is_worklist_task(entry.get("resource", {})):
            entry["resource"].setdefault("extension", []).append({"url": ORIENTATION_TYPE_URL, "valueCode": right.code})
    return entries


@hookimpl
def before_send(resource: dict[str, Any], flux: str, context: Any) -> None:
    """Journal what is about to leave."""
    JOURNAL.append(("before_send", flux, _status(resource)))


@hookimpl
def after_send(resource: dict[str, Any], response: dict[str, Any], flux: str, context: Any) -> None:
    """Journal what ViaTrajectoire accepted."""
    JOURNAL.append(("after_send", flux, _status(resource)))


@hookimpl
def on_document_rejected(rejected: Any, context: Any) -> None:
    """Alert once per quarantined document and reason."""
    ALERTS.append(("rejected", rejected.reason))


@hookimpl
def on_send_error(resource: dict[str, Any], error: Any, flux: str, context: Any) -> None:
    """Alert on a failed emission, saying whom vtdui blames."""
    ALERTS.append(("send-error", f"{type(error).__name__}:{getattr(error, 'culprit', None)}"))
