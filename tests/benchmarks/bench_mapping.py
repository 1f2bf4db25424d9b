"""Mapping benchmark (issue 17): CPU per decision of the flux-1 mapping, against the CDA parse of the same document.

Run (not part of the default test run)::

    python -m pytest tests/benchmarks/bench_mapping.py -o python_files='bench_*.py' -m benchmark -s
    VTDUI_BENCH_MAPPING_DECISIONS=2000 python -m pytest tests/benchmarks/bench_mapping.py ...

For N generated decisions (the simulator's dataset), rounds alternate, on the same documents in the same run:

* **parse**: :func:`vtdui.cda.parse.parse_decision` of the CDA bytes (the baseline);
* **mapping**: :func:`vtdui.mapping.map_decision_entries` of the parsed document (what the built-in
  ``map_decision`` hook runs), raw CDA kept in the DocumentReference (base64) as the sync does;
* **JSON**: the transaction Bundle of those entries encoded as :class:`vtdui.store.HapiStore` sends it
  (:func:`vtdui.fhirjson.dumps`), and as httpx's ``json=`` would (``json.dumps`` with its options, UTF-8),
  which is what the store did before;
* **path**: the whole flux-1 work of vtdui between the read and the transaction, one decision after the
  other: base64 attachment decoded (:func:`vtdui.cda.parse.decode_attachment`), parsed, mapped, encoded.

Each figure is the best round (the least disturbed on a shared machine), in microseconds per decision on the
thread's CPU clock; the ratios are mapping / parse and JSON / parse (and vtdui's JSON / httpx's). No HAPI
server, no network. Nothing is asserted about speed; every decision must map to its six or seven entries, and
both encodings must give the same JSON value.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from report import Row, ratio, record

from vtdui import fhirjson
from vtdui.cda.parse import decode_attachment, parse_decision
from vtdui.config import Config, Establishment, LegalEntity
from vtdui.hookcontext import InboundContext
from vtdui.mapping import map_decision_entries
from vtdui.simulator.dataset import Dataset

N = int(os.environ.get("VTDUI_BENCH_MAPPING_DECISIONS", "500"))
ROUNDS = int(os.environ.get("VTDUI_BENCH_MAPPING_ROUNDS", "7"))
NOW = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)

pytestmark = pytest.mark.benchmark


def _bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _encode_httpx(bundle: dict[str, Any]) -> bytes:
    """The body httpx's ``json=`` makes (its ``encode_json``): the store's encoding before issue 17."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _cpu_us(function: Callable[[Any], object], items: list[Any]) -> float:
    """Microseconds of thread CPU per item to apply ``function`` to every item."""
    start = time.thread_time()
    for item in items:
        function(item)
    return (time.thread_time() - start) / len(items) * 1e6


