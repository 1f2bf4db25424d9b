"""The two SDO CDA documents: typed records, hardened parsing, shared codes.

* :mod:`vtdui.cda.records`: immutable records (:class:`~vtdui.cda.records.DecisionDocument`, ...).
* :mod:`vtdui.cda.parse`: safe parsing of untrusted CDA bytes into those records.
* :mod:`vtdui.cda.codes`: OIDs, templates, code lists and the MDPH OID rule.
"""

from __future__ import annotations

from vtdui.cda.records import (
    Address,
    Code,
    Decision,
    DecisionDocument,
    DocumentHeader,
    DroitPrestation,
    Evaluation,
    EvaluationDocument,
    EvaluationObservation,
    Guardian,
    InstanceId,
    Mdph,
    Parent,
    Person,
)

__all__ = [
    "Address",
    "Code",
    "Decision",
    "DecisionDocument",
    "DocumentHeader",
    "DroitPrestation",
    "Evaluation",
    "EvaluationDocument",
    "EvaluationObservation",
    "Guardian",
    "InstanceId",
    "Mdph",
    "Parent",
    "Person",
]
