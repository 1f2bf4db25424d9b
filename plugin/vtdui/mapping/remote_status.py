"""Flux 5: statuses read from ViaTrajectoire (ESMSTask) → the local work-list item.

Two kinds of statuses arrive for a decision the establishment was notified of:

* **other establishments' statuses** (e.g. 43/185 trial period, 47/186 entered / taken in charge, 45
  refusal …): recorded on the item, one ``urn:vtdui:fhir:extension:remote-status`` extension per
  ViaTrajectoire Task, so the DUI can show "admitted elsewhere" without its own status changing;
* **MDPH events** concerning this establishment (46 refusal ratified, 49 notification cancelled,
  54 reactivated) or the whole decision (37 decision cancelled): they also change the item's
  ``businessStatus`` / ``statusReason`` / ``status``, and the MDPH's comment (``Task.description``)
  is kept as a ``Task.note``.

The ViaTrajectoire Task id is the idempotency key: a status already recorded with the same
``lastUpdated`` changes nothing (:func:`apply_remote_status` returns ``None``). An older MDPH event
arriving after a newer one is recorded but does not override the newer status. This establishment's own
statuses (its flux-4 posts read back) are ignored: the DUI is their source.

An MDPH event designates its establishment by ``idNat_Struct`` = "1" + FINESS, EJ or EG (the IG leaves it
undetermined): ``sync.mdph_struct_level`` says which are accepted ("both" by default).

**Mode reprise** (``sync.reprise``, on by default). A decision whose study began in ViaTrajectoire before
the interoperability, tagged for take-over, arrives with this establishment's own statuses already entered
in ViaTrajectoire's screens. vtdui posts a flux-4 status only after a DUI user changed the item, so while the
item still holds what vtdui wrote (39, or the last status taken over), an own status found in flux 5 cannot
be vtdui's post read back: it was entered in ViaTrajectoire. Such a status is recorded on the item (flagged
``reprise``: the history) and the latest of them (by ``lastUpdated``) becomes the item's status. Once a DUI
user set another status, own statuses read back are ignored again. Nothing is sent back: the item is
written with vtdui's ``meta.source``, which the outbound side never emits.

A status whose decision is not stored yet has no work-list item to apply to; the sync engine keeps it
pending and calls the mapping again once the decision arrived.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from vtdui import sdo
from vtdui.hookcontext import InboundContext
from vtdui.mapping import systems, worklist
from vtdui.mapping._fhir import Entry, ext

__all__ = ["apply_remote_status", "remote_status_entries", "status_of"]

Task = dict[str, Any]


def _coding_of(task: Task, code: str) -> dict[str, Any] | None:
    item = worklist.find_input(task, code)
    if item is None:
        return None
    codings = item.get("valueCodeableConcept", {}).get("coding", [])
    return dict(codings[0]) if codings else None


def status_of(esms_task: Task) -> str | None:
    """The ESMS status code (``statutESMS``) of an ESMSTask, else its unit status (``statutUnite``)."""
    value = worklist.input_value(esms_task, sdo.STATUT_ESMS) or worklist.input_value(esms_task, sdo.STATUT_UNITE)
    return str(value) if value else None


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _later(a: str | None, b: str | None) -> bool:
    """Whether instant ``a`` is strictly after ``b`` (unknown instants are never later)."""
    first, second = _instant(a), _instant(b)
    if first is None or second is None:
        return False
    if (first.tzinfo is None) != (second.tzinfo is None):
        return False
    return first > second


def _record(esms_task: Task, applied: bool, *, reprise: bool = False) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [ext(systems.RS_TASK_ID, valueString=str(esms_task.get("id", "")))]
    meta = esms_task.get("meta")
    last_updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if last_updated:
        parts.append(ext(systems.RS_LAST_UPDATED, valueInstant=last_updated))
    struct = worklist.id_nat_struct(esms_task)
    if struct:
        parts.append(ext(systems.RS_ID_NAT_STRUCT, valueString=struct))
    name = worklist.input_value(esms_task, sdo.NOM_ESMS)
    if name:
        parts.append(ext(systems.RS_NOM_ESMS, valueString=str(name)))
    for code, url in ((sdo.STATUT_ESMS, systems.RS_STATUT_ESMS), (sdo.MOTIF_ESMS, systems.RS_MOTIF_ESMS),
                      (sdo.STATUT_UNITE, systems.RS_STATUT_UNITE), (sdo.MOTIF_UNITE, systems.RS_MOTIF_UNITE)):
        value = _coding_of(esms_task, code)
        if value is not None:
            parts.append(ext(url, valueCoding=value))
    for code, url in ((sdo.DATE_STATUT_ESMS, systems.RS_DATE_STATUT_ESMS),
                      (sdo.DATE_STATUT_UNITE, systems.RS_DATE_STATUT_UNITE)):
        value = worklist.input_value(esms_task, code)
        if isinstance(value, str):
            parts.append(ext(url, valueDate=value))
    unit = worklist.input_value(esms_task, sdo.NOM_UNITE)
    if unit:
        parts.append(ext(systems.RS_NOM_UNITE, valueString=str(unit)))
    if esms_task.get("description"):
        parts.append(ext(systems.RS_DESCRIPTION, valueString=str(esms_task["description"])))
    parts.append(ext(systems.RS_APPLIED, valueBoolean=applied))
    if reprise:
        parts.append(ext(systems.RS_REPRISE, valueBoolean=True))
    return {"url": systems.EXT_REMOTE_STATUS, "extension": parts}


def _held_by_vtdui(worklist_task: Task, recorded: list[dict[str, Any]]) -> bool:
    """Whether the item still holds what vtdui wrote: 39, or the latest status it took over from flux 5."""
    current = worklist.input_value(worklist_task, sdo.STATUT_ESMS)
    if current == systems.STATUS_NOTIFIED:
        return True
    applied = [r for r in recorded if r.get(systems.RS_APPLIED) is True]
    if not applied:
        return False
    latest = applied[0]
    for record in applied[1:]:
        if _later(record.get(systems.RS_LAST_UPDATED), latest.get(systems.RS_LAST_UPDATED)):
            latest = record
    return bool(current) and current == latest.get(systems.RS_STATUT_ESMS)


def apply_remote_status(worklist_task: Task, esms_task: Task, *, own_structs: frozenset[str] | None = None,
                        reprise: bool = False) -> Task | None:
    """Return the work-list Task updated by one flux-5 ESMSTask, or ``None`` when nothing changes.

    Pure: neither argument is modified. ``None`` means the status was already recorded (same
    ViaTrajectoire Task id and ``lastUpdated``), or it is this establishment's own status read back.

    Args:
        worklist_task: the local work-list item.
        esms_task: the ESMSTask read in flux 5.
        own_structs: the idNat_Struct values that designate this establishment on MDPH events ("1" + EG
            and/or "1" + EJ); by default the item's own idNat_Struct.
        reprise: take over this establishment's own statuses entered in ViaTrajectoire (module docstring).

    Raises:
        ValueError: the ESMSTask is about another decision than the work-list item.
    """
    own_decision = worklist.id_nat_decision(worklist_task)
    their_decision = worklist.id_nat_decision(esms_task)
    if own_decision and their_decision and own_decision != their_decision:
        raise ValueError(f"ESMSTask {esms_task.get('id')} is about decision {their_decision}, "
                         f"not {own_decision}")
    vt_id = str(esms_task.get("id", ""))
    meta = esms_task.get("meta")
    last_updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    recorded = worklist.remote_statuses(worklist_task)
    for record in recorded:
        if record.get(systems.RS_TASK_ID) == vt_id and record.get(systems.RS_LAST_UPDATED) == last_updated:
            return None
    status = status_of(esms_task)
    own_struct = worklist.id_nat_struct(worklist_task)
    their_struct = worklist.id_nat_struct(esms_task)
    structs = own_structs if own_structs is not None else frozenset({own_struct} if own_struct else ())
    is_event = status in systems.MDPH_EVENTS and worklist.input_value(esms_task, sdo.STATUT_ESMS) == status
    concerns_us = status in systems.DECISION_WIDE_EVENTS or (
        their_struct in structs if is_event else own_struct is not None and their_struct == own_struct)
    taken_over = False
    if concerns_us and not is_event:
        if not (reprise and status is not None and _held_by_vtdui(worklist_task, recorded)):
            return None  # our own flux-4 status read back: the DUI already holds it
        taken_over = True  # entered in ViaTrajectoire's screens before the interoperability: mode reprise
    applies = concerns_us and (is_event or taken_over) and not any(
        r.get(systems.RS_APPLIED) is True and _later(r.get(systems.RS_LAST_UPDATED), last_updated)
        for r in recorded if r.get(systems.RS_TASK_ID) != vt_id)

    out = copy.deepcopy(worklist_task)
    out["extension"] = [e for e in out.get("extension", [])
                        if not (e.get("url") == systems.EXT_REMOTE_STATUS
                                and any(p.get("url") == systems.RS_TASK_ID and p.get("valueString") == vt_id
                                        for p in e.get("extension", [])))]
    out["extension"].append(_record(esms_task, applies, reprise=taken_over))
    if taken_over and applies and worklist.input_value(esms_task, sdo.STATUT_ESMS) is None:
        applies = False  # a unit status alone leaves the item's ESMS status as it is (recorded in the history)
    if applies and status is not None:
        status_coding = _coding_of(esms_task, sdo.STATUT_ESMS) or {}
        reason = _coding_of(esms_task, sdo.MOTIF_ESMS)
        date = worklist.input_value(esms_task, sdo.DATE_STATUT_ESMS)
        out = worklist.set_business_status(
            out, status, display=status_coding.get("display"),
            reason=reason.get("code") if reason else None,
            reason_display=reason.get("display") if reason else None,
            date=date if isinstance(date, str) else None)
        out["status"] = systems.TASK_STATUS_AFTER_EVENT.get(status, out.get("status", "requested"))
        comment = esms_task.get("description")
        if comment and not taken_over:
            note: dict[str, Any] = {"authorString": "MDPH", "text": str(comment)}
            if last_updated:
                note["time"] = last_updated
            if note not in out.get("note", []):
                out.setdefault("note", []).append(note)
    return out


def remote_status_entries(esms_task: Task, context: InboundContext) -> list[Entry] | None:
    """Transaction entries applying ``esms_task`` to ``context.worklist_task`` (``None``: nothing to do).

    The update is a ``PUT Task/<id>`` guarded by ``If-Match`` on the version that was read, so a change
    a DUI user made meanwhile is never overwritten (the transaction fails with 412 or 409 and the sync retries).
    """
    current = context.worklist_task
    if current is None or not current.get("id"):
        return None
    sync = context.config.sync
    eg_struct, ej_struct = "1" + context.establishment.finess_eg, "1" + context.legal_entity.finess_ej
    own_structs = frozenset({"eg": (eg_struct,), "ej": (ej_struct,), "both": (eg_struct, ej_struct)}
                            .get(sync.mdph_struct_level, (eg_struct,)))
    updated = apply_remote_status(current, esms_task, own_structs=own_structs, reprise=sync.reprise)
    if updated is None:
        return None
    kept_meta = {k: v for k, v in updated.get("meta", {}).items() if k in ("profile", "security", "tag")}
    updated["meta"] = {**kept_meta, "source": context.source}
    request: dict[str, Any] = {"method": "PUT", "url": f"Task/{current['id']}"}
    version = current.get("meta", {}).get("versionId")
    if version:
        request["ifMatch"] = f'W/"{version}"'
    return [{"fullUrl": f"{context.config.hapi.base_url.rstrip('/')}/Task/{current['id']}",
             "resource": updated, "request": request}]
