"""Read and write the work-list Task: one Task per (idNat_Decision, FINESS EG) in HAPI.

The work-list item is what the DUI's screens show and change. Its shape (see ``docs`` of the mapping):

* ``identifier`` ``urn:vtdui:worklist`` | ``<idNat_Decision>|<FINESS EG>`` (idempotency key);
* ``code`` ``urn:vtdui:task-kind#worklist-item``;
* ``businessStatus`` = ESMS status (TRE_R357, JDV_J252), ``statusReason`` = its reason (TRE_R358);
* ``input`` with the ESMSTask codes (InputTaskSDOCodeSystem): idNat_Struct, nomESMS, statutESMS,
  motifESMS, dateStatutESMS, the unit block (idUnite … motifUnite), idDecision, idNat_Decision;
* ``owner`` the establishment, ``focus`` the decision (Basic), ``for`` the person (Patient);
* the extension ``urn:vtdui:fhir:extension:remote-status``, one per status read in flux 5.

These helpers are pure functions on the Task's JSON so that screens, hooks and the emitter agree on
where each value lives. Setters return a new dict and never change their argument.
"""

from __future__ import annotations

import copy
from typing import Any

from vtdui import sdo
from vtdui.conformance import default_terminology
from vtdui.mapping import systems
from vtdui.mapping._fhir import coding, escape_token

__all__ = [
    "business_status",
    "find_input",
    "id_decision",
    "id_nat_decision",
    "id_nat_struct",
    "input_code",
    "input_value",
    "is_worklist_task",
    "remote_statuses",
    "set_business_status",
    "set_input",
    "status_reason",
    "worklist_identifier",
    "worklist_query",
    "worklist_value",
]

Task = dict[str, Any]

# value[x] member of each input slice (ESMSTask)
_VALUE_KEY: dict[str, str] = sdo.INPUT_VALUE_ELEMENT


def worklist_value(id_nat_decision: str, finess_eg: str) -> str:
    """The work-list identifier value: ``<idNat_Decision>|<FINESS EG>``."""
    return f"{id_nat_decision}|{finess_eg}"


def worklist_identifier(id_nat_decision: str, finess_eg: str,
                        system: str = systems.WORKLIST_SYSTEM) -> dict[str, str]:
    """The work-list item's ``Task.identifier``."""
    return {"system": system, "value": worklist_value(id_nat_decision, finess_eg)}


def worklist_query(id_nat_decision: str, finess_eg: str, system: str = systems.WORKLIST_SYSTEM) -> str:
    r"""Search parameters finding the item: ``identifier=urn:vtdui:worklist|<idNat>\\|<FINESS>``."""
    return f"identifier={system}|{escape_token(worklist_value(id_nat_decision, finess_eg))}"


def is_worklist_task(task: Task) -> bool:
    """Tell whether a Task is a work-list item written by the default mapping."""
    if task.get("resourceType") != "Task":
        return False
    return any(c.get("system") == systems.TASK_KIND_SYSTEM and c.get("code") == systems.TASK_KIND_WORKLIST
               for c in task.get("code", {}).get("coding", []))


#: The InputTaskSDOCodeSystem codes (display = code), recognised in a legacy ``type.text`` too.
_INPUT_CODES = frozenset({sdo.ID_NAT_STRUCT, sdo.NOM_ESMS, sdo.STATUT_ESMS, sdo.MOTIF_ESMS, sdo.DATE_STATUT_ESMS,
                          sdo.ID_UNITE, sdo.NOM_UNITE, sdo.CATEGORIE_ORGANISATION, sdo.TEMPORALITE_ACCUEIL,
                          sdo.ACCUEIL_SEQUENTIEL, sdo.MODE_PRISE_CHARGE, sdo.STATUT_UNITE, sdo.DATE_STATUT_UNITE,
                          sdo.MOTIF_UNITE, sdo.ID_DECISION, sdo.ID_NAT_DECISION})


def input_code(item: dict[str, Any]) -> str | None:
    """The InputTaskSDOCodeSystem code of one ``Task.input`` (``None`` for another system).

    Typed by ``type.coding`` (4.0.2 and later) or, as ViaTrajectoire may still send it, by ``type.text``
    alone (brief §13.1); a coding of the InputTaskSDOCodeSystem wins over the text.
    """
    type_ = item.get("type")
    if not isinstance(type_, dict):
        return None
    codings = type_.get("coding")
    for c in codings if isinstance(codings, list) else []:
        if isinstance(c, dict) and c.get("system") == sdo.INPUT_SYSTEM:
            code = c.get("code")
            return str(code) if code is not None else None
    text = type_.get("text")
    if isinstance(text, str) and text.strip() in _INPUT_CODES:
        return text.strip()
    return None


def find_input(task: Task, code: str) -> dict[str, Any] | None:
    """The ``Task.input`` whose type is ``code``, or ``None``."""
    for item in task.get("input", []):
        if input_code(item) == code:
            return dict(item)
    return None


