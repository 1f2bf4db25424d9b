"""Change detection: what a new version of a work-list Task or a new local Consent means for flux 4 / 2.

Pure functions: two versions of a resource in, the events to emit out. The I/O (reading the previous
version from HAPI ``_history``) belongs to the receiver and the reconciliation.

Rules:

* a version written by the plugin itself (a flux 1 notification, a flux 5 status, a note explaining a
  refused emission) is never emitted, so nothing echoes back to ViaTrajectoire. It is recognised by
  its ``meta.source`` as HAPI stored it (:func:`is_own_write`): HAPI replaces the fragment of the source
  URI with the id of the request that saved the version, and :class:`vtdui.store.HapiStore` sends every
  write with a request id of its own (:func:`own_request_id`, ``X-Request-ID``). A DUI screen's save that
  kept the ``meta`` of the plugin's version (GET, change the status, PUT) gets the id of its own request:
  a user change, even when it returns the Task to the very status vtdui wrote. The source also carries a
  mark of the version's status fields (:func:`own_write_source`): the fallback on a HAPI that does not
  store request ids (see :func:`request_id_kept`);
* only the fields flux 4 carries count: ESMS status, reason and date; unit status, reason, date and
  unit. Any other edit of the work-list Task (a note, an assignee) emits nothing;
* one version gives at most one :class:`~vtdui.hookcontext.StatusChange`: when the ESMS and the unit
  parts changed together they travel in the same ESMSTask, as the IG allows; a part that did not
  change is not repeated (ViaTrajectoire would record it as a second event);
* the status date sent (``dateStatutESMS``, ``dateStatutUnite``) is the date the status took effect
  (IG: the date of the change), chosen by :func:`status_date`: the date input when this save changed it
  (the DUI gave the date), else ``Task.lastModified`` when this save moved it forward, else the day HAPI
  stored the version (``meta.lastUpdated``). The input's old value is never reused: it is the date of
  the previous status.

Where the work-list Task keeps each field (the default local model, see :mod:`vtdui.mapping.worklist`):
ESMS status in ``businessStatus`` (TRE_R357), its reason in ``statusReason`` (TRE_R358); everything
else in ``input`` with the InputTaskSDOCodeSystem codes of ESMSTask. ``input[statutESMS]`` /
``input[motifESMS]`` are read too, as a fallback, so a DUI writing the ESMSTask way is understood.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from vtdui import sdo
from vtdui.builders import consent_decision_reference
from vtdui.hookcontext import StatusChange

__all__ = [
    "OWN_REQUEST_PREFIX",
    "ConsentEvent",
    "WorklistStatus",
    "change_from_dict",
    "change_to_dict",
    "consent_event",
    "detect_changes",
    "is_own_write",
    "own_request_id",
    "own_write_source",
    "read_worklist_status",
    "reference_of",
    "request_id_kept",
    "stamp_own_write",
    "status_date",
    "version_of",
    "worklist_key",
]

#: Fields of :class:`WorklistStatus` that make the ESMS part of an ESMSTask.
_ESMS_FIELDS = ("statut_esms", "motif_esms", "date_statut_esms")
#: Fields that make the unit part.
_UNIT_FIELDS = ("statut_unite", "motif_unite", "date_statut_unite", "id_unite")
#: Start of the request ids vtdui sends with its writes (HAPI's own ids are letters and digits only).
OWN_REQUEST_PREFIX = "vtdui-"
#: HAPI keeps the first 16 characters of a request id in ``meta.source``: vtdui's ids are exactly that long.
_REQUEST_ID_LENGTH = 16


@dataclass(frozen=True)
class WorklistStatus:
    """The flux 4 view of one version of a work-list Task."""

    id_nat_decision: str | None = None
    id_decision: str | None = None
    finess_eg: str | None = None
    statut_esms: str | None = None
    motif_esms: str | None = None
    date_statut_esms: str | None = None
    statut_unite: str | None = None
    motif_unite: str | None = None
    date_statut_unite: str | None = None
    id_unite: str | None = None


def _fingerprint(resource: Mapping[str, Any]) -> str:
    """A short digest of what vtdui's own-write mark vouches for: the flux 4 fields of a Task, else the status."""
    if resource.get("resourceType") == "Task":
        view: object = {k: v for k, v in asdict(read_worklist_status(resource)).items() if k != "id_decision"}
    else:
        view = {"status": resource.get("status")}
    canonical = json.dumps(view, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def own_request_id() -> str:
    """A fresh ``X-Request-ID`` for one write of vtdui: :data:`OWN_REQUEST_PREFIX` and random hex, 16 characters.

    HAPI stores it as the fragment of the saved versions' ``meta.source`` (it keeps 16 characters; HAPI's
    own ids have no ``-``). A client's later save of the same resource gets the id of its own request, so
    the mark cannot be carried over by copying the ``meta`` read from HAPI.
    """
    return OWN_REQUEST_PREFIX + secrets.token_hex((_REQUEST_ID_LENGTH - len(OWN_REQUEST_PREFIX)) // 2)


def request_id_kept(stored_source: object, request_id: str) -> bool | None:
    """Tell, from the ``meta.source`` HAPI answered a write with, whether HAPI stores request ids there.

    ``True`` when its fragment is ``request_id`` (or another of vtdui's: HAPI answers an update that
    changed nothing with the version it already held). ``False`` when there is no fragment: a HAPI
    configured to keep the source URI only (``store_meta_source_information = SOURCE_URI``), where vtdui
    can tell its own versions by the mark of their content only (:func:`own_write_source`), which a DUI
    save returning a Task to the status vtdui wrote, with vtdui's ``meta`` kept, matches. ``None`` when
    it cannot tell (the unchanged version of another client's request).
    """
    if not isinstance(stored_source, str) or "#" not in stored_source:
        return False
    fragment = stored_source.partition("#")[2]
    if fragment == request_id[:_REQUEST_ID_LENGTH] or fragment.startswith(OWN_REQUEST_PREFIX):
        return True
    return None


def own_write_source(resource: Mapping[str, Any]) -> str:
    """``meta.source`` for a resource vtdui writes: :data:`~vtdui.sdo.PLUGIN_SOURCE` and the mark of its content.

    The mark is a digest of the fields that decide what a version reports (the flux 4 fields of a work-list
    Task; the status of anything else). It is the fallback for a HAPI that does not store request ids (see
    :func:`is_own_write`): a save that kept vtdui's ``meta`` and changed the status no longer matches it.
    """
    return f"{sdo.PLUGIN_SOURCE}:{_fingerprint(resource)}"


def stamp_own_write(resource: Mapping[str, Any]) -> dict[str, Any]:
    """``resource`` with its mark (:func:`own_write_source`) when it carries vtdui's ``meta.source``; else as is."""
    out = dict(resource)
    meta = out.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("source"), str) and \
            meta["source"].startswith(sdo.PLUGIN_SOURCE):
        out["meta"] = {**meta, "source": own_write_source(resource)}
    return out


def is_own_write(resource: Mapping[str, Any] | None) -> bool:
    """Tell whether a resource version was written by the plugin.

    Its ``meta.source`` as HAPI stored it is :data:`~vtdui.sdo.PLUGIN_SOURCE`, and:

    * its fragment (the id of the request that saved the version) is one of vtdui's
      (:data:`OWN_REQUEST_PREFIX`); any other fragment is the id HAPI gave a client's request: a DUI
      save that kept the ``meta`` of vtdui's version is a user change, whatever status it returns to;
    * its content mark, when it has one, matches the version's content. This alone decides on a HAPI
      that stores no request id (no fragment); the bare plugin source without a mark (a version
      stamped by hand, or written before marks existed) counts as the plugin's there.
    """
    if not resource:
        return False
    source = (resource.get("meta") or {}).get("source")
    if not isinstance(source, str) or not source.startswith(sdo.PLUGIN_SOURCE):
        return False
    head, has_fragment, fragment = source.partition("#")
    if has_fragment and not fragment.startswith(OWN_REQUEST_PREFIX):
        return False
    mark = head[len(sdo.PLUGIN_SOURCE):]
    return not mark or mark == f":{_fingerprint(resource)}"


def version_of(resource: Mapping[str, Any]) -> str:
    """``meta.versionId`` of a resource (``"1"`` when the server did not say)."""
    return str((resource.get("meta") or {}).get("versionId") or "1")


def reference_of(resource: Mapping[str, Any]) -> str:
    """Versioned reference ``Type/id/_history/vid``: the idempotency key of one resource version."""
    return f"{resource.get('resourceType')}/{resource.get('id')}/_history/{version_of(resource)}"


def _codes(item: Mapping[str, Any]) -> set[str]:
    type_ = item.get("type")
    if not isinstance(type_, Mapping):
        return set()
    return {str(c.get("code")) for c in type_.get("coding", []) or []
            if isinstance(c, Mapping) and c.get("system") == sdo.INPUT_SYSTEM}


def _inputs(task: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for item in task.get("input", []) or []:
        if isinstance(item, Mapping):
            for code in _codes(item):
                found.setdefault(code, item)
    return found


def _concept_code(concept: object, system: str | None = None) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    for coding in concept.get("coding", []) or []:
        if isinstance(coding, Mapping) and coding.get("code") and (system is None or coding.get("system") == system):
            return str(coding["code"])
    return None


def _value(item: Mapping[str, Any] | None) -> str | None:
    """The value of an input as a string (code of a CodeableConcept, Identifier.value, date, string)."""
    if item is None:
        return None
    if "valueCodeableConcept" in item:
        return _concept_code(item["valueCodeableConcept"])
    if isinstance(item.get("valueIdentifier"), Mapping):
        value = item["valueIdentifier"].get("value")
        return str(value) if value else None
    for key in ("valueDate", "valueDateTime", "valueString", "valueCode"):
        if item.get(key):
            return str(item[key])[:10] if key == "valueDateTime" else str(item[key])
    return None


def worklist_key(task: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Return ``(idNat_Decision, FINESS EG)`` of a work-list Task.

    Read from ``input[idNat_Decision]`` and the owner's FINESS identifier when present, else from the
    work-list identifier ``<idNat_Decision>|<FINESS EG>``.
    """
    inputs = _inputs(task)
    id_nat = _value(inputs.get(sdo.ID_NAT_DECISION))
    finess: str | None = None
    owner = task.get("owner")
    if isinstance(owner, Mapping) and isinstance(owner.get("identifier"), Mapping):
        value = owner["identifier"].get("value")
        finess = str(value) if value else None
    for ident in task.get("identifier", []) or []:
        value = ident.get("value") if isinstance(ident, Mapping) else None
        if isinstance(value, str) and "|" in value:
            left, _, right = value.rpartition("|")
            id_nat = id_nat or left or None
            finess = finess or right or None
    if finess is not None and len(finess) == 10 and finess.startswith("1"):
        finess = finess[1:]  # an idNat_Struct was given
    return id_nat, finess


def _focus_id_decision(task: Mapping[str, Any]) -> str | None:
    focus = task.get("focus")
    ident = focus.get("identifier") if isinstance(focus, Mapping) else None
    if isinstance(ident, Mapping) and ident.get("value") and ident.get("system") != sdo.ID_NAT_DECISION_SYSTEM:
        return str(ident["value"])
    return None


def read_worklist_status(task: Mapping[str, Any]) -> WorklistStatus:
    """Read the flux 4 fields of one work-list Task version."""
    inputs = _inputs(task)
    id_nat, finess = worklist_key(task)
    statut_esms = _concept_code(task.get("businessStatus"), sdo.TRE_R357) or _value(inputs.get(sdo.STATUT_ESMS))
    motif_esms = _concept_code(task.get("statusReason"), sdo.TRE_R358) or _value(inputs.get(sdo.MOTIF_ESMS))
    return WorklistStatus(
        id_nat_decision=id_nat,
        id_decision=_value(inputs.get(sdo.ID_DECISION)) or _focus_id_decision(task),
        finess_eg=finess,
        statut_esms=statut_esms,
        motif_esms=motif_esms,
        date_statut_esms=_value(inputs.get(sdo.DATE_STATUT_ESMS)),
        statut_unite=_value(inputs.get(sdo.STATUT_UNITE)),
        motif_unite=_value(inputs.get(sdo.MOTIF_UNITE)),
        date_statut_unite=_value(inputs.get(sdo.DATE_STATUT_UNITE)),
        id_unite=_value(inputs.get(sdo.ID_UNITE)),
    )


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def status_date(before: str | None, after: str | None, previous: Mapping[str, Any] | None,
                current: Mapping[str, Any]) -> str | None:
    """The date a status (ESMS or unit) took effect, for a version that changed it.

    1. the date input (``dateStatutESMS`` / ``dateStatutUnite``), when this version changed it: the DUI
       gave the date of the change;
    2. else ``Task.lastModified`` (its date, as the DUI wrote it), when this version set it later than
       the previous version's;
    3. else the day HAPI stored this version (``meta.lastUpdated``).

    Args:
        before: the date input of the previous version (``None``: none, or no previous version).
        after: the date input of this version.
        previous: the previous version (``None`` for the first one).
        current: this version.
    """
    if after and after != before:
        return after
    modified = _instant(current.get("lastModified"))
    earlier = _instant(previous.get("lastModified")) if previous is not None else None
    if modified is not None and (earlier is None or modified > earlier):
        return str(current["lastModified"])[:10]
    return str((current.get("meta") or {}).get("lastUpdated") or "")[:10] or None


def _changed(before: WorklistStatus, after: WorklistStatus, names: tuple[str, ...]) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in names)


def detect_changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any], establishment: Any,
                   *, id_decision: str | None = None) -> list[StatusChange]:
    """Compare two versions of a work-list Task and return the status events to report.

    Args:
        previous: the version before ``current`` (``None`` when ``current`` is the first one).
        current: the new version, as HAPI stored it (with ``id`` and ``meta.versionId``).
        establishment: the :class:`~vtdui.config.Establishment` owning the item (its FINESS EG is
            used when the Task does not carry one).
        id_decision: the MDPH decision id, when the caller resolved it from the decision (Basic)
            because the Task does not carry it.

    Returns:
        Zero or one :class:`StatusChange`: nothing for the plugin's own writes, for a version
        without any status, or when no flux 4 field changed.
    """
    if is_own_write(current):
        return []
    after = read_worklist_status(current)
    if after.statut_esms is None and after.statut_unite is None:
        return []
    before = read_worklist_status(previous) if previous is not None else WorklistStatus()
    esms = after.statut_esms is not None and _changed(before, after, _ESMS_FIELDS)
    unit = after.statut_unite is not None and _changed(before, after, _UNIT_FIELDS)
    if not esms and not unit:
        return []
    id_nat = after.id_nat_decision
    finess = after.finess_eg or getattr(establishment, "finess_eg", None)
    if not id_nat or not finess:
        return []
    change = StatusChange(
        id_nat_decision=id_nat,
        id_decision=after.id_decision or id_decision or "",
        finess_eg=finess,
        task_id=str(current.get("id", "")),
        task_version=version_of(current),
        statut_esms=after.statut_esms if esms else None,
        motif_esms=after.motif_esms if esms else None,
        date_statut_esms=status_date(before.date_statut_esms, after.date_statut_esms, previous, current)
        if esms else None,
        statut_unite=after.statut_unite if unit else None,
        motif_unite=after.motif_unite if unit else None,
        date_statut_unite=status_date(before.date_statut_unite, after.date_statut_unite, previous, current)
        if unit else None,
        id_unite=after.id_unite if unit else None,
    )
    return [change]


def change_to_dict(change: StatusChange) -> dict[str, Any]:
    """Serialise a :class:`StatusChange` (kept in the outbox so an item can be rebuilt after a fix)."""
    return {f.name: getattr(change, f.name) for f in fields(change)}


def change_from_dict(data: Mapping[str, Any]) -> StatusChange:
    """Inverse of :func:`change_to_dict` (unknown keys are ignored)."""
    names = {f.name for f in fields(StatusChange)}
    return StatusChange(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ConsentEvent:
    """A local Consent to send as ESMSConsent (flux 2).

    Attributes:
        consent_id / version: the local Consent version (idempotency key).
        decision_reference: the Reference the Consent gives to the decision (literal or logical).
        id_nat_decision: the idNat_Decision when the Consent names it directly (logical reference).
        organization_reference: the Reference to the establishment, when the Consent gives one.
        finess_eg: the establishment's FINESS when the Consent names it by identifier.
    """

    consent_id: str
    version: str
    decision_reference: dict[str, Any] | None
    id_nat_decision: str | None
    organization_reference: dict[str, Any] | None
    finess_eg: str | None


def _organization(consent: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    for key in ("organization", "performer"):
        for ref in consent.get(key, []) or []:
            if not isinstance(ref, Mapping):
                continue
            ident = ref.get("identifier")
            if isinstance(ident, Mapping) and ident.get("value"):
                value = str(ident["value"])
                return dict(ref), value[1:] if len(value) == 10 and value.startswith("1") else value
            if str(ref.get("reference", "")).startswith("Organization/"):
                return dict(ref), None
    return None, None


def consent_event(current: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> ConsentEvent | None:
    """Return the flux 2 event a local Consent version carries, or ``None``.

    A Consent is sent when it becomes ``active`` (first version, or a previous version that was not
    active) and points to a decision; never for the plugin's own writes.
    """
    if is_own_write(current) or current.get("status") != "active":
        return None
    if previous is not None and previous.get("status") == "active":
        return None
    reference = consent_decision_reference(current)
    if reference is None:
        return None
    ident = reference.get("identifier")
    id_nat: str | None = None
    if isinstance(ident, Mapping) and ident.get("value") and (
            ident.get("system") == sdo.ID_NAT_DECISION_SYSTEM or ident.get("use") == "official"):
        id_nat = str(ident["value"])
    org_ref, finess = _organization(current)
    return ConsentEvent(consent_id=str(current.get("id", "")), version=version_of(current),
                        decision_reference=reference, id_nat_decision=id_nat,
                        organization_reference=org_ref, finess_eg=finess)
