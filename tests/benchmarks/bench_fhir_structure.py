"""Structural check benchmark: :func:`vtdui.fhir_structure.check_structure` against the IG rule check.

Run (not part of the default test run)::

    python -m pytest tests/benchmarks/bench_fhir_structure.py -o python_files='bench_*.py' -m benchmark -s

For an ESMSTask with a unit block (what flux 4 sends and flux 5 receives), an ESMSConsent (flux 2) and a
decision ESMSDocumentReference (flux 1, as the sync checks it: its CDA left to the decoder), microseconds per
resource through the R4B structural check and through the :mod:`vtdui.conformance` check of the same
resource, in the same run, rounds alternating, best round of each, CPU clock. No HAPI server, no network.
Nothing is asserted about speed; every resource must pass both checks.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from report import Row, ratio, record

from vtdui import sdo
from vtdui.conformance import check_esms_consent, check_esms_document_reference, check_esms_task, has_errors
from vtdui.fhir_structure import check_structure
from vtdui.simulator.resources import esms_task
from vtdui.sync import _check_document_structure

N = int(os.environ.get("VTDUI_BENCH_STRUCTURE_RESOURCES", "500"))
ROUNDS = int(os.environ.get("VTDUI_BENCH_STRUCTURE_ROUNDS", "7"))

pytestmark = pytest.mark.benchmark


def _task() -> dict[str, Any]:
    task = esms_task(id_nat_struct="1350000022", nom_esms="ESAT Les Tilleuls", id_decision="MDPH35-DEC-000123",
                     id_nat_decision="VT-9f2c1e", statut_esms=("41", "Contact effectué"),
                     motif_esms=("152", "L'usager a visité l'ESMS"), date_statut_esms=date(2026, 5, 12),
                     unit={"id_unite": "U1", "nom_unite": "Unité A", "categorie_organisation": "01",
                           "mode_prise_charge": "46", "temporalite_accueil": "02"},
                     last_updated=datetime(2026, 5, 13, 8, tzinfo=UTC))
    task["id"] = "tk-1"
    return task


def _consent() -> dict[str, Any]:
    return {"resourceType": "Consent", "meta": {"profile": [sdo.PROFILE_CONSENT], "source": "1350000022"},
            "status": "active",
            "scope": {"coding": [{"system": sdo.CONSENT_SCOPE_SYSTEM, "code": sdo.CONSENT_SCOPE_CODE}]},
            "category": [{"coding": [{"system": sdo.LOINC, "code": sdo.CONSENT_CATEGORY_CODE}]}],
            "dateTime": "2026-05-11", "policyRule": {"coding": [{"system": sdo.ACT_CODE_SYSTEM, "code": sdo.OPTIN}]},
            "provision": {"data": [{"meaning": "related",
                                    "reference": {"identifier": {"use": "official", "value": "VT-9f2c1e"}}}]}}


def _document() -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": "dr-1",
            "meta": {"versionId": "1", "lastUpdated": "2026-05-13T08:00:00+02:00",
                     "profile": [sdo.PROFILE_DOCUMENT_REFERENCE]},
            "identifier": [{"use": "usual", "value": "MDPH35-DEC-000123"},
                           {"use": "official", "value": "VT-9f2c1e"}],
            "status": "current", "type": {"coding": [{"system": sdo.LOINC, "code": sdo.TYPE_DECISION}]},
            "content": [{"attachment": {"contentType": "text/xml", "title": sdo.TITLE_DECISION,
                                        "data": base64.b64encode(b"<ClinicalDocument/>" * 2000).decode()}}]}


def _best_us(check: Callable[[dict[str, Any]], object], resources: list[dict[str, Any]], best: float) -> float:
    started = time.process_time()
    for resource in resources:
        check(resource)
    return min(best, (time.process_time() - started) / len(resources) * 1e6)


def test_bench_fhir_structure() -> None:
    cases: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], object], Callable[[dict[str, Any]], Any]]] = {
        "ESMSTask": (_task(), check_structure, check_esms_task),
        "ESMSConsent": (_consent(), check_structure, check_esms_consent),
        "ESMSDocumentReference": (_document(), _check_document_structure, check_esms_document_reference),
    }
    rows, figures = [], {}
    for name, (resource, structure, rules) in cases.items():
        assert structure(resource) in ([], None) and not has_errors(rules(resource)), name
        resources = [json.loads(json.dumps(resource)) for _ in range(N)]
        best_structure = best_rules = float("inf")
        for _ in range(ROUNDS):
            best_structure = _best_us(structure, resources, best_structure)
            best_rules = _best_us(rules, resources, best_rules)
        figures[name] = {"structure_us": round(best_structure, 1), "ig_rules_us": round(best_rules, 1),
                         "ratio": round(best_structure / best_rules, 2)}
        rows.append(Row(
            f"Structural check (`vtdui.fhir_structure`, R4B model), {name}, N={N}, best of {ROUNDS} alternating "
            f"rounds, CPU clock",
            f"{best_structure:.0f} µs per resource",
            f"{best_rules:.0f} µs per resource, the IG rule check (`vtdui.conformance`) of the same resource",
            ratio(best_structure / best_rules),
        ))
    path = record("fhir_structure", rows, figures)
    print("\nfhir structure benchmark " + json.dumps(figures, indent=2) + f"\nfigures in {path}")
