"""Objects handed to hooks: what the hook is working for, and the change it reports.

They are plain frozen dataclasses so that hook implementations stay pure functions of their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtdui.config import Config, Establishment, LegalEntity

__all__ = ["InboundContext", "OutboundContext", "RejectedDocument", "StatusChange"]


@dataclass(frozen=True)
class InboundContext:
    """What an inbound hook works for.

    Attributes:
        config: the validated configuration.
        legal_entity: the legal entity whose token made the call.
        establishment: the establishment (FINESS EG) the data was read for.
        source: ``meta.source`` to put on every resource the plugin writes (no echo loop).
        now: the time of the sync cycle.
        worklist_task: for ``map_remote_status``, the local work-list Task the status applies to
            (``None`` for the other hooks).
    """

    config: Config
    legal_entity: LegalEntity
    establishment: Establishment
    source: str
    now: datetime
    worklist_task: dict[str, Any] | None = None


@dataclass(frozen=True)
class OutboundContext:
    """What an outbound hook works for.

    Attributes:
        config: the validated configuration.
        legal_entity: the legal entity that sends.
        establishment: the establishment that reports (its ``idNat_Struct`` is ``"1" + FINESS EG``).
        worklist_task: the local work-list Task the emission comes from, if any.
        decision: the local decision resource (Basic), if found.
    """

    config: Config
    legal_entity: LegalEntity
    establishment: Establishment
    worklist_task: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None


@dataclass(frozen=True)
class StatusChange:
    """One change of a work-list item to report to ViaTrajectoire (flux 4).

    Attributes:
        id_nat_decision: national id of the decision.
        id_decision: the MDPH's id of the decision.
        finess_eg: the reporting establishment.
        statut_esms / motif_esms / date_statut_esms: ESMS-level status (TRE_R357/R358 codes).
        statut_unite / motif_unite / date_statut_unite / id_unite: unit-level status and its ROR unit.
        task_version: the HAPI version of the work-list Task that carried the change (idempotency key).
    """

    id_nat_decision: str
    id_decision: str
    finess_eg: str
    task_id: str
    task_version: str
    statut_esms: str | None = None
    motif_esms: str | None = None
    date_statut_esms: str | None = None
    statut_unite: str | None = None
    motif_unite: str | None = None
    date_statut_unite: str | None = None
    id_unite: str | None = None
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RejectedDocument:
    """A document kept aside instead of being stored.

    Attributes:
        key: the quarantine key (ViaTrajectoire resource id and version).
        reason: short machine-readable reason (``dtd-forbidden``, ``base64``, ``not-cda`` ...).
        message: what is wrong, without personal data.
        path: where the raw bytes were saved for inspection.
    """

    key: str
    reason: str
    message: str
    path: str
