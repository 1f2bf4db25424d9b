#!/usr/bin/env python3
"""Write the NOS terminology snapshot used by vtdui as FHIR R4 resources.

Reads a transcription of the ANS terminologies (a ``terminology.json`` kept with the specification,
not in the repository: given by ``--source`` or the ``VTDUI_TERMINOLOGY_SOURCE`` environment variable)
and writes one JSON file per resource into ``profiles/terminology/``:

* CodeSystems TRE_R357, TRE_R358, TRE_R213, TRE_R240, TRE_R244, TRE_R397: what is known of them
  (``content: complete`` only for TRE_R357, whose full list was read; ``fragment`` otherwise);
* ValueSets JDV_J252, J253, J251, J250, J264, J30, J34: canonical URL, version and an extensional
  ``compose`` listing every code of the snapshot;
* ConceptMap ASS_A32: allowed (status, motif) pairs.

The output is deterministic (no clock, stable order, sorted files), so running the script twice
leaves ``git diff`` empty. Usage::

    python profiles/build_terminology.py --source PATH [--out DIR] [--check]

``--check`` writes nothing and exits 1 when the files on disk differ from what would be written.
Only the Python standard library is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Environment variable naming the transcription when ``--source`` is not given.
SOURCE_ENV = "VTDUI_TERMINOLOGY_SOURCE"
DEFAULT_OUT = HERE / "terminology"

PUBLISHER = "Agence du Numérique en Santé (ANS)"
PURPOSE = (
    "Offline snapshot of an ANS NOS resource used by vtdui to check IG ans.fhir.fr.sdo 4.0.7 resources "
    "(written by vtdui's profiles/build_terminology.py from a transcription of public ANS publications; "
    "refresh from the terminology server with `vtdui terminology update`). Source: {source}"
)
FRAGMENT_NOTE = (
    " Snapshot is a fragment: only the codes used by the SDO value sets are listed; the live code system "
    "has more."
)

# Value sets of the snapshot: key in terminology.json, FHIR name.
VALUESETS: tuple[tuple[str, str], ...] = (
    ("JDV_J252-StatutPersonnePriseChargeESMS", "JDV_J252_StatutPersonnePriseChargeESMS"),
    ("JDV_J253-StatutPersonnePriseChargeUnite", "JDV_J253_StatutPersonnePriseChargeUnite"),
    ("JDV_J251-MotifStatutPersonnePriseChargeESMS", "JDV_J251_MotifStatutPersonnePriseChargeESMS"),
    ("JDV_J250-MotifStatutPersonnePriseChargeUnite", "JDV_J250_MotifStatutPersonnePriseChargeUnite"),
    ("JDV_J264-ModeEtCentreDePriseEnCharge-MDPH", "JDV_J264_ModeEtCentreDePriseEnCharge_MDPH"),
    ("JDV_J30-TemporaliteAccueil-ROR", "JDV_J30_TemporaliteAccueil_ROR"),
    ("JDV_J34-CategorieOrganisation-ROR", "JDV_J34_CategorieOrganisation_ROR"),
)

STATUS_PROPERTY = {
    "code": "status",
    "uri": "http://hl7.org/fhir/concept-properties#status",
    "description": "Status of the concept (active, deprecated, retired)",
    "type": "code",
}
DEPRECATION_PROPERTY = {
    "code": "deprecationDate",
    "uri": "http://hl7.org/fhir/concept-properties#deprecationDate",
    "description": "Date the concept was deprecated",
    "type": "dateTime",
}


def _oid_identifier(oid: str | None) -> list[dict[str, str]]:
    return [{"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{oid}"}] if oid else []


def _concept(code: str, display: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code}
    if display:
        out["display"] = display
    return out


def _codesystem(
    *,
    fhir_id: str,
    name: str,
    title: str,
    url: str,
    oid: str | None,
    version: str | None,
    description: str,
    source: str,
    concepts: list[dict[str, Any]],
    complete: bool,
    case_sensitive: bool = False,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "CodeSystem", "id": fhir_id, "url": url}
    identifier = _oid_identifier(oid)
    if identifier:
        resource["identifier"] = identifier
    if version:
        resource["version"] = version
    resource.update({
        "name": name,
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": description + ("" if complete else FRAGMENT_NOTE),
        "purpose": PURPOSE.format(source=source),
        "caseSensitive": case_sensitive,
        "content": "complete" if complete else "fragment",
    })
    if complete:
        resource["count"] = len(concepts)
    properties = [STATUS_PROPERTY]
    if any(p["code"] == "deprecationDate" for c in concepts for p in c.get("property", [])):
        properties.append(DEPRECATION_PROPERTY)
    if any("property" in c for c in concepts):
        resource["property"] = properties
    resource["concept"] = concepts
    return resource


def _valueset_codes(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    codes: list[dict[str, Any]] = data["valuesets"][key]["codes"]
    return codes


def _tre_displays(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, tuple[str | None, str | None]]:
    """Map code -> (code-system display, status) gathered from the JDVs that use the TRE."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for key in keys:
        for c in _valueset_codes(data, key):
            # where the JDV carries a TRE designation, codesystem_display is the TRE's own display
            display = c.get("codesystem_display") or c.get("display")
            out.setdefault(c["code"], (display, c.get("status")))
    return out


