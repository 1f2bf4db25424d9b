"""Choices of the default mapping that a deployment may want to change.

The defaults follow the published TDDUI material where it is explicit; each field says what it replaces
when it is not. Integrators change them by registering their own ``map_*`` hook implementation that calls
the mapping functions with other options, e.g.::

    from vtdui import hookimpl
    from vtdui.mapping import MappingOptions, map_decision_entries

    OPTIONS = MappingOptions(claim_profiles=True)

    @hookimpl
    def map_decision(document, context):
        return map_decision_entries(document, context, OPTIONS)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vtdui.mapping import systems

__all__ = ["DEFAULT_OPTIONS", "MappingOptions"]


@dataclass(frozen=True)
class MappingOptions:
    """Options of the default inbound mapping.

    Attributes:
        claim_profiles: put the TDDUI profile canonicals in ``meta.profile``. Off by default: the CNSA
            codes of the CDA have no confirmed FHIR code system yet (see ``code_systems``), so the
            resources follow the TDDUI structure without claiming conformance.
        code_systems: FHIR ``Coding.system`` to use for a CDA code system OID. An OID not listed is
            written ``urn:oid:<oid>`` (valid FHIR; *unconfirmed* against the NOS URLs of JDV_J398-J408).
        worklist_system: ``Task.identifier.system`` of the work-list items.
        demande_orientation_system: ``ServiceRequest.identifier.system`` of the orientation request.
        map_evaluation_observations: add one Observation per coded evaluation item.
        mdph_organizations: add an Organization per MDPH (``Basic.author``).
        unknown_mdph_system: ``Identifier.system`` of idDecision when the CDA gives no MDPH OID.
    """

    claim_profiles: bool = False
    code_systems: Mapping[str, str] = field(default_factory=dict)
    worklist_system: str = systems.WORKLIST_SYSTEM
    demande_orientation_system: str = systems.DEMANDE_ORIENTATION_SYSTEM
    map_evaluation_observations: bool = True
    mdph_organizations: bool = True
    unknown_mdph_system: str = "urn:vtdui:mdph:unknown"

    def system_for(self, oid: str | None) -> str | None:
        """Return the ``Coding.system`` for a CDA code system OID (``None`` stays ``None``)."""
        if not oid:
            return None
        return self.code_systems.get(oid, f"urn:oid:{oid}")


DEFAULT_OPTIONS = MappingOptions()
"""The options the built-in hook implementations use."""