def test_bench_mapping() -> None:
    dataset = Dataset.generate(seed=2026, n_decisions=N, now=NOW)
    raws: list[bytes] = []
    jobs: list[tuple[Any, InboundContext, bytes]] = []
    for simulated in dataset.decisions:
        raw = simulated.decision_cda()
        finess = simulated.notified_to[0]
        eg = Establishment(finess_eg=finess, name=dataset.establishment(finess).name)
        entity = LegalEntity(finess_ej="010000024", name="EJ bench", establishments=(eg,))
        context = InboundContext(config=Config(), legal_entity=entity, establishment=eg, source="urn:vtdui:plugin",
                                 now=NOW)
        raws.append(raw)
        jobs.append((parse_decision(raw), context, raw))

    def mapping(job: tuple[Any, InboundContext, bytes]) -> list[dict[str, Any]]:
        return map_decision_entries(job[0], job[1], raw=job[2])

    mapped_entries = [mapping(job) for job in jobs]
    assert all(len(entries) >= 6 and entries[-1]["resource"]["resourceType"] == "Task" for entries in mapped_entries)
    bundles = [_bundle(entries) for entries in mapped_entries]
    attachments = [(base64.b64encode(raw).decode("ascii"), job[1]) for raw, job in zip(raws, jobs, strict=True)]

    def whole_path(attachment: tuple[str, InboundContext]) -> bytes:
        raw = decode_attachment(attachment[0])
        return fhirjson.dumps(_bundle(map_decision_entries(parse_decision(raw), attachment[1], raw=raw)))

    assert all(json.loads(fhirjson.dumps(b)) == json.loads(_encode_httpx(b)) for b in bundles)
    for raw in raws[:20]:  # warm-up
        parse_decision(raw)
    parse: list[float] = []
    mapped: list[float] = []
    encoded: list[float] = []
    encoded_httpx: list[float] = []
    whole: list[float] = []
    for _ in range(ROUNDS):
        parse.append(_cpu_us(parse_decision, raws))
        mapped.append(_cpu_us(mapping, jobs))
        encoded.append(_cpu_us(fhirjson.dumps, bundles))
        encoded_httpx.append(_cpu_us(_encode_httpx, bundles))
        whole.append(_cpu_us(whole_path, attachments))
    figures = {
        "decisions": N,
        "rounds": ROUNDS,
        "mean_cda_bytes": round(sum(len(raw) for raw in raws) / N),
        "mean_bundle_bytes": round(sum(len(fhirjson.dumps(bundle)) for bundle in bundles) / N),
        "parse_us_cpu": round(min(parse), 1),
        "map_decision_us_cpu": round(min(mapped), 1),
        "json_us_cpu": round(min(encoded), 1),
        "json_httpx_us_cpu": round(min(encoded_httpx), 1),
        "path_us_cpu": round(min(whole), 1),
    }
    figures["ratio_map_to_parse"] = round(figures["map_decision_us_cpu"] / figures["parse_us_cpu"], 3)
    figures["ratio_json_to_parse"] = round(figures["json_us_cpu"] / figures["parse_us_cpu"], 3)
    figures["ratio_path_to_parse"] = round(figures["path_us_cpu"] / figures["parse_us_cpu"], 3)
    figures["ratio_json_to_httpx_json"] = round(figures["json_us_cpu"] / figures["json_httpx_us_cpu"], 3)
    baseline = (f"{figures['parse_us_cpu']} µs/decision, `parse_decision` of the same CDA "
                f"({figures['mean_cda_bytes']} bytes)")
    rows = [
        Row(f"flux-1 mapping, `map_decision_entries` (raw CDA kept), N={N} generated decisions, "
            f"best of {ROUNDS} alternating rounds, CPU clock",
            f"{figures['map_decision_us_cpu']} µs/decision", baseline, ratio(figures["ratio_map_to_parse"])),
        Row(f"flux-1 transaction Bundle encoded as sent to HAPI (`fhirjson.dumps`, "
            f"{figures['mean_bundle_bytes']} bytes), N={N}, best of {ROUNDS} rounds, CPU clock",
            f"{figures['json_us_cpu']} µs/decision", baseline, ratio(figures["ratio_json_to_parse"])),
        Row(f"same Bundle, `fhirjson.dumps` vs httpx's `json=` encoding (before issue 17), N={N}, CPU clock",
            f"{figures['json_us_cpu']} µs/decision",
            f"{figures['json_httpx_us_cpu']} µs/decision, `json.dumps` as httpx calls it",
            ratio(figures["ratio_json_to_httpx_json"])),
        Row(f"flux-1 path in vtdui per decision (base64 decode, parse, map, encode), N={N}, best of {ROUNDS} "
            f"rounds, CPU clock", f"{figures['path_us_cpu']} µs/decision", baseline,
            ratio(figures["ratio_path_to_parse"])),
    ]
    path = record("mapping", rows, figures)
    print("\nmapping benchmark " + json.dumps(figures, indent=2) + f"\nfigures in {path}")
