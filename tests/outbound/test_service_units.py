"""The pieces of `vtdui run` that need no server: dead-worker recovery, parking on shutdown, metrics text,
the exchange log, the evidence export and its redaction, the receiver endpoint."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vtdui.config import Config
from vtdui.emit import CURRENT_ITEM, Emitter
from vtdui.evidence import export_evidence, redact_health
from vtdui.exchanges import ExchangeLog
from vtdui.outbox import ItemState, NewItem, Outbox, normalize_instant
from vtdui.plugins import get_plugin_manager
from vtdui.receiver import hook_endpoint
from vtdui.runtime import Runtime
from vtdui.service import Service, worker_is_dead
from vtdui.viatrajectoire.trace import Exchange, redact_headers

from .outbound_fixtures import ENTITY


def _item(version: int, decision: str = "D1") -> NewItem:
    return NewItem(kind="task", idempotency_key=f"Task/wl-{decision}/_history/{version}", id_nat_decision=decision,
                   finess_eg="750000028", payload={"resourceType": "Task", "v": version},
                   sequence=normalize_instant(f"2026-05-12T08:{version:02d}:00+02:00"),
                   source_ref=f"Task/wl-{decision}")


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_worker_is_dead_only_for_a_gone_process_of_this_host() -> None:
    import os

    host = socket.gethostname()
    assert worker_is_dead(f"{host}:{_dead_pid()}")
    assert not worker_is_dead(f"{host}:{os.getpid()}")
    assert not worker_is_dead(f"{host}:1")  # alive (init)
    assert not worker_is_dead(f"another-host:{_dead_pid()}")  # its lease expires instead
    assert not worker_is_dead("garbage")


def test_recover_gives_back_the_items_of_a_dead_worker_only(tmp_path: Path) -> None:
    outbox = Outbox.open(tmp_path)
    try:
        outbox.enqueue(_item(1, "D1"))
        outbox.enqueue(_item(1, "D2"))
        host = socket.gethostname()
        [first] = outbox.claim(f"{host}:{_dead_pid()}", limit=1)
        [second] = outbox.claim(f"{host}:1", limit=1)
        recovered = outbox.recover(worker_is_dead)
        assert [i.id for i in recovered] == [first.id]
        assert outbox.show(first.id).state is ItemState.PENDING
        assert outbox.show(second.id).state is ItemState.SENDING
        assert outbox.oldest_pending_age() is not None
    finally:
        outbox.close()


def test_run_pending_parks_claimed_items_when_stopping(tmp_path: Path) -> None:
    config = Config(state_dir=tmp_path, hooks_dir=None, legal_entities=(ENTITY,))
    outbox = Outbox.open(tmp_path)
    try:
        for version in (1, 2):
            outbox.enqueue(_item(version, f"D{version}"))
        emitter = Emitter(config, outbox, lambda entity: None,  # type: ignore[arg-type,return-value]
                          get_plugin_manager(None, load_entrypoints=False), None, None)  # type: ignore[arg-type]
        report = emitter.run_pending(should_stop=lambda: True)
        assert report.attempted == 0
        assert [(i.state, i.attempts) for i in outbox.list()] == [(ItemState.PENDING, 0), (ItemState.PENDING, 0)]
    finally:
        outbox.close()


def test_metrics_parse_with_prometheus_client_with_histograms_and_full_precision(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    config = Config(state_dir=tmp_path, hooks_dir=None, legal_entities=(ENTITY,))
    with Runtime(config, pm=get_plugin_manager(None, load_entrypoints=False)) as runtime:
        runtime.outbox.enqueue(_item(1))
        runtime.state.commit_cursor("750000028", "1", datetime.now(UTC))
        for duration in (0.25, 0.03, 7.0):
            runtime.exchanges.record(Exchange(kind="fhir", method="GET", url="https://vt/fhir/Task",
                                              finess_eg="750000028", attempt=1, started_at=datetime.now(UTC),
                                              duration=duration, status=200))
        service = Service(runtime)
        service.metrics.emissions[("4", "sent")] = 12_345_678  # past a million: no rounding to 6 digits
        text = service.render_metrics()
    families = {f.name: f for f in text_string_to_metric_families(text)}  # the reference parser
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("vtdui_outbox_items", (("state", "pending"),))] == 1
    assert samples[("vtdui_outbox_items", (("state", "failed"),))] == 0
    assert samples[("vtdui_sync_last_success_age_seconds", (("finess_eg", "750000028"), ("flux", "1")))] < 60
    assert samples[("vtdui_quarantined_documents", ())] == 0
    assert samples[("vtdui_emissions_total", (("flux", "4"), ("outcome", "sent")))] == 12_345_678
    assert samples[("vtdui_process_start_time_seconds", ())] == service.metrics.started  # not 1.76466e+09
    histogram = families["vtdui_viatrajectoire_request_duration_seconds"]
    assert histogram.type == "histogram"
    fhir_2xx = (("kind", "fhir"), ("status", "2xx"))
    assert samples[("vtdui_viatrajectoire_request_duration_seconds_count", fhir_2xx)] == 3
    assert samples[("vtdui_viatrajectoire_request_duration_seconds_sum", fhir_2xx)] == 7.28
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert (buckets["0.05"], buckets["0.25"], buckets["5.0"], buckets["10.0"], buckets["+Inf"]) == (1, 2, 2, 3, 3)
    for family, kind in (("vtdui_emissions", "counter"), ("vtdui_sync_cycles", "counter"),
                         ("vtdui_outbox_oldest_unsent_age_seconds", "gauge")):
        assert families[family].type == kind


def _exchange(kind: str, method: str, body: bytes, status: int = 201) -> Exchange:
    return Exchange(kind=kind, method=method, url="https://vt/fhir/Task", finess_eg="750000028", attempt=1,
                    started_at=datetime.now(UTC), duration=0.1, status=status,
                    request_headers=redact_headers({"Authorization": "Bearer SECRET-TOKEN",
                                                    "struct_idnat": "1750000028"}),
                    request_body=body, response_body=body)


def test_exchange_log_keeps_bodies_of_emissions_only(tmp_path: Path) -> None:
    outbox = Outbox.open(tmp_path)
    log = ExchangeLog(tmp_path, current_item=CURRENT_ITEM.get)
    try:
        item, _ = outbox.enqueue(_item(1))
        log.record(_exchange("fhir", "GET", b'{"resourceType": "Bundle", "name": "Dupont"}', 200))
        log.record(_exchange("token", "POST", b"client_secret=s3cret"))
        token = CURRENT_ITEM.set(item)
        try:
            log.record(_exchange("fhir", "POST", b'{"resourceType": "Task"}'))
        finally:
            CURRENT_ITEM.reset(token)
        [kept] = log.for_item(item.id)
        assert kept.request_body == '{"resourceType": "Task"}' and kept.request_headers["Authorization"] == "***"
        assert log.count() == 3
        raw = (tmp_path / "exchanges.sqlite3").read_bytes()
        assert b"Dupont" not in raw and b"s3cret" not in raw and b"SECRET-TOKEN" not in raw
        assert (tmp_path / "exchanges.sqlite3").stat().st_mode & 0o077 == 0
    finally:
        log.close()
        outbox.close()


def test_redact_health_masks_free_text_and_nir_and_keeps_codes() -> None:
    task = {"resourceType": "Task", "description": "suivi psychiatrique", "note": [{"text": "NIR 1850775123456 78"}],
            "input": [{"valueString": "ESAT 185077512345678"}, {"valueCodeableConcept": {"coding": [{"code": "41"}]}}]}
    redacted = redact_health(task)
    assert "psychiatrique" not in json.dumps(redacted) and "185077512345678" not in json.dumps(redacted)
    assert redacted["input"][1] == task["input"][1]
    assert task["description"] == "suivi psychiatrique"  # the input is not changed


def test_evidence_export_writes_payload_and_trace_without_secrets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    outbox = Outbox.open(state)
    log = ExchangeLog(state, current_item=CURRENT_ITEM.get)
    try:
        item, _ = outbox.enqueue(_item(1))
        body = {"resourceType": "Task", "meta": {"profile": ["https://x/esms-task"]}, "status": "completed"}
        token = CURRENT_ITEM.set(item)
        try:
            log.record(_exchange("fhir", "POST", json.dumps(body).encode(), 503))
            log.record(_exchange("fhir", "POST", json.dumps(body).encode(), 201))
        finally:
            CURRENT_ITEM.reset(token)
        outbox.mark_sent(outbox.claim("w")[0], {"status": 201, "location": "https://vt/fhir/Task/1/_history/1"})
    finally:
        log.close()
        outbox.close()
    report = export_evidence(state, tmp_path / "out")
    assert report.items == 1
    name = f"esms-task-{item.id:06d}"
    assert json.loads((tmp_path / "out" / f"{name}.json").read_text()) == body
    trace = json.loads((tmp_path / "out" / f"{name}.trace.json").read_text())
    assert [e["response"]["status"] for e in trace["exchanges"]] == [503, 201]
    assert "SECRET-TOKEN" not in "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert json.loads((tmp_path / "out" / "index.json").read_text())["items"][0]["profile"] == "https://x/esms-task"


@pytest.mark.parametrize(("host", "port", "public", "expected"), [
    ("127.0.0.1", 8765, None, "http://127.0.0.1:8765/vtdui/hook"),
    ("0.0.0.0", 8765, None, "http://127.0.0.1:8765/vtdui/hook"),
    ("127.0.0.1", 8765, "https://dui.example/hooks/", "https://dui.example/hooks/vtdui/hook"),
    ("127.0.0.1", 8765, "http://h:1/vtdui/hook", "http://h:1/vtdui/hook"),
])
def test_hook_endpoint(host: str, port: int, public: str | None, expected: str) -> None:
    assert hook_endpoint(host, port, public) == expected


def test_outbox_table_and_receiver_overrides(tmp_path: Path) -> None:
    from vtdui.config import load_config
    from vtdui.errors import ConfigError

    path = tmp_path / "vtdui.toml"
    path.write_text('[receiver]\nhost = "127.0.0.1"\nsecret = "0123456789abcdef"\n'
                    "[outbox]\npoll_seconds = 1\nreconcile_seconds = 60\n")
    config = load_config(path, env={"VTDUI_RECEIVER_HOST": "0.0.0.0",
                                    "VTDUI_RECEIVER_PUBLIC_URL": "http://vtdui:8765/vtdui/hook"})
    assert config.receiver.host == "0.0.0.0" and config.receiver.public_url == "http://vtdui:8765/vtdui/hook"
    assert (config.outbox.poll_seconds, config.outbox.reconcile_seconds, config.outbox.lease_seconds) == (1, 60, 300)
    path.write_text("[outbox]\npoll_seconds = 0\nreconcile_second = 5\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert "outbox.poll_seconds" in str(error.value) and "did you mean 'reconcile_seconds'" in str(error.value)