def input_value(task: Task, code: str) -> Any:
    """The ``value[x]`` of the input slice ``code`` (a str, bool, dict …), or ``None``.

    Identifiers give their ``value``; CodeableConcepts give the first coding's ``code``.
    """
    item = find_input(task, code)
    if item is None:
        return None
    for key, value in item.items():
        if not key.startswith("value"):
            continue
        if key == "valueIdentifier":
            return value.get("value")
        if key == "valueCodeableConcept":
            codings = value.get("coding", [])
            return codings[0].get("code") if codings else None
        return value
    return None


def set_input(task: Task, code: str, value: Any) -> Task:
    """Return a copy of ``task`` whose input ``code`` holds ``value`` (``None`` removes the input).

    ``value`` may be the FHIR value (dict for Identifier/CodeableConcept) or a plain string: a string
    is wrapped in an Identifier, or in a CodeableConcept of the slice's code system when it is a code.
    """
    out = copy.deepcopy(task)
    inputs = [i for i in out.get("input", []) if input_code(i) != code]
    if value is not None:
        key = _VALUE_KEY.get(code, "valueString")
        inputs.append({"type": sdo.input_type(code), key: _wrap(code, key, value)})
    if inputs:
        out["input"] = inputs
    else:
        out.pop("input", None)
    return out


def _wrap(code: str, key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key == "valueIdentifier":
        return {"value": value}
    if key == "valueCodeableConcept":
        system = {
            sdo.STATUT_ESMS: sdo.TRE_R357, sdo.STATUT_UNITE: sdo.TRE_R357,
            sdo.MOTIF_ESMS: sdo.TRE_R358, sdo.MOTIF_UNITE: sdo.TRE_R358,
            sdo.CATEGORIE_ORGANISATION: sdo.TRE_R244, sdo.TEMPORALITE_ACCUEIL: sdo.TRE_R240,
            sdo.MODE_PRISE_CHARGE: sdo.TRE_R213,
        }.get(code)
        return {"coding": [coding(system, value)]}
    return value


def business_status(task: Task) -> str | None:
    """The TRE_R357 code of ``businessStatus`` (the item's ESMS status), or ``None``."""
    for c in task.get("businessStatus", {}).get("coding", []):
        if c.get("system") == sdo.TRE_R357:
            return str(c.get("code"))
    return None


def status_reason(task: Task) -> str | None:
    """The TRE_R358 code of ``statusReason``, or ``None``."""
    for c in task.get("statusReason", {}).get("coding", []):
        if c.get("system") == sdo.TRE_R358:
            return str(c.get("code"))
    return None


def set_business_status(task: Task, code: str, *, reason: str | None = None, display: str | None = None,
                        reason_display: str | None = None, date: str | None = None) -> Task:
    """Return a copy of ``task`` with a new ESMS status, its reason and date, in both places.

    ``businessStatus``/``statusReason`` are what screens show; ``input[statutESMS]``/``[motifESMS]``/
    ``[dateStatutESMS]`` mirror them with the ESMSTask codes, so both always agree.
    """
    out = copy.deepcopy(task)
    shown = display or default_terminology().display(sdo.TRE_R357, code)
    out["businessStatus"] = {"coding": [coding(sdo.TRE_R357, code, shown)]}
    out = set_input(out, sdo.STATUT_ESMS, {"coding": [coding(sdo.TRE_R357, code, shown)]})
    if reason:
        out["statusReason"] = {"coding": [coding(sdo.TRE_R358, reason, reason_display)]}
        out = set_input(out, sdo.MOTIF_ESMS, {"coding": [coding(sdo.TRE_R358, reason, reason_display)]})
    else:
        out.pop("statusReason", None)
        out = set_input(out, sdo.MOTIF_ESMS, None)
    if date:
        out = set_input(out, sdo.DATE_STATUT_ESMS, date)
    return out


def id_nat_decision(task: Task) -> str | None:
    """idNat_Decision of a work-list item (or of an ESMSTask)."""
    value = input_value(task, sdo.ID_NAT_DECISION)
    return str(value) if value else None


def id_decision(task: Task) -> str | None:
    """Return the idDecision of a work-list item (or of an ESMSTask)."""
    value = input_value(task, sdo.ID_DECISION)
    return str(value) if value else None


def id_nat_struct(task: Task) -> str | None:
    """idNat_Struct (``"1"`` + FINESS EG) of a work-list item (or of an ESMSTask)."""
    value = input_value(task, sdo.ID_NAT_STRUCT)
    return str(value) if value else None


def remote_statuses(task: Task) -> list[dict[str, Any]]:
    """The statuses read in flux 5 recorded on the item, as flat dicts (one per ViaTrajectoire Task).

    Keys are the sub-extension names (``vtTaskId``, ``idNat_Struct``, ``statutESMS`` …); coded values
    give their code.
    """
    out: list[dict[str, Any]] = []
    for extension in task.get("extension", []):
        if extension.get("url") != systems.EXT_REMOTE_STATUS:
            continue
        record: dict[str, Any] = {}
        for part in extension.get("extension", []):
            for key, value in part.items():
                if key == "valueCoding":
                    record[part["url"]] = value.get("code")
                elif key.startswith("value"):
                    record[part["url"]] = value
        out.append(record)
    return out
