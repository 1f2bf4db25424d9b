"""Rules of the IG ans.fhir.fr.sdo 4.0.7 profiles, as pure functions.

The one place where vtdui decides whether an ESMSTask, ESMSConsent, ESMSDocumentReference or one of
the two search Bundles is conformant: the plugin runs these checks before anything leaves, the
ViaTrajectoire simulator runs the same ones on what it receives, ``vtdui validate`` on a file. So
the sender and the receiver can never disagree.

Each check returns a list of :class:`~vtdui.errors.RuleViolation`; ``severity="error"`` blocks
sending, ``"warning"`` is advice. Rule names are stable (see :data:`RULES`) and paths use the
FHIRPath style of validators (``Task.input[3].valueCodeableConcept``).

Decisions where the IG is silent or contradicts itself (brief §11), each documented at its rule:

* ``meta.lastUpdated`` (Task 1..1): the server sets it. ``mode="server-response"`` (a Task read
  from ViaTrajectoire, a flux 5 entry) requires it (error); ``mode="outgoing"`` (a create body)
  only warns when it is missing, because the server overwrites it anyway, unless ``strict=True``
  (``vtdui validate``: the profile says 1..1, and a strict validator refuses the body without it).
* ``idNat_Struct`` that is neither "1" + FINESS nor "3" + SIRET: an error (it cannot designate an ESMS).
* ``regle-StatutUnite`` is checked on the input *codes* (the published expression tests
  ``type.text`` and never fires).
* ASS_A32: a motif needs its status and must be allowed for it; a missing motif is an error for
  45/46/180/181/188 and a warning for 37/41/49/51/54 (configurable in :class:`Terminology`).
  For ESMS statuses 49/51, ASS_A32 allows motifs (100; 92/93/172) that are only in JDV_J250 while
  ``motifESMS`` is bound to JDV_J251: such a pair is accepted with a warning.
* JDV_J34 is taken as possibly incomplete: an unknown TRE_R244 code is a warning, not an error.

With no ``terminology`` argument the checks use the snapshot shipped in ``profiles/terminology``
(read once, then cached); pass a :class:`Terminology` to use an updated one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final, Literal

from vtdui import sdo
from vtdui.errors import ConformanceError, RuleViolation
from vtdui.terminology import Terminology

__all__ = [
    "RULES",
    "BundleKind",
    "Mode",
    "Rule",
    "check_bundle",
    "check_esms_consent",
    "check_esms_document_reference",
    "check_esms_task",
    "check_resource",
    "default_terminology",
    "has_errors",
    "raise_for_violations",
    "to_operation_outcome",
]

Mode = Literal["outgoing", "server-response"]
BundleKind = Literal["decision-evaluation", "notification"]
Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """A rule vtdui checks: its OperationOutcome issue code and what it says."""

    issue_code: str
    description: str


#: Every rule name a check can report, with the OperationOutcome ``issue.code`` it maps to.
RULES: Final[Mapping[str, Rule]] = {
    "resourceType": Rule("structure", "the resource has the type the flux expects"),
    "meta.profile": Rule("structure", "meta.profile, when present, names the IG profile (or its legacy name)"),
    "ESMSTask.meta.lastUpdated": Rule("required", "Task.meta.lastUpdated 1..1, an instant"),
    "ESMSTask.status": Rule("value", "Task.status fixed to 'completed'"),
    "ESMSTask.intent": Rule("value", "Task.intent fixed to 'plan'"),
    "ESMSTask.input": Rule("required", "Task.input 4..*"),
    "ESMSTask.input.type": Rule("code-invalid", "input.type coded in InputTaskSDOCodeSystem with a known code"),
    "ESMSTask.input.slice-cardinality": Rule(
        "required", "idNat_Struct, nomESMS, idDecision, idNat_Decision 1..1; other slices 0..1"),
    "ESMSTask.input.value": Rule("structure", "one value[x] of the type of the slice, not empty"),
    "ESMSTask.input.date": Rule("value", "dateStatutESMS / dateStatutUnite are valid FHIR dates"),
    "ESMSTask.input.statut": Rule("business-rule", "a status event carries statutESMS or statutUnite"),
    "ESMSTask.idNat_Struct": Rule("business-rule", "idNat_Struct is '1'+FINESS or '3'+SIRET, the caller's"),
    "ESMSTask.modePriseCharge.coding": Rule("structure", "modePriseCharge has exactly one coding"),
    "regle-ModePriseEnCharge": Rule("invariant", "(legacy, optional) modePriseCharge is 46, 47 or 48"),
    "regle-StatutUnite": Rule(
        "invariant", "statutUnite needs idUnite, nomUnite, categorieOrganisation, modePriseCharge, dateStatutUnite"),
    "ASS_A32": Rule("invariant", "motif present only with its status, allowed by ASS_A32, present when due"),
    "Coding.system": Rule("code-invalid", "Coding.system is the TRE code system, never the JDV URL"),
    "Coding.display": Rule("code-invalid", "Coding.display is a display of the code"),
    "binding-JDV_J252": Rule("code-invalid", "statutESMS in JDV_J252"),
    "binding-JDV_J253": Rule("code-invalid", "statutUnite in JDV_J253"),
    "binding-JDV_J251": Rule("code-invalid", "motifESMS in JDV_J251"),
    "binding-JDV_J250": Rule("code-invalid", "motifUnite in JDV_J250"),
    "binding-JDV_J264": Rule("code-invalid", "modePriseCharge in JDV_J264"),
    "binding-JDV_J30": Rule("code-invalid", "temporaliteAccueil in JDV_J30"),
    "binding-JDV_J34": Rule("code-invalid", "categorieOrganisation in JDV_J34"),
    "ESMSConsent.meta.source": Rule("required", "Consent.meta.source 1..1 = idNat_Struct of the ESMS"),
    "ESMSConsent.status": Rule("value", "Consent.status fixed to 'active'"),
    "ESMSConsent.scope": Rule("value", "Consent.scope = consentscope#patient-privacy"),
    "ESMSConsent.category": Rule("value", "every Consent.category = LOINC 59284-0, at least one"),
    "ESMSConsent.dateTime": Rule("required", "Consent.dateTime 1..1, a valid dateTime"),
    "ESMSConsent.provision.data": Rule("required", "Consent.provision.data 1..1"),
    "ESMSConsent.provision.data.meaning": Rule("value", "provision.data.meaning fixed to 'related'"),
    "ESMSConsent.provision.data.reference.identifier": Rule(
        "required", "provision.data.reference.identifier use=official, value=idNat_Decision"),
    "ppc-1": Rule("invariant", "Consent.policy or Consent.policyRule exists (base R4)"),
    "ESMSDocumentReference.identifier": Rule("required", "identifier 2..2: one usual (idDecision), one official"),
    "ESMSDocumentReference.status": Rule("required", "DocumentReference.status 1..1"),
    "binding-type-document-reference-esms-valueset": Rule(
        "code-invalid", "type has exactly one coding, LOINC 57830-2 or 51848-0"),
    "ESMSDocumentReference.content": Rule("required", "content 1..1 with attachment.title 1..1"),
    "ESMSDocumentReference.content.data": Rule("value", "attachment.data is valid base64"),
    "regle-NomPieceJointe-type": Rule("invariant", "title matches the type (57830-2 / 51848-0)"),
    "regle-Contenu": Rule("invariant", "attachment.data present when the full resource is sent (warning)"),
    "Bundle.type": Rule("value", "Bundle.type fixed to 'searchset'"),
    "Bundle.entry.resource": Rule("required", "each entry has one resource of the expected type"),
}

# -- slices of ESMSTask.input ---------------------------------------------------------------------

_REQUIRED_SLICES: Final = (sdo.ID_NAT_STRUCT, sdo.NOM_ESMS, sdo.ID_DECISION, sdo.ID_NAT_DECISION)
_SLICE_VALUE: Final[Mapping[str, str]] = sdo.INPUT_VALUE_ELEMENT
#: slice -> (bound value set, rule name, short JDV name)
_BINDINGS: Final[Mapping[str, tuple[str, str]]] = {
    sdo.STATUT_ESMS: (sdo.JDV_J252, "JDV_J252"),
    sdo.MOTIF_ESMS: (sdo.JDV_J251, "JDV_J251"),
    sdo.STATUT_UNITE: (sdo.JDV_J253, "JDV_J253"),
    sdo.MOTIF_UNITE: (sdo.JDV_J250, "JDV_J250"),
    sdo.MODE_PRISE_CHARGE: (sdo.JDV_J264, "JDV_J264"),
    sdo.TEMPORALITE_ACCUEIL: (sdo.JDV_J30, "JDV_J30"),
    sdo.CATEGORIE_ORGANISATION: (sdo.JDV_J34, "JDV_J34"),
}
#: value sets whose snapshot may lack codes: an unknown code of this system is only a warning
_OPEN_VALUESETS: Final[Mapping[str, str]] = {sdo.JDV_J34: sdo.TRE_R244}
_LEGACY_INPUTS: Final = frozenset({sdo.TYPE_DROIT_PRESTATION})
_KNOWN_INPUTS: Final = frozenset(_SLICE_VALUE) | _LEGACY_INPUTS
_LEGACY_TASK_PROFILE: Final = f"{sdo.IG_BASE}/StructureDefinition/sdo-task"
_LEGACY_DOCREF_PROFILE: Final = f"{sdo.IG_BASE}/StructureDefinition/sdo-document-reference"
_LEGACY_NOTIF_PROFILE: Final = f"{sdo.IG_BASE}/StructureDefinition/sdo-bundle-resultat-recherche-notification-esms"
_LEGACY_MODES: Final = frozenset({"46", "47", "48"})

_DATE_RE: Final = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
_DATETIME_RE: Final = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$"
)
_INSTANT_RE: Final = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$"
)
_ID_NAT_STRUCT_RE: Final = re.compile(r"^(1(\d{2}|2A|2B)\d{7}|3\d{14})$")
_BASE64_RE: Final = re.compile(r"^[A-Za-z0-9+/\s]*={0,2}\s*$")


# -- plumbing ---------------------------------------------------------------------------------------


class _Found:
    """Collects violations in the order the checks find them."""

    def __init__(self) -> None:
        self.items: list[RuleViolation] = []

    def error(self, rule: str, path: str, message: str) -> None:
        self.add(rule, path, message, "error")

    def warning(self, rule: str, path: str, message: str) -> None:
        self.add(rule, path, message, "warning")

    def add(self, rule: str, path: str, message: str, severity: Severity) -> None:
        assert rule in RULES, rule  # a new rule must be registered (issue code, documentation)
        self.items.append(RuleViolation(rule=rule, path=path, message=message, severity=severity))


@lru_cache(maxsize=1)
def default_terminology() -> Terminology:
    """The terminology snapshot shipped in ``profiles/terminology`` (read once)."""
    return Terminology.load()


def _is_valid_date(value: object) -> bool:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        return False
    if len(value) == 10:
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
    return True


def _is_valid_datetime(value: object, *, instant: bool = False) -> bool:
    if not isinstance(value, str) or not (_INSTANT_RE if instant else _DATETIME_RE).match(value):
        return False
    if len(value) >= 10:
        try:
            date.fromisoformat(value[:10])
            if len(value) > 10:
                datetime.fromisoformat(value.replace("Z", "+00:00").replace(":60", ":59"))
        except ValueError:
            return False
    return True


def _codings(concept: object) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, Mapping)] if isinstance(codings, list) else []


def _has_coding(concept: object, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in _codings(concept))


def _check_profile(found: _Found, resource: Mapping[str, Any], root: str, profile: str,
                   legacy: Iterable[str] = (), *, mode: Mode = "outgoing") -> None:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    if profiles is None:
        return  # meta.profile is optional: conformance is checked on content, not on the claim
    if not isinstance(profiles, list):
        found.error("meta.profile", f"{root}.meta.profile", "meta.profile must be an array of canonical URLs")
        return
    legacy_set = set(legacy)
    if profile in profiles:
        return
    if legacy_set & set(profiles):
        if mode == "outgoing":
            found.warning("meta.profile", f"{root}.meta.profile",
                          f"legacy profile claimed; send {profile} (IG 4.0.7)")
        return
    found.error("meta.profile", f"{root}.meta.profile",
                f"meta.profile {profiles} does not name {profile}; put that URL or leave meta.profile out")


def _check_resource_type(found: _Found, resource: object, expected: str, root: str) -> bool:
    if not isinstance(resource, Mapping):
        found.error("resourceType", root, f"expected a {expected} JSON object, got {type(resource).__name__}")
        return False
    if resource.get("resourceType") != expected:
        found.error("resourceType", f"{root}.resourceType",
                    f"resourceType is {resource.get('resourceType')!r}, expected {expected!r}")
        return False
    return True


# -- ESMSTask ---------------------------------------------------------------------------------------


def _input_code(item: Mapping[str, Any]) -> str | None:
    """The InputTaskSDOCodeSystem code of one input, ``None`` if it has none."""
    for coding in _codings(item.get("type")):
        if coding.get("system") == sdo.INPUT_SYSTEM and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def _value_keys(item: Mapping[str, Any]) -> list[str]:
    return [k for k in item if k.startswith("value") and len(k) > 5 and k[5].isupper()]


def _check_coded_value(found: _Found, term: Terminology, slice_name: str, value: Mapping[str, Any],
                       path: str) -> None:
    canonical, jdv = _BINDINGS[slice_name]
    rule = f"binding-{jdv}"
    codings = _codings(value)
    if not codings:
        found.error(rule, f"{path}.coding", f"{slice_name} has no coding; give one code of {jdv}")
        return
    jdv_urls = set(term.valueset_canonicals()) | {v for v, _ in _BINDINGS.values()}
    for j, coding in enumerate(codings):
        system = coding.get("system")
        cpath = f"{path}.coding[{j}]"
        if system in jdv_urls or (isinstance(system, str) and "/JDV_" in system):
            tre = _tre_of(term, canonical)
            found.error("Coding.system", f"{cpath}.system",
                        f"Coding.system is the value set URL {system}; put the code system URL"
                        + (f" {tre}" if tre else " (TRE)") + " instead")
        if not system or not coding.get("code"):
            found.error(rule, cpath, f"{slice_name} coding needs both system and code")
    in_vs = [c for c in codings if term.contains(canonical, str(c.get("system")), str(c.get("code")))]
    if in_vs:
        for j, coding in enumerate(codings):
            _check_display(found, term, coding, f"{path}.coding[{j}]")
        return
    shown = ", ".join(f"{c.get('system')}#{c.get('code')}" for c in codings)
    open_system = _OPEN_VALUESETS.get(canonical)
    if open_system and any(c.get("system") == open_system and c.get("code") for c in codings):
        found.warning(rule, path, f"{shown} is not in the local snapshot of {jdv} (which may be incomplete); "
                      "check the code or refresh with `vtdui terminology update`")
        return
    removed = [c for c in codings if (str(c.get("system")), str(c.get("code"))) in term.removed_codes(canonical)]
    hint = ""
    if removed:
        hint = " (it was removed from the value set by the terminology server)"
    elif slice_name == sdo.STATUT_ESMS and any(
            term.contains(sdo.JDV_J253, str(c.get("system")), str(c.get("code"))) for c in codings):
        hint = "; it is a unit status (JDV_J253): send it in input statutUnite with the unit block"
    elif slice_name == sdo.STATUT_UNITE and any(
            term.contains(sdo.JDV_J252, str(c.get("system")), str(c.get("code"))) for c in codings):
        hint = "; it is an ESMS status (JDV_J252): send it in input statutESMS"
    found.error(rule, path, f"{shown} is not in {jdv} (required binding of {slice_name}){hint}")


def _tre_of(term: Terminology, canonical: str) -> str | None:
    if not term.has_valueset(canonical):
        return None
    systems = sorted({s for s, _ in term.valueset_codes(canonical)})
    return " or ".join(systems) if systems else None


def _check_display(found: _Found, term: Terminology, coding: Mapping[str, Any], path: str) -> None:
    display = coding.get("display")
    if not display:
        return
    known = term.displays(str(coding.get("system")), str(coding.get("code")))
    if known and display not in known:
        found.warning("Coding.display", f"{path}.display",
                      f"display {display!r} does not match code {coding.get('code')} "
                      f"(expected {sorted(known)[0]!r}); check that the code is the one meant")


def _coded(slices: Mapping[str, list[tuple[int, Mapping[str, Any]]]], name: str) -> tuple[int, str | None]:
    """Index and code (first coding) of a CodeableConcept slice, (-1, None) when absent."""
    entries = slices.get(name)
    if not entries:
        return -1, None
    index, item = entries[0]
    codings = _codings(item.get("valueCodeableConcept"))
    code = codings[0].get("code") if codings else None
    return index, str(code) if code is not None else None


def _check_a32(found: _Found, term: Terminology, slices: Mapping[str, list[tuple[int, Mapping[str, Any]]]],
               status_slice: str, motif_slice: str) -> None:
    s_index, status = _coded(slices, status_slice)
    m_index, motif = _coded(slices, motif_slice)
    if m_index >= 0 and s_index < 0:
        found.error("ASS_A32", f"Task.input[{m_index}]",
                    f"{motif_slice} is sent without {status_slice}; a motif qualifies a status: add "
                    f"{status_slice} or remove {motif_slice}")
        return
    if status is None:
        return
    allowed = term.allowed_motifs(status)
    if motif is not None:
        if motif not in allowed:
            allowed_text = ", ".join(sorted(allowed, key=lambda c: (len(c), c))) if allowed else "none"
            found.error("ASS_A32", f"Task.input[{m_index}].valueCodeableConcept",
                        f"motif {motif} is not allowed for status {status} by ASS_A32 "
                        f"(allowed: {allowed_text})")
        return
    due = term.status_requires_motif(status)
    if due is not None and m_index < 0:
        choices = ", ".join(sorted(allowed, key=lambda c: (len(c), c)))
        need = "needs" if due == "error" else "should come with"
        found.add("ASS_A32", f"Task.input[{s_index}]",
                  f"status {status} {need} a {motif_slice} (ASS_A32 allows: {choices})", due)


def check_esms_task(
    task: Mapping[str, Any],
    *,
    terminology: Terminology | None = None,
    expected_struct: str | None = None,
    mode: Mode = "outgoing",
    legacy_mode_prise_charge: bool = False,
    strict: bool = False,
) -> list[RuleViolation]:
    """Check a Task against ESMSTask (flux 4 body, flux 5 entry).

    Args:
        task: the Task as parsed JSON.
        terminology: code lists to use (default: the shipped snapshot).
        expected_struct: the caller's ``struct_idnat``; idNat_Struct must equal it when given.
        mode: ``outgoing`` for a create body, ``server-response`` for a Task ViaTrajectoire returned
            (then ``meta.lastUpdated`` is required).
        legacy_mode_prise_charge: also apply regle-ModePriseEnCharge (IG 4.0.2-4.0.6: 46/47/48 only).
        strict: the profile as written: ``meta.lastUpdated`` missing is an error in every mode.

    Returns:
        The broken rules, errors and warnings, in document order.
    """
    found = _Found()
    if not _check_resource_type(found, task, "Task", "Task"):
        return found.items
    term = terminology if terminology is not None else default_terminology()
    _check_profile(found, task, "Task", sdo.PROFILE_TASK, [_LEGACY_TASK_PROFILE], mode=mode)

    meta = task.get("meta") if isinstance(task.get("meta"), Mapping) else {}
    last_updated = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    if last_updated is None:
        if mode == "server-response" or strict:
            found.error("ESMSTask.meta.lastUpdated", "Task.meta.lastUpdated",
                        "meta.lastUpdated is required (1..1) on a Task returned by the server")
        else:
            found.warning("ESMSTask.meta.lastUpdated", "Task.meta.lastUpdated",
                          "meta.lastUpdated is 1..1 in ESMSTask; the server sets it, but strict validators "
                          "expect it in the body too: send the time of the status event")
    elif not _is_valid_datetime(last_updated, instant=True):
        found.error("ESMSTask.meta.lastUpdated", "Task.meta.lastUpdated",
                    f"meta.lastUpdated {last_updated!r} is not a FHIR instant (YYYY-MM-DDThh:mm:ss+zz:zz)")

    if task.get("status") != "completed":
        found.error("ESMSTask.status", "Task.status",
                    f"Task.status is {task.get('status')!r}; ESMSTask fixes it to 'completed' "
                    "(the business status goes in input statutESMS/statutUnite)")
    if task.get("intent") != "plan":
        found.error("ESMSTask.intent", "Task.intent",
                    f"Task.intent is {task.get('intent')!r}; ESMSTask fixes it to 'plan'")

    inputs = task.get("input")
    if not isinstance(inputs, list):
        inputs = []
    if len(inputs) < 4:
        found.error("ESMSTask.input", "Task.input",
                    f"Task has {len(inputs)} input(s); ESMSTask needs at least 4 "
                    "(idNat_Struct, nomESMS, idDecision, idNat_Decision)")

    slices: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for i, item in enumerate(inputs):
        path = f"Task.input[{i}]"
        if not isinstance(item, Mapping):
            found.error("ESMSTask.input.value", path, "input must be a JSON object")
            continue
        code = _input_code(item)
        type_ = item.get("type")
        if code is None:
            text = type_.get("text") if isinstance(type_, Mapping) else None
            legacy = f" (type.text {text!r} alone is the <=4.0.2 form)" if text else ""
            # open slicing lets a received Task carry foreign inputs; what we send must use the IG codes
            severity: Severity = "warning" if mode == "server-response" and not text else "error"
            found.add("ESMSTask.input.type", f"{path}.type",
                      f"input.type has no coding of {sdo.INPUT_SYSTEM}{legacy}; code it with that system",
                      severity)
            continue
        if code not in _KNOWN_INPUTS:
            found.error("ESMSTask.input.type", f"{path}.type",
                        f"input.type code {code!r} is not in InputTaskSDOCodeSystem")
            continue
        if code in _LEGACY_INPUTS:
            found.warning("ESMSTask.input.type", f"{path}.type",
                          f"input {code} was removed from ESMSTask in IG 4.0.3; do not send it")
            continue
        text = type_.get("text") if isinstance(type_, Mapping) else None
        if text is not None and text != code:
            found.warning("ESMSTask.input.type", f"{path}.type.text",
                          f"type.text {text!r} differs from the code {code!r}; validators evaluating the "
                          "published regle-StatutUnite read type.text")
        slices.setdefault(code, []).append((i, item))
        _check_input_value(found, term, code, item, path, legacy_mode_prise_charge)

    for name in _SLICE_VALUE:
        entries = slices.get(name, [])
        if name in _REQUIRED_SLICES and not entries:
            found.error("ESMSTask.input.slice-cardinality", "Task.input",
                        f"input {name} is missing (1..1 in ESMSTask)")
        for index, _item in entries[1:]:
            found.error("ESMSTask.input.slice-cardinality", f"Task.input[{index}]",
                        f"input {name} appears {len(entries)} times; ESMSTask allows it once")

    if sdo.STATUT_UNITE in slices:
        missing = [name for name in sdo.UNIT_BLOCK if name not in slices]
        if missing:
            index = slices[sdo.STATUT_UNITE][0][0]
            found.error("regle-StatutUnite", f"Task.input[{index}]",
                        "statutUnite is sent without " + ", ".join(missing)
                        + "; a unit status needs the whole unit block")
    if sdo.STATUT_ESMS not in slices and sdo.STATUT_UNITE not in slices:
        found.warning("ESMSTask.input.statut", "Task.input",
                      "the Task carries neither statutESMS nor statutUnite: it reports no status")

    _check_a32(found, term, slices, sdo.STATUT_ESMS, sdo.MOTIF_ESMS)
    _check_a32(found, term, slices, sdo.STATUT_UNITE, sdo.MOTIF_UNITE)
    _soften_j251_conflict(found, term, slices)

    struct_entries = slices.get(sdo.ID_NAT_STRUCT, [])
    if struct_entries:
        index, item = struct_entries[0]
        ident = item.get("valueIdentifier")
        value = ident.get("value") if isinstance(ident, Mapping) else None
        if isinstance(value, str) and value:
            vpath = f"Task.input[{index}].valueIdentifier.value"
            if not _ID_NAT_STRUCT_RE.match(value):
                found.error("ESMSTask.idNat_Struct", vpath,
                              f"idNat_Struct {value!r} is neither '1'+FINESS (10 characters) nor '3'+SIRET")
            if expected_struct is not None and value != expected_struct:
                found.error("ESMSTask.idNat_Struct", vpath,
                            f"idNat_Struct {value!r} is not the calling establishment {expected_struct!r} "
                            "(struct_idnat); send the Task on behalf of the establishment it describes")
    return found.items


def _soften_j251_conflict(found: _Found, term: Terminology,
                          slices: Mapping[str, list[tuple[int, Mapping[str, Any]]]]) -> None:
    """ASS_A32 allows motifs of JDV_J250 for ESMS statuses 49/51: accept them with a warning (brief §6.3)."""
    _, status = _coded(slices, sdo.STATUT_ESMS)
    m_index, motif = _coded(slices, sdo.MOTIF_ESMS)
    if status is None or motif is None or motif not in term.allowed_motifs(status):
        return
    if not term.contains(sdo.JDV_J250, sdo.TRE_R358, motif):
        return
    prefix = f"Task.input[{m_index}].valueCodeableConcept"
    for k, v in enumerate(found.items):
        if v.rule == "binding-JDV_J251" and v.path.startswith(prefix) and v.severity == "error":
            found.items[k] = RuleViolation(
                v.rule, v.path,
                f"motif {motif} is not in JDV_J251 (binding of motifESMS) but ASS_A32 allows it for status "
                f"{status}: known inconsistency of the NOS (it is in JDV_J250); accepted",
                "warning")


def _check_input_value(found: _Found, term: Terminology, code: str, item: Mapping[str, Any], path: str,
                       legacy_mode_prise_charge: bool) -> None:
    expected = _SLICE_VALUE[code]
    keys = _value_keys(item)
    if keys != [expected]:
        got = ", ".join(keys) if keys else "no value"
        found.error("ESMSTask.input.value", path, f"input {code} needs exactly one {expected}, got {got}")
        if expected not in keys:
            return
    value = item[expected]
    vpath = f"{path}.{expected}"
    if expected == "valueIdentifier":
        if not isinstance(value, Mapping) or not isinstance(value.get("value"), str) or not value["value"].strip():
            found.error("ESMSTask.input.value", f"{vpath}.value", f"input {code} needs a non-empty Identifier.value")
    elif expected == "valueString":
        if not isinstance(value, str) or not value.strip():
            found.error("ESMSTask.input.value", vpath, f"input {code} needs a non-empty string")
    elif expected == "valueBoolean":
        if not isinstance(value, bool):
            found.error("ESMSTask.input.value", vpath, f"input {code} needs true or false, got {value!r}")
    elif expected == "valueDate":
        if not _is_valid_date(value):
            found.error("ESMSTask.input.date", vpath,
                        f"input {code} value {value!r} is not a valid date (YYYY-MM-DD)")
    elif expected == "valueCodeableConcept":
        if not isinstance(value, Mapping):
            found.error("ESMSTask.input.value", vpath, f"input {code} needs a CodeableConcept object")
            return
        if code == sdo.MODE_PRISE_CHARGE:
            count = len(_codings(value))
            if count != 1:
                found.error("ESMSTask.modePriseCharge.coding", f"{vpath}.coding",
                            f"modePriseCharge has {count} codings; ESMSTask requires exactly one")
            if legacy_mode_prise_charge and not any(c.get("code") in _LEGACY_MODES for c in _codings(value)):
                found.error("regle-ModePriseEnCharge", vpath,
                            "regle-ModePriseEnCharge (IG 4.0.2-4.0.6) allows only modes 46, 47 and 48")
        _check_coded_value(found, term, code, value, vpath)


# -- ESMSConsent ------------------------------------------------------------------------------------


def check_esms_consent(
    consent: Mapping[str, Any],
    *,
    expected_struct: str | None = None,
    expected_decision: str | None = None,
    source_mismatch: Severity = "error",
) -> list[RuleViolation]:
    """Check a Consent against ESMSConsent (flux 2 body).

    Args:
        consent: the Consent as parsed JSON.
        expected_struct: the caller's ``struct_idnat``; ``meta.source`` must equal it when given.
        expected_decision: the idNat_Decision the consent must point to, when known.
        source_mismatch: severity when ``meta.source`` differs from ``expected_struct`` (the IG
            example uses a ``urn:uuid``: a tolerant receiver may prefer ``warning``, brief §11.4).
    """
    found = _Found()
    if not _check_resource_type(found, consent, "Consent", "Consent"):
        return found.items
    _check_profile(found, consent, "Consent", sdo.PROFILE_CONSENT)

    meta = consent.get("meta")
    source = meta.get("source") if isinstance(meta, Mapping) else None
    if not isinstance(source, str) or not source.strip():
        found.error("ESMSConsent.meta.source", "Consent.meta.source",
                    "meta.source is required: put the idNat_Struct ('1'+FINESS) of the establishment")
    elif expected_struct is not None and source != expected_struct:
        found.add("ESMSConsent.meta.source", "Consent.meta.source",
                  f"meta.source {source!r} is not the establishment's idNat_Struct {expected_struct!r}",
                  source_mismatch)

    if consent.get("status") != "active":
        found.error("ESMSConsent.status", "Consent.status",
                    f"Consent.status is {consent.get('status')!r}; ESMSConsent fixes it to 'active'")
    if not _has_coding(consent.get("scope"), sdo.CONSENT_SCOPE_SYSTEM, sdo.CONSENT_SCOPE_CODE):
        found.error("ESMSConsent.scope", "Consent.scope",
                    f"Consent.scope must be {sdo.CONSENT_SCOPE_SYSTEM}#{sdo.CONSENT_SCOPE_CODE}")
    categories = consent.get("category")
    if not isinstance(categories, list) or not categories:
        found.error("ESMSConsent.category", "Consent.category",
                    f"Consent.category is required: {sdo.LOINC}#{sdo.CONSENT_CATEGORY_CODE}")
    else:
        for k, category in enumerate(categories):
            if not _has_coding(category, sdo.LOINC, sdo.CONSENT_CATEGORY_CODE):
                found.error("ESMSConsent.category", f"Consent.category[{k}]",
                            f"each Consent.category must carry {sdo.LOINC}#{sdo.CONSENT_CATEGORY_CODE}")
    date_time = consent.get("dateTime")
    if date_time is None:
        found.error("ESMSConsent.dateTime", "Consent.dateTime",
                    "Consent.dateTime is required: the date the person's consent was collected")
    elif not _is_valid_datetime(date_time):
        found.error("ESMSConsent.dateTime", "Consent.dateTime",
                    f"Consent.dateTime {date_time!r} is not a FHIR dateTime (YYYY-MM-DD or with time and zone)")
    if not consent.get("policy") and not consent.get("policyRule"):
        found.error("ppc-1", "Consent",
                    f"either policy or policyRule is required (base R4 ppc-1): send policyRule "
                    f"{sdo.ACT_CODE_SYSTEM}#{sdo.OPTIN}")
    _check_provision(found, consent.get("provision"), expected_decision)
    return found.items


def _check_provision(found: _Found, provision: object, expected_decision: str | None) -> None:
    if not isinstance(provision, Mapping):
        found.error("ESMSConsent.provision.data", "Consent.provision",
                    "Consent.provision is required, with one data entry pointing to the decision")
        return
    data = provision.get("data")
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], Mapping):
        count = len(data) if isinstance(data, list) else 0
        found.error("ESMSConsent.provision.data", "Consent.provision.data",
                    f"provision.data must have exactly one entry (the decision), got {count}")
        if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
            return
    entry = data[0]
    if entry.get("meaning") != "related":
        found.error("ESMSConsent.provision.data.meaning", "Consent.provision.data[0].meaning",
                    f"provision.data.meaning is {entry.get('meaning')!r}; ESMSConsent fixes it to 'related'")
    reference = entry.get("reference")
    ident = reference.get("identifier") if isinstance(reference, Mapping) else None
    ipath = "Consent.provision.data[0].reference.identifier"
    rule = "ESMSConsent.provision.data.reference.identifier"
    if not isinstance(ident, Mapping):
        old = isinstance(reference, Mapping) and "reference" in reference
        found.error(rule, ipath, "the decision must be referenced by identifier {use: official, value: "
                    "idNat_Decision}" + (" (reference.reference is the pre-4.0.1 form)" if old else ""))
        return
    if ident.get("use") != "official":
        found.error(rule, f"{ipath}.use", f"identifier.use is {ident.get('use')!r}; it must be 'official'")
    value = ident.get("value")
    if not isinstance(value, str) or not value.strip():
        found.error(rule, f"{ipath}.value", "identifier.value must be the idNat_Decision of the decision")
    elif expected_decision is not None and value != expected_decision:
        found.error(rule, f"{ipath}.value",
                    f"identifier.value {value!r} is not the expected idNat_Decision {expected_decision!r}")


# -- ESMSDocumentReference --------------------------------------------------------------------------


def check_esms_document_reference(
    dr: Mapping[str, Any], *, subsetted: bool | None = None, root: str = "DocumentReference",
) -> list[RuleViolation]:
    """Check a DocumentReference against ESMSDocumentReference (flux 1.4 / 3.2).

    Args:
        dr: the DocumentReference as parsed JSON.
        subsetted: the resource was cut down by ``_elements`` (then a missing ``data`` is not
            reported); default: read the ``SUBSETTED`` tag of ``meta``.
        root: path prefix used in the violations (for Bundle entries).
    """
    found = _Found()
    if not _check_resource_type(found, dr, "DocumentReference", root):
        return found.items
    _check_profile(found, dr, root, sdo.PROFILE_DOCUMENT_REFERENCE, [_LEGACY_DOCREF_PROFILE],
                   mode="server-response")
    if subsetted is None:
        meta = dr.get("meta")
        tags = meta.get("tag", []) if isinstance(meta, Mapping) else []
        subsetted = any(isinstance(t, Mapping) and t.get("code") == "SUBSETTED" for t in tags)

    identifiers = dr.get("identifier")
    idents = [i for i in identifiers if isinstance(i, Mapping)] if isinstance(identifiers, list) else []
    rule = "ESMSDocumentReference.identifier"
    if len(idents) != 2:
        found.error(rule, f"{root}.identifier",
                    f"{len(idents)} identifier(s); exactly 2 are required: idDecision (use usual) and "
                    "idNat_Decision (use official)")
    for use, meaning in (("usual", "idDecision"), ("official", "idNat_Decision")):
        matching = [i for i in idents if i.get("use") == use]
        if len(matching) != 1:
            found.error(rule, f"{root}.identifier",
                        f"expected one identifier with use {use!r} ({meaning}), found {len(matching)}")
        elif not isinstance(matching[0].get("value"), str) or not matching[0]["value"].strip():
            found.error(rule, f"{root}.identifier", f"the {use} identifier ({meaning}) has no value")

    if not dr.get("status"):
        found.error("ESMSDocumentReference.status", f"{root}.status", "DocumentReference.status is required")

    codings = _codings(dr.get("type"))
    type_code: str | None = None
    vs_rule = "binding-type-document-reference-esms-valueset"
    if len(codings) != 1:
        found.error(vs_rule, f"{root}.type", f"type must have exactly one coding, got {len(codings)}")
    for coding in codings:
        if coding.get("system") == sdo.LOINC and coding.get("code") in (sdo.TYPE_DECISION, sdo.TYPE_EVALUATION):
            type_code = str(coding["code"])
        else:
            found.error(vs_rule, f"{root}.type.coding",
                        f"{coding.get('system')}#{coding.get('code')} is not in the ESMS document type value "
                        f"set ({sdo.LOINC}#{sdo.TYPE_DECISION} or #{sdo.TYPE_EVALUATION})")

    contents = dr.get("content")
    content_list = [c for c in contents if isinstance(c, Mapping)] if isinstance(contents, list) else []
    if len(content_list) != 1:
        found.error("ESMSDocumentReference.content", f"{root}.content",
                    f"content must have exactly one entry, got {len(content_list)}")
    titles: list[object] = []
    for k, content in enumerate(content_list):
        attachment = content.get("attachment")
        apath = f"{root}.content[{k}].attachment"
        if not isinstance(attachment, Mapping):
            found.error("ESMSDocumentReference.content", apath, "content.attachment is required")
            continue
        titles.append(attachment.get("title"))
        if not attachment.get("title"):
            found.error("ESMSDocumentReference.content", f"{apath}.title", "attachment.title is required")
        data = attachment.get("data")
        if data is None:
            if not subsetted:
                found.warning("regle-Contenu", f"{apath}.data",
                              "attachment.data (the base64 CDA) is missing from a full resource")
        elif not isinstance(data, str) or not _is_base64(data):
            found.error("ESMSDocumentReference.content.data", f"{apath}.data", "attachment.data is not base64")
    expected_title = {sdo.TYPE_DECISION: sdo.TITLE_DECISION, sdo.TYPE_EVALUATION: sdo.TITLE_EVALUATION}
    if type_code is not None and expected_title[type_code] not in titles:
        found.error("regle-NomPieceJointe-type", f"{root}.content",
                    f"type {type_code} requires an attachment titled exactly {expected_title[type_code]!r}")
    return found.items


def _is_base64(data: str) -> bool:
    if not _BASE64_RE.match(data):
        return False
    try:
        base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# -- Bundles ----------------------------------------------------------------------------------------


def check_bundle(
    bundle: Mapping[str, Any],
    kind: BundleKind,
    *,
    terminology: Terminology | None = None,
) -> list[RuleViolation]:
    """Check a searchset of flux 1.2/3.2 (``decision-evaluation``) or flux 5.2 (``notification``).

    Entries are checked with the resource rules (Tasks in ``server-response`` mode); paths are
    prefixed ``Bundle.entry[i].resource``.
    """
    found = _Found()
    if not _check_resource_type(found, bundle, "Bundle", "Bundle"):
        return found.items
    if kind == "notification":
        _check_profile(found, bundle, "Bundle", sdo.PROFILE_BUNDLE_NOTIFICATION, [_LEGACY_NOTIF_PROFILE],
                       mode="server-response")
        expected = "Task"
    else:
        _check_profile(found, bundle, "Bundle", sdo.PROFILE_BUNDLE_DECISION_EVALUATION, mode="server-response")
        expected = "DocumentReference"
    if bundle.get("type") != "searchset":
        found.error("Bundle.type", "Bundle.type", f"Bundle.type is {bundle.get('type')!r}, expected 'searchset'")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        entries = []
    for i, entry in enumerate(entries):
        root = f"Bundle.entry[{i}].resource"
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != expected:
            got = resource.get("resourceType") if isinstance(resource, Mapping) else None
            found.error("Bundle.entry.resource", root, f"each entry must hold one {expected}, got {got!r}")
            continue
        if expected == "Task":
            inner = check_esms_task(resource, terminology=terminology, mode="server-response")
            found.items.extend(_prefix(inner, "Task", root))
        else:
            found.items.extend(check_esms_document_reference(resource, root=root))
    return found.items


def _prefix(violations: Sequence[RuleViolation], old: str, new: str) -> list[RuleViolation]:
    return [RuleViolation(v.rule, new + v.path[len(old):] if v.path.startswith(old) else v.path,
                          v.message, v.severity) for v in violations]


# -- dispatch and reporting -------------------------------------------------------------------------


def check_resource(
    resource: Mapping[str, Any],
    kind: str = "auto",
    *,
    terminology: Terminology | None = None,
    expected_struct: str | None = None,
    mode: Mode = "outgoing",
    strict: bool = False,
) -> list[RuleViolation]:
    """Run the checks that fit ``kind`` (``strict``: see :func:`check_esms_task`).

    ``kind`` is ``task``, ``consent``, ``document-reference``, ``bundle-notification``,
    ``bundle-decision-evaluation`` or ``auto`` (chosen from resourceType).
    """
    if kind == "auto":
        rtype = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if rtype == "Bundle":
            entries = resource.get("entry") or []
            types = {e.get("resource", {}).get("resourceType") for e in entries if isinstance(e, Mapping)}
            kind = "bundle-notification" if "Task" in types else "bundle-decision-evaluation"
        else:
            kind = {"Task": "task", "Consent": "consent", "DocumentReference": "document-reference"}.get(
                str(rtype), "unknown")
    if kind == "task":
        return check_esms_task(resource, terminology=terminology, expected_struct=expected_struct, mode=mode,
                               strict=strict)
    if kind == "consent":
        return check_esms_consent(resource, expected_struct=expected_struct)
    if kind == "document-reference":
        return check_esms_document_reference(resource)
    if kind == "bundle-notification":
        return check_bundle(resource, "notification", terminology=terminology)
    if kind == "bundle-decision-evaluation":
        return check_bundle(resource, "decision-evaluation", terminology=terminology)
    rtype = resource.get("resourceType") if isinstance(resource, Mapping) else type(resource).__name__
    return [RuleViolation("resourceType", "$", f"no IG profile applies to resourceType {rtype!r} "
                          "(expected Task, Consent, DocumentReference or Bundle)")]


def has_errors(violations: Iterable[RuleViolation]) -> bool:
    """Tell whether any violation is an error."""
    return any(v.severity == "error" for v in violations)


def to_operation_outcome(violations: Iterable[RuleViolation]) -> dict[str, Any]:
    """Return a FHIR OperationOutcome with one issue per violation (``all-ok`` info when none)."""
    issues: list[dict[str, Any]] = []
    for v in violations:
        rule = RULES.get(v.rule)
        issues.append({
            "severity": v.severity if v.severity in ("fatal", "error", "warning", "information") else "error",
            "code": rule.issue_code if rule else "invalid",
            "details": {"text": f"{v.rule}: {v.message}"},
            "diagnostics": v.message,
            "expression": [v.path],
        })
    if not issues:
        issues.append({"severity": "information", "code": "informational",
                       "details": {"text": "All OK: no IG rule broken"}})
    return {"resourceType": "OperationOutcome", "issue": issues}


def raise_for_violations(violations: Sequence[RuleViolation], what: str = "resource") -> None:
    """Raise :class:`~vtdui.errors.ConformanceError` when any violation is an error.

    Raises:
        ConformanceError: with every violation (warnings included, for context).
    """
    errors = [v for v in violations if v.severity == "error"]
    if errors:
        raise ConformanceError(f"{what} breaks {len(errors)} IG rule(s)", violations)
