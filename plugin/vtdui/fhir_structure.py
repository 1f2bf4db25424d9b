"""Structural check of a FHIR resource with the ``fhir.resources`` R4B models.

:mod:`vtdui.conformance` checks the IG's rules (slices, fixed values, bindings, ASS_A32) on the elements
the IG profiles; it does not look at the datatype of every element of the base resource. This module does:
it validates a resource dict with the ``fhir.resources.R4B`` model of its type and reports each datatype,
unknown element or cardinality error as a :class:`~vtdui.errors.RuleViolation` of rule ``fhir-structure``.

Why R4B for an R4 IG: ``fhir.resources`` 8.x ships R5 (default), R4B and STU3 models, no R4. R4B (4.3.0)
left Task, Consent, DocumentReference, Bundle and OperationOutcome as they are in R4 (4.0.1): every element
the IG's StructureDefinitions constrain exists in the R4B models with the same datatype and the same
base cardinality (list or single). The R4B models do not check code values against required bindings
(``Task.status`` etc.); :mod:`vtdui.conformance` does that for the codes the IG relies on. They parse
primitives leniently, as pydantic does by default: ``"true"`` for a boolean, ``"12"`` for an integer or a
number for a dateTime pass; a string where an object or a list is expected, an object where a string is
expected, an unknown element, a list for a single element do not.

Messages name the path and the kind of problem, never the value found: resources carry health data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from vtdui.errors import RuleViolation

__all__ = ["RULE", "check_structure", "typed_model"]

#: rule name of the violations this module reports
RULE: Final = "fhir-structure"

#: what a FHIR element name (or its ``_name`` primitive extension) looks like
_ELEMENT_NAME: Final = re.compile(r"_?[A-Za-z][A-Za-z0-9]{0,63}")

#: pydantic error types whose default message is replaced by a plainer one
_MESSAGES: Final[Mapping[str, str]] = {
    "extra_forbidden": "unknown element (not in the FHIR R4 definition of this resource)",
    "missing": "required element is missing",
    "model_field_validation.missing": "required element is missing",
    "list_type": "should be a list (the element repeats: 0..*)",
    "string_type": "should be a string",
    "bool_type": "should be a boolean",
    "bool_parsing": "should be a boolean",
    "int_type": "should be an integer",
    "int_parsing": "should be an integer",
    "decimal_type": "should be a decimal",
    "decimal_parsing": "should be a decimal",
    "dict_type": "should be an object (a complex datatype)",
    "model_type": "should be an object (a complex datatype)",
}


def _path(resource_type: str, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic location into a FHIRPath-style path (``Task.input[0].valueString``).

    A key that cannot be a FHIR element name (an unknown element is reported by its key) is replaced: a key
    can be anything a sender wrote, data included.
    """
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "root" and not part.startswith(("function-", "json-or-python")):
            path += f".{part}" if _ELEMENT_NAME.fullmatch(part) else ".<not an element name>"
    return path


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "model_validation_format":  # a single element given a list, or another shape
        return "wrong shape: a single element (0..1 or 1..1) given a list, or a value of another datatype"
    message = str(error.get("msg", "invalid value"))
    value = error.get("input")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and len(str(value)) > 1:
        message = message.replace(repr(value), "…").replace(str(value), "…")  # never echo a value
    return message.removeprefix("Value error, ")


def check_structure(resource: Mapping[str, Any]) -> list[RuleViolation]:
    """Check ``resource`` against the FHIR R4(B) definition of its ``resourceType``.

    Args:
        resource: a FHIR resource as parsed JSON.

    Returns:
        One ``fhir-structure`` error per problem (wrong datatype, unknown element, wrong cardinality,
        missing required element), in document order; ``[]`` when the resource is well formed.
    """
    resource_type = resource.get("resourceType") if isinstance(resource, Mapping) else None
    if not isinstance(resource_type, str):
        return [RuleViolation(RULE, "$", "resourceType is missing or not a string")]
    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError, ImportError):
        return [RuleViolation(RULE, "$", f"resourceType {resource_type!r} is not a FHIR R4 resource")]
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        return [RuleViolation(RULE, _path(resource_type, tuple(e["loc"])), _message(e))
                for e in exc.errors(include_url=False)]
    except (ValueError, TypeError) as exc:  # a model validator refusing the whole resource
        return [RuleViolation(RULE, resource_type, f"malformed resource ({type(exc).__name__})")]
    return []


def typed_model(resource: Mapping[str, Any]) -> Any:
    """Return the ``fhir.resources.R4B`` model instance of a resource dict (typed access for hooks).

    The dict stays the contract between vtdui and hooks; this is a read-only view to work on.

    Raises:
        pydantic.ValidationError: when the resource is structurally malformed.
        ValueError: when ``resourceType`` names no FHIR resource.
    """
    return get_fhir_model_class(str(resource.get("resourceType"))).model_validate(dict(resource))
