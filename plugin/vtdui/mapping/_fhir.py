"""Small builders for FHIR JSON and transaction entries (private to the mapping)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from vtdui.cda.records import Code
from vtdui.mapping.options import MappingOptions

Resource = dict[str, Any]
Entry = dict[str, Any]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:vtdui:mapping")


def full_url(*key: str) -> str:
    """A stable ``urn:uuid:`` for a business key: the same data always gives the same entries."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, chr(31).join(key))}"


def escape_token(value: str) -> str:
    r"""Escape ``\\``, ``|``, ``,`` and ``$`` in a token search value (FHIR search escaping rules)."""
    for char in ("\\", "|", ",", "$"):
        value = value.replace(char, "\\" + char)
    return value


def identifier_query(*pairs: tuple[str, str]) -> str:
    """``identifier=sys|val[,sys|val]``: any of the identifiers matches (comma is OR in FHIR search)."""
    return "identifier=" + ",".join(f"{system}|{escape_token(value)}" for system, value in pairs)


def put_entry(resource: Resource, url: str, query: str) -> Entry:
    """A conditional update: ``PUT Type?query`` (create if none matches, update the one that does)."""
    return {"fullUrl": url, "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}?{query}"}}


def create_entry(resource: Resource, url: str, query: str) -> Entry:
    """A conditional create: ``POST Type`` with ``ifNoneExist`` (never touches an existing resource)."""
    return {"fullUrl": url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": query}}


def coding(system: str | None, code: str, display: str | None = None) -> dict[str, str]:
    """A Coding without empty members."""
    out: dict[str, str] = {}
    if system:
        out["system"] = system
    out["code"] = code
    if display:
        out["display"] = display
    return out


def concept(system: str | None, code: str, display: str | None = None) -> dict[str, Any]:
    """A CodeableConcept holding one Coding."""
    return {"coding": [coding(system, code, display)]}


def cda_concept(code: Code, options: MappingOptions) -> dict[str, Any]:
    """A CodeableConcept for a CDA coded value, its OID turned into a FHIR system."""
    return concept(options.system_for(code.code_system), code.code, code.display)


def fhir_date(value: date | None) -> str | None:
    """ISO date (``YYYY-MM-DD``) or ``None``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


def fhir_instant(value: datetime | None) -> str | None:
    """ISO date-time; a naive value (CDA without UTC offset) is written as a date only, never guessed."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.date().isoformat()
    return value.isoformat()


def ext(url: str, **value: Any) -> dict[str, Any]:
    """An extension with one ``value[x]`` (``ext(url, valueString="x")``)."""
    return {"url": url, **value}


def complex_ext(url: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A complex extension (only sub-extensions)."""
    return {"url": url, "extension": parts}


def meta(source: str, profiles: list[str] | None = None) -> dict[str, Any]:
    """``meta`` with the plugin's ``source`` (so its own writes are never emitted back)."""
    out: dict[str, Any] = {"source": source}
    if profiles:
        out["profile"] = profiles
    return out
