"""The default inbound mapping: SDO documents and statuses → the DUI's local FHIR model in HAPI.

Pure functions (records in, transaction entries out); :mod:`vtdui.mapping.builtin` registers them as the
``trylast`` implementations of ``map_decision``, ``map_evaluation`` and ``map_remote_status``.

=====================================  =================================================================
module                                 role
=====================================  =================================================================
:mod:`~vtdui.mapping.decision`         flux 1: decision CDA → Patient, Organization, ServiceRequest,
                                       Basic (tddui-basic-decision), DocumentReference, work-list Task
:mod:`~vtdui.mapping.evaluation`       flux 3: evaluation CDA → DocumentReference, Observations
:mod:`~vtdui.mapping.remote_status`    flux 5: ESMSTask → update of the work-list Task
:mod:`~vtdui.mapping.worklist`         read/write helpers of the work-list Task (status, reason, inputs)
:mod:`~vtdui.mapping.person`           the person → Patient (TDDUIPatient / TDDUIPatientINS)
:mod:`~vtdui.mapping.systems`          identifier systems, URLs and codes of the local model
:mod:`~vtdui.mapping.options`          what a deployment may change
=====================================  =================================================================
"""

from __future__ import annotations

from vtdui.mapping.decision import map_decision_entries
from vtdui.mapping.evaluation import map_evaluation_entries
from vtdui.mapping.options import DEFAULT_OPTIONS, MappingOptions
from vtdui.mapping.remote_status import apply_remote_status, remote_status_entries

__all__ = [
    "DEFAULT_OPTIONS",
    "MappingOptions",
    "apply_remote_status",
    "map_decision_entries",
    "map_evaluation_entries",
    "remote_status_entries",
]