def _sort_codes(codes: list[str]) -> list[str]:
    return sorted(codes, key=lambda c: (len(c), c))


def _active(display: str | None, status: str | None, code: str) -> dict[str, Any]:
    concept = _concept(code, display)
    if status:
        concept["property"] = [{"code": "status", "valueCode": status}]
    return concept


def build_codesystems(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the CodeSystem resources of the snapshot."""
    cs = data["codesystems"]
    out: list[dict[str, Any]] = []

    r357 = cs["TRE_R357-StatutPersonnePriseCharge"]
    d357 = _tre_displays(
        data, ("JDV_J252-StatutPersonnePriseChargeESMS", "JDV_J253-StatutPersonnePriseChargeUnite")
    )
    missing = [c for c in r357["codes_all_active"] if c not in d357]
    if missing:
        raise SystemExit(f"TRE_R357 codes without a display in J252/J253: {missing}")
    out.append(_codesystem(
        fhir_id="TRE-R357-StatutPersonnePriseCharge",
        name="TRE_R357_StatutPersonnePriseCharge",
        title="TRE_R357-StatutPersonnePriseCharge",
        url=r357["url"], oid=r357["oid"], version=r357["version"],
        description="Statut de la personne prise en charge",
        source=r357["source"],
        concepts=[_active(d357[c][0], "active", c) for c in _sort_codes(r357["codes_all_active"])],
        complete=True,
    ))

    r358 = cs["TRE_R358-MotifStatutPersonnePriseCharge"]
    d358 = _tre_displays(
        data,
        ("JDV_J251-MotifStatutPersonnePriseChargeESMS", "JDV_J250-MotifStatutPersonnePriseChargeUnite"),
    )
    concepts = {code: _active(display, status, code) for code, (display, status) in d358.items()}
    for dep in r358.get("deprecated", []):
        concepts[dep["code"]] = {
            "code": dep["code"],
            "display": dep["display"],
            "property": [
                {"code": "status", "valueCode": "deprecated"},
                {"code": "deprecationDate", "valueDateTime": dep["deprecationDate"]},
            ],
        }
    out.append(_codesystem(
        fhir_id="TRE-R358-MotifStatutPersonnePriseCharge",
        name="TRE_R358_MotifStatutPersonnePriseCharge",
        title="TRE_R358-MotifStatutPersonnePriseCharge",
        url=r358["url"], oid=r358["oid"], version=r358["version"],
        description="Motif du statut de la personne prise en charge",
        source=r358["source"],
        concepts=[concepts[c] for c in _sort_codes(list(concepts))],
        complete=False,
    ))

    r213 = cs["TRE_R213-ModePriseEnCharge"]
    out.append(_codesystem(
        fhir_id="TRE-R213-ModePriseEnCharge",
        name="TRE_R213_ModePriseEnCharge",
        title="TRE_R213-ModePriseEnCharge",
        url=r213["url"], oid=r213["oid"], version=r213["version"],
        description="Mode de prise en charge",
        source=r213["source"],
        concepts=[_active(c["display"], c.get("status"), c["code"]) for c in r213["relevant_codes"]],
        complete=False,
    ))

    r240 = cs["TRE_R240-TemporaliteAccueil"]
    j30 = data["valuesets"]["JDV_J30-TemporaliteAccueil-ROR"]
    out.append(_codesystem(
        fhir_id="TRE-R240-TemporaliteAccueil",
        name="TRE_R240_TemporaliteAccueil",
        title="TRE_R240-TemporaliteAccueil",
        url=r240["url"], oid=r240["oid"], version=None,
        description="Temporalité d'accueil (codes read from JDV_J30; the code system itself was not seen).",
        source=j30["source"],
        concepts=[_concept(c["code"], c["display"]) for c in j30["codes"]],
        complete=False,
    ))

    r244 = cs["TRE_R244-CategorieOrganisation"]
    j34 = data["valuesets"]["JDV_J34-CategorieOrganisation-ROR"]
    out.append(_codesystem(
        fhir_id="TRE-R244-CategorieOrganisation",
        name="TRE_R244_CategorieOrganisation",
        title="TRE_R244-CategorieOrganisation",
        url=r244["url"], oid=r244["oid"], version=None,
        description=(
            "Catégorie d'organisation (codes and displays read from JDV_J34 "
            f"v{j34['version']}; displays of the code system itself may differ)."
        ),
        source=j34["source"],
        concepts=[_concept(c["code"], c["display"]) for c in j34["codes"]],
        complete=False,
    ))

    r397 = cs["TRE_R397-CategorieEntiteGeographiqueExercice"]
    j264 = data["valuesets"]["JDV_J264-ModeEtCentreDePriseEnCharge-MDPH"]
    r397_codes = [c for c in j264["codes"] if c["system"] == r397["url"]]
    out.append(_codesystem(
        fhir_id="tre-r397-categorie-entite-geographique-exercice",
        name="TRE_R397_CategorieEntiteGeographiqueExercice",
        title="TRE_R397-CategorieEntiteGeographiqueExercice",
        url=r397["url"], oid=r397["oid"], version=None,
        description=(
            "Catégorie d'entité géographique d'exercice (" + r397["note"] + "). Only the codes of JDV_J264 "
            "are known here; their display was not verified."
        ),
        source=j264["source"],
        concepts=[_concept(c["code"], c.get("display")) for c in r397_codes],
        complete=False,
    ))
    return out


def build_valuesets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ValueSet resources of the snapshot (extensional compose, codes in source order)."""
    out: list[dict[str, Any]] = []
    for key, name in VALUESETS:
        vs = data["valuesets"][key]
        includes: dict[str, list[dict[str, Any]]] = {}
        for c in vs["codes"]:
            includes.setdefault(c["system"], []).append(_concept(c["code"], c.get("display")))
        resource: dict[str, Any] = {
            "resourceType": "ValueSet",
            "id": vs["fhir_id"],
            "url": vs["url"],
            "identifier": _oid_identifier(vs.get("oid")),
            "version": vs["version"],
            "name": name,
            "title": key,
            "status": vs["status"],
            "experimental": False,
            "date": vs["date"],
            "publisher": PUBLISHER,
            "description": vs["description"],
            "purpose": PURPOSE.format(source=vs["source"]),
            "compose": {
                "include": [{"system": system, "concept": concepts} for system, concepts in includes.items()]
            },
        }
        out.append(resource)
    return out


def build_conceptmap(data: dict[str, Any]) -> dict[str, Any]:
    """Return the ConceptMap ASS_A32 (status TRE_R357 -> allowed motifs TRE_R358)."""
    a32 = data["associations"]["ASS_A32-StatutMotifPersonnePriseCharge"]
    by_status: dict[str, list[str]] = a32["by_status"]
    pairs = {(p["status"], p["motif"]) for p in a32["pairs"]}
    from_table = {(s, m) for s, motifs in by_status.items() for m in motifs}
    if pairs != from_table:
        raise SystemExit("ASS_A32: 'pairs' and 'by_status' disagree in terminology.json")
    elements = [
        {
            "code": status,
            "target": [{"code": motif, "equivalence": "relatedto"} for motif in _sort_codes(by_status[status])],
        }
        for status in _sort_codes(list(by_status))
    ]
    return {
        "resourceType": "ConceptMap",
        "id": a32["fhir_id"],
        "url": a32["url"],
        "identifier": _oid_identifier(a32.get("oid"))[0],
        "version": a32["version"],
        "name": "ASS_A32_StatutMotifPersonnePriseCharge",
        "title": "ASS_A32-StatutMotifPersonnePriseCharge",
        "status": a32["status"],
        "experimental": False,
        "date": a32["date"],
        "publisher": PUBLISHER,
        "description": a32["description"] + ". " + a32["semantics"],
        "purpose": PURPOSE.format(source=a32["source"]),
        "group": [{"source": a32["source_system"], "target": a32["target_system"], "element": elements}],
    }


def build_all(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return ``{file name: resource}`` for the whole snapshot."""
    resources = [*build_codesystems(data), *build_valuesets(data), build_conceptmap(data)]
    return {f"{r['resourceType']}-{r['id']}.json": r for r in resources}


def render(resource: dict[str, Any]) -> str:
    """Serialise one resource the way it is committed (2-space indent, UTF-8, final newline)."""
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    env_source = os.environ.get(SOURCE_ENV, "").strip()
    parser.add_argument("--source", type=Path, default=Path(env_source) if env_source else None,
                        help=f"terminology.json to read (default: ${SOURCE_ENV})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory to write")
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    if args.source is None:
        parser.error(f"no source: give --source PATH or set {SOURCE_ENV} to the terminology transcription")
    if not args.source.is_file():
        parser.error(f"source {args.source} not found")

    data = json.loads(args.source.read_text(encoding="utf-8"))
    files = build_all(data)
    out: Path = args.out
    stale = sorted(p.name for p in out.glob("*.json") if p.name not in files) if out.is_dir() else []
    differing = [
        name for name, resource in files.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != render(resource)
    ]
    if args.check:
        for name in differing + stale:
            print(f"out of date: {out / name}", file=sys.stderr)
        return 1 if differing or stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (out / name).unlink()
    for name, resource in sorted(files.items()):
        (out / name).write_text(render(resource), encoding="utf-8")
    print(f"wrote {len(files)} resources to {out} ({len(differing)} changed, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
