"""The ``fhir.resources`` R4B models agree with the R4 base of every element the official IG profiles use.

``vtdui.fhir_structure`` checks resources of an R4 (4.0.1) IG with R4B (4.3.0) models because
``fhir.resources`` 8.x ships no R4. This test walks the snapshots of the official StructureDefinitions
(their ``base`` says the R4 cardinality of each element, their ``type`` its R4 datatype) and checks the R4B
model of the same element: it exists, it repeats exactly when R4 says ``*``, it is required when R4 says
``1..``, and it has the same datatype (each datatype of a choice ``value[x]``).
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

from vtdui.ig_package import IgPackage

PROFILES = ("esms-task", "esms-consent", "esms-document-reference",
            "esms-bundle-resultat-recherche-notification-esms",
            "esms-bundle-resultat-recherche-decision-evaluation")


#: how the R4B models type the FHIRPath System types of ``id`` and ``url`` elements
_SYSTEM_TYPES: dict[str, tuple[str, ...]] = {"String": ("Id", "Uri", "Str", "String")}


def _is_resource(name: str) -> bool:
    try:
        return issubclass(get_fhir_model_class(name), Resource)
    except (ValueError, KeyError, ImportError):
        return False


def _field(model: Any, name: str) -> Any:
    return next((f for key, f in model.model_fields.items() if (f.alias or key) == name), None)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The element's datatype and whether it repeats, from a model field annotation."""
    repeats = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            return typing.get_args(annotation)[1], repeats
        if origin in (list, typing.List):  # noqa: UP006 - the models use typing.List
            repeats = True
        if origin is None:
            return annotation, repeats
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))


def _type_name(datatype: Any) -> str:
    name = type(datatype).__name__ if not isinstance(datatype, type) else datatype.__name__
    return name.removesuffix("Type") if name.endswith("Type") and name != "Type" else name


def _walk(root: str, path: str, choice_types: dict[str, str] | None = None) -> tuple[Any, Any] | None:
    """The R4B model holding ``path``'s last element and that element's field (``None`` when absent).

    ``choice_types`` gives the one datatype a profile keeps for a ``value[x]`` met on the way (by its path).
    """
    parts = path.split(".")
    model = get_fhir_model_class(root)
    for depth, part in enumerate(parts[1:], start=1):
        if part.endswith("[x]"):
            code = (choice_types or {}).get(".".join(parts[:depth + 1]), "")
            part = f"{part[:-3]}{code[:1].upper()}{code[1:]}"
        found = _field(model, part)
        if found is None:
            return None
        if depth == len(parts) - 1:
            return model, found
        inner, _ = _unwrap(found.annotation)
        model = get_fhir_model_class(_type_name(inner))
    return None


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profiled_element_has_its_r4_cardinality_and_datatype_in_r4b(official_ig: IgPackage,
                                                                            profile: str) -> None:
    sd = official_ig.resource(f"StructureDefinition-{profile}.json")
    assert sd["fhirVersion"] == "4.0.1"
    differences: list[str] = []
    checked = 0
    # Task's profile is published as a differential: no ``base`` there, but a profile can only restrict, so a
    # profile max above 1 still means an element that repeats in R4
    elements = (sd.get("snapshot") or sd["differential"])["element"]
    choice_types: dict[str, str] = {}
    for element in elements:
        path, base = element["path"], element.get("base")
        if path.endswith("[x]") and len(element.get("type", [])) == 1:
            choice_types[path] = element["type"][0]["code"]
        if "." not in path or (base is not None and base.get("path", path) != path):
            continue  # the resource itself, elements inherited from Element/BackboneElement
        if path.endswith("[x]"):
            for code in (t["code"] for t in element.get("type", [])):
                if _walk(sd["type"], f"{path[:-3]}{code[0].upper()}{code[1:]}") is None:
                    differences.append(f"{path}: the {code} choice is missing in R4B")
            checked += 1
            continue
        walked = _walk(sd["type"], path, choice_types)
        if walked is None:
            differences.append(f"{path}: missing in R4B")
            continue
        datatype, repeats = _unwrap(walked[1].annotation)
        if base is not None:
            if repeats != (base.get("max") == "*"):
                differences.append(f"{path}: R4 max {base.get('max')}, R4B {'repeats' if repeats else 'single'}")
            required = bool((walked[1].json_schema_extra or {}).get("element_required"))
            if required != (base.get("min", 0) >= 1):
                differences.append(f"{path}: R4 min {base.get('min')}, R4B {'required' if required else 'optional'}")
        elif element.get("max") not in (None, "0", "1") and not repeats:
            differences.append(f"{path}: profile max {element['max']}, R4B single")
        codes = [t["code"] for t in element.get("type", [])]
        if len(codes) == 1 and codes[0] not in ("BackboneElement", "Element", "Resource", "Extension"):
            expected = codes[0].rsplit(".", 1)[-1]  # System.String for id and url
            expected = expected[0].upper() + expected[1:]
            if _type_name(datatype) == "Resource" and _is_resource(expected):
                pass  # Bundle.entry.resource: R4 types it Resource too, the profile narrows it
            elif _type_name(datatype) not in (expected, *_SYSTEM_TYPES.get(expected, ())):
                differences.append(f"{path}: R4 {codes[0]}, R4B {_type_name(datatype)}")
        checked += 1
    assert checked > 10
    assert differences == []
