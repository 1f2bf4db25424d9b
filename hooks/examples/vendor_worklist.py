"""Example custom mapper: a DUI vendor's additions to what vtdui writes into HAPI.

What it does (a worked example of the inbound hooks; copy it into ``hooks/`` and adapt it):

1. ``map_decision`` as a **wrapper** (``@hookimpl(wrapper=True)``): the built-in mapping (or any other
   ``map_decision`` implementation) produces the transaction entries; this wrapper then amends the
   work-list Task of each decision:

   * the orientation's right type (``typeDroitOuPrestation`` of the CDA, e.g. ``11.5`` for an ESAT) is
     copied into the vendor extension :data:`ORIENTATION_TYPE_URL`, so the vendor's work-list screen
     shows it without reading the decision;
   * the MDPH's decision number (``idDecision``) becomes a second ``Task.identifier`` in the vendor's
     system :data:`DOSSIER_SYSTEM`, so ``GET Task?identifier=https://dui.example.org/dossier|<idDecision>``
     finds the item from a paper notification.

   Returning ``None`` (the inner implementations found nothing to map) is passed through unchanged.

2. ``before_store``: every resource of every inbound transaction (decisions, evaluations, flux-5
   statuses) gets the ``meta.tag`` :data:`TAG`, so the vendor tells vtdui's writes apart from what its
   own screens create: ``GET Patient?_tag=https://dui.example.org/tags|viatrajectoire``. The tag is
   added once, so a status update of an item read back from HAPI does not repeat it.

Install: put this file in the hooks directory (``hooks/`` by default, ``hooks_dir`` in ``vtdui.toml``)
or expose it under the ``vtdui`` entry-point group; ``vtdui plugins`` lists it with its two hooks. The
files of ``hooks/examples/`` are not loaded by default (the hooks directory is not searched recursively).

The work-list Task is created once (conditional create): the extension and identifier are set when the
decision first lands; later versions of the decision leave the item as the DUI's users changed it.
"""

from __future__ import annotations

from typing import Any

from vtdui import hookimpl
from vtdui.cda.records import DecisionDocument
from vtdui.hookcontext import InboundContext
from vtdui.mapping import worklist

#: Vendor extension on the work-list Task: the right type of the orientation (CNSA No_Type_droit_prestation).
ORIENTATION_TYPE_URL = "https://dui.example.org/fhir/StructureDefinition/orientation-type"
#: Vendor identifier system of the work-list item: the MDPH's idDecision.
DOSSIER_SYSTEM = "https://dui.example.org/dossier"
#: Tag on everything vtdui writes.
TAG = {"system": "https://dui.example.org/tags", "code": "viatrajectoire", "display": "Reçu de ViaTrajectoire"}


def _orientation_type(document: DecisionDocument) -> dict[str, Any] | None:
    if not document.decision.rights:
        return None
    code = document.decision.rights[0].type_droit
    coding: dict[str, Any] = {"code": code.code}
    if code.code_system:
        coding["system"] = f"urn:oid:{code.code_system}"
    if code.display:
        coding["display"] = code.display
    return coding


@hookimpl(wrapper=True)
def map_decision(document: Any, context: InboundContext) -> Any:
    """Let the other implementations map the decision, then add the vendor's fields to the work-list Task."""
    entries = yield
    if not entries or not isinstance(document, DecisionDocument):
        return entries
    coding = _orientation_type(document)
    for entry in entries:
        task = entry.get("resource", {})
        if not worklist.is_worklist_task(task):
            continue
        if coding is not None:
            task.setdefault("extension", []).append({"url": ORIENTATION_TYPE_URL, "valueCoding": coding})
        task.setdefault("identifier", []).append({"system": DOSSIER_SYSTEM, "value": document.decision.id_decision})
    return entries


@hookimpl
def before_store(entries: list[dict[str, Any]], context: InboundContext) -> None:
    """Tag every resource vtdui is about to write (once)."""
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        tags = resource.setdefault("meta", {}).setdefault("tag", [])
        if not any(t.get("system") == TAG["system"] and t.get("code") == TAG["code"] for t in tags):
            tags.append(dict(TAG))
