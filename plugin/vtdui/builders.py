"""Built-in builders of the outgoing resources: ESMSTask (flux 4) and ESMSConsent (flux 2).

Registered as an ordinary plugin with ``trylast=True``: a plugin of yours implementing
``build_esms_task`` or ``build_esms_consent`` answers first, and returning ``None`` falls back to
these. Both are pure: everything they need is in the change (or the local Consent) and the
:class:`~vtdui.hookcontext.OutboundContext`; the result is checked by :mod:`vtdui.conformance`
before it leaves.

Choices where the IG leaves room (brief §4.4, §5.4, §11):

* ``input.type`` carries ``text`` = the code (:func:`vtdui.sdo.input_type`), so validators running
  the published, text-based regle-StatutUnite see a consistent resource.
* ``idNat_Struct`` is ``"1" + FINESS EG`` (the same value as the ``struct_idnat`` header, §11.21).
* ``meta.lastUpdated`` (1..1 in ESMSTask even on create) is the time of the local change: the
  ``meta.lastUpdated`` of the work-list Task version that carried it.
* The unit block is taken from the establishment's configured ROR unit matching ``change.id_unite``;
  an unknown unit yields a Task with ``statutUnite`` but without the block, which the conformance
  check then refuses with regle-StatutUnite (and says which unit is missing from the configuration).
* ``Consent.meta.source`` is the idNat_Struct (what the profile says, not the IG example's uuid, §11.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from vtdui import hookimpl, sdo
from vtdui.config import RorUnit
from vtdui.hookcontext import OutboundContext, StatusChange

__all__ = [
    "build_esms_consent",
    "build_esms_task",
    "consent_decision_reference",
    "decision_identifiers",
    "find_unit",
    "mode_prise_charge_system",
]

#: Codes of JDV_J264 that come from TRE_R213 (the others, e.g. 238, from TRE_R397).
_TRE_R213_MODES: Final = frozenset({"46", "47", "48"})


def _display(system: str, code: str) -> str | None:
    """Display of a code from the shipped terminology snapshot, when it knows the code."""
    try:
        from vtdui.conformance import default_terminology

        return default_terminology().display(system, code)
    except Exception:  # a missing or broken snapshot must not stop building: displays are optional
        return None


def _coding(system: str, code: str) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    display = _display(system, code)
    if display:
        coding["display"] = display
    return coding


def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": sdo.input_type(code), **value}


def _coded_input(code: str, system: str, value: str) -> dict[str, Any]:
    return _input(code, valueCodeableConcept={"coding": [_coding(system, value)]})


def mode_prise_charge_system(code: str) -> str:
    """Code system of a JDV_J264 code: TRE_R213 for 46/47/48, TRE_R397 otherwise (e.g. 238)."""
    return sdo.TRE_R213 if code in _TRE_R213_MODES else sdo.TRE_R397


def find_unit(units: tuple[RorUnit, ...], id_unite: str | None) -> RorUnit | None:
    """Return the configured ROR unit with this id, or ``None``."""
    if id_unite is None:
        return None
    return next((unit for unit in units if unit.id_unite == id_unite), None)


def _unit_block(change: StatusChange, unit: RorUnit | None) -> list[dict[str, Any]]:
    # Order follows the slice order of the profile, so the body reads like the IG example.
    items: list[dict[str, Any]] = []
    if change.id_unite:
        items.append(_input(sdo.ID_UNITE, valueIdentifier={"value": change.id_unite}))
    if unit is not None:
        items.append(_input(sdo.NOM_UNITE, valueString=unit.nom_unite))
        items.append(_coded_input(sdo.CATEGORIE_ORGANISATION, sdo.TRE_R244, unit.categorie_organisation))
        if unit.temporalite_accueil is not None:
            items.append(_coded_input(sdo.TEMPORALITE_ACCUEIL, sdo.TRE_R240, unit.temporalite_accueil))
        if unit.accueil_sequentiel is not None:
            items.append(_input(sdo.ACCUEIL_SEQUENTIEL, valueBoolean=unit.accueil_sequentiel))
        items.append(_coded_input(sdo.MODE_PRISE_CHARGE, mode_prise_charge_system(unit.mode_prise_charge),
                                  unit.mode_prise_charge))
    if change.statut_unite:
        items.append(_coded_input(sdo.STATUT_UNITE, sdo.TRE_R357, change.statut_unite))
    if change.date_statut_unite:
        items.append(_input(sdo.DATE_STATUT_UNITE, valueDate=change.date_statut_unite))
    if change.motif_unite:
        items.append(_coded_input(sdo.MOTIF_UNITE, sdo.TRE_R358, change.motif_unite))
    return items


@hookimpl(trylast=True)
def build_esms_task(change: StatusChange, context: OutboundContext) -> dict[str, Any] | None:
    """Build the ESMSTask reporting ``change`` for ``context.establishment`` (flux 4)."""
    establishment = context.establishment
    inputs: list[dict[str, Any]] = [
        _input(sdo.ID_NAT_STRUCT, valueIdentifier={"value": establishment.id_nat_struct}),
        _input(sdo.NOM_ESMS, valueString=establishment.name),
    ]
    if change.statut_esms:
        inputs.append(_coded_input(sdo.STATUT_ESMS, sdo.TRE_R357, change.statut_esms))
        if change.motif_esms:
            inputs.append(_coded_input(sdo.MOTIF_ESMS, sdo.TRE_R358, change.motif_esms))
        if change.date_statut_esms:
            inputs.append(_input(sdo.DATE_STATUT_ESMS, valueDate=change.date_statut_esms))
    if change.statut_unite:
        inputs.extend(_unit_block(change, find_unit(establishment.units, change.id_unite)))
    inputs.append(_input(sdo.ID_DECISION, valueIdentifier={"value": change.id_decision}))
    inputs.append(_input(sdo.ID_NAT_DECISION, valueIdentifier={"value": change.id_nat_decision}))

    meta: dict[str, Any] = {"profile": [sdo.PROFILE_TASK]}
    worklist = context.worklist_task or {}
    last_updated = (worklist.get("meta") or {}).get("lastUpdated")
    if isinstance(last_updated, str) and last_updated:
        meta["lastUpdated"] = last_updated
    task: dict[str, Any] = {"resourceType": "Task", "meta": meta, "status": "completed", "intent": "plan"}
    if change.description:
        task["description"] = change.description
    task["input"] = inputs
    return task


def decision_identifiers(decision: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """Return ``(idDecision, idNat_Decision)`` of a local decision (Basic tddui-basic-decision).

    idNat_Decision is the identifier whose system is ``urn:oid:1.2.250.1.213.8.1`` or whose type is the
    TDDUI ``IDNATDECISION`` (or, without a system, whose ``use`` is ``official``); idDecision is the
    first other identifier (the MDPH's, its system the MDPH OID).
    """
    if not decision:
        return None, None
    id_nat: str | None = None
    id_decision: str | None = None
    for ident in decision.get("identifier", []) or []:
        if not isinstance(ident, Mapping) or not ident.get("value"):
            continue
        type_codes = {str(c.get("code")) for c in (ident.get("type") or {}).get("coding", []) or []
                      if isinstance(c, Mapping)}
        if ident.get("system") == sdo.ID_NAT_DECISION_SYSTEM or "IDNATDECISION" in type_codes or (
                id_nat is None and ident.get("use") == "official" and not ident.get("system")):
            id_nat = str(ident["value"])
        elif id_decision is None:
            id_decision = str(ident["value"])
    return id_decision, id_nat


def consent_decision_reference(consent: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the Reference of a local Consent that points to the decision.

    Looked for in ``provision.data[].reference`` (TDDUI-like), then ``provision.provision[].data``,
    then ``sourceReference``.
    """
    provision = consent.get("provision")
    stack = [provision] if isinstance(provision, Mapping) else []
    while stack:
        current = stack.pop(0)
        for data in current.get("data", []) or []:
            if isinstance(data, Mapping) and isinstance(data.get("reference"), Mapping):
                return dict(data["reference"])
        stack.extend(p for p in current.get("provision", []) or [] if isinstance(p, Mapping))
    source = consent.get("sourceReference")
    return dict(source) if isinstance(source, Mapping) else None


def _id_nat_from_reference(reference: Mapping[str, Any] | None) -> str | None:
    ident = reference.get("identifier") if reference else None
    if isinstance(ident, Mapping) and ident.get("value") and (
            ident.get("system") == sdo.ID_NAT_DECISION_SYSTEM or ident.get("use") == "official"):
        return str(ident["value"])
    return None


@hookimpl(trylast=True)
def build_esms_consent(consent: dict[str, Any], context: OutboundContext) -> dict[str, Any] | None:
    """Build the ESMSConsent (flux 2) for a local Consent, or ``None`` when its decision is unknown.

    The decision is ``context.decision`` (the Basic the local Consent points to, resolved by the
    emitter), or a logical reference to idNat_Decision written directly in the local Consent.
    """
    _, id_nat = decision_identifiers(context.decision)
    if id_nat is None:
        id_nat = _id_nat_from_reference(consent_decision_reference(consent))
    if id_nat is None:
        return None
    built: dict[str, Any] = {
        "resourceType": "Consent",
        "meta": {"profile": [sdo.PROFILE_CONSENT], "source": context.establishment.id_nat_struct},
        "status": "active",
        "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
        "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
    }
    # dateTime is when the person consented: never invent it; without it the conformance check stops
    # the emission and says what to fill in.
    if consent.get("dateTime"):
        built["dateTime"] = consent["dateTime"]
    built["policyRule"] = {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]}
    built["provision"] = {"data": [{"meaning": "related",
                                    "reference": {"identifier": {"use": "official", "value": id_nat}}}]}
    return built
