"""Polling end to end: 20 establishments of 3 legal entities against the ViaTrajectoire simulator (mTLS +
OAuth2) and the session's HAPI server, through the poll scheduler of ``vtdui run``; one establishment's
document reads fail (503 injected by the simulator) while the 19 others complete, then it recovers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from inbound_helpers import write_config
from poll_helpers import create_decisions, simulator_with, sync_section

from vtdui.config import Establishment, LegalEntity, load_config
from vtdui.plugins import get_plugin_manager
from vtdui.runtime import Runtime
from vtdui.schedule import PollScheduler, SQLitePollSchedule
from vtdui.service import Service
from vtdui.sync import EstablishmentReport

pytestmark = [pytest.mark.integration, pytest.mark.simulator]


class Counting:
    """Wraps ``sync_establishment``: counts the polls running at once, in total and per legal entity."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.total = 0
        self.max_per_entity: Counter[str] = Counter()
        self.max_total = 0

    def __call__(self, entity: LegalEntity, establishment: Establishment) -> EstablishmentReport:
        with self.lock:
            self.running[entity.finess_ej] += 1
            self.total += 1
            self.max_per_entity[entity.finess_ej] = max(self.max_per_entity[entity.finess_ej],
                                                        self.running[entity.finess_ej])
            self.max_total = max(self.max_total, self.total)
        try:
            return self.runtime.sync.sync_establishment(entity, establishment)
        finally:
            with self.lock:
                self.running[entity.finess_ej] -= 1
                self.total -= 1


def test_twenty_establishments_one_failing(hapi_base_url: str, tmp_path: Path) -> None:
    with simulator_with(tmp_path / "sim", 3, 7, hapi_base_url) as sim:
        entities = sim.info["legal_entities"]
        chosen = {entities[0]["finess_ej"]: entities[0]["establishments"],
                  entities[1]["finess_ej"]: entities[1]["establishments"],
                  entities[2]["finess_ej"]: entities[2]["establishments"][:6]}
        egs = [e["finess_eg"] for group in chosen.values() for e in group]
        assert len(egs) == 20
        decisions = {eg: create_decisions(sim, eg, 2 if index % 3 == 0 else 1) for index, eg in enumerate(egs)}
        failing = entities[1]["establishments"][3]["finess_eg"]
        for decision in decisions[failing]:
            fault = {"route": f"GET /fhir/DocumentReference/{decision['docref_id']}", "status": 503, "count": 10000}
            assert httpx.post(f"{sim.admin_url}/faults", json=fault, timeout=30).status_code == 201
        config_path = write_config(tmp_path / "vtdui.toml", sim, chosen, state_dir=tmp_path / "state",
                                   hapi_base_url=hapi_base_url)
        with config_path.open("a", encoding="utf-8") as handle:
            handle.write(sync_section(max_concurrent=4, max_concurrent_per_entity=2, failure_backoff_seconds=600,
                                      interval_seconds=86400))
        config = load_config(config_path)
        with Runtime(config, pm=get_plugin_manager(None, load_entrypoints=False)) as runtime:
            schedule = SQLitePollSchedule.open(config.state_dir)
            try:
                counting = Counting(runtime)
                reports: list[EstablishmentReport] = []
                lock = threading.Lock()

                def on_report(report: EstablishmentReport) -> None:
                    with lock:
                        reports.append(report)

                # as in `vtdui run`: never-polled establishments are due at once
                scheduler = PollScheduler(config, schedule, counting, on_report=on_report,
                                          never_polled=lambda eg: runtime.state.cursor(eg, "1") is None)
                stopping = threading.Event()
                loop = threading.Thread(target=scheduler.run_forever, args=(stopping,), daemon=True)
                loop.start()
                try:
                    deadline = time.monotonic() + 540
                    while len(reports) < 20:
                        assert loop.is_alive() and time.monotonic() < deadline, len(reports)
                        time.sleep(0.1)
                finally:
                    stopping.set()
                    loop.join(120)
                assert not loop.is_alive()

                by_eg = {r.finess_eg: r for r in reports}
                assert sorted(by_eg) == sorted(egs) and len(reports) == 20  # each polled once: none due again
                quarantined = [(q.finess_eg, q.reason, q.message[:300]) for q in runtime.state.quarantined()]
                assert quarantined == []
                assert [eg for eg, r in by_eg.items() if not r.ok] == [failing]
                assert any("flux 1" in e and "503" in e for e in by_eg[failing].errors), by_eg[failing].errors
                assert max(counting.max_per_entity.values()) <= 2 and counting.max_total <= 4
                for eg in egs:
                    for decision in decisions[eg]:
                        item = runtime.store.worklist_item(decision["id_nat_decision"], eg)
                        assert (item is None) == (eg == failing), (eg, decision["id_nat_decision"])
                rows = {r.finess_eg: r for r in schedule.snapshot()}
                assert rows[failing].consecutive_failures == 1 and "503" in (rows[failing].last_error or "")
                assert all(rows[eg].last_success_at is not None and rows[eg].consecutive_failures == 0
                           for eg in egs if eg != failing)
                assert all(r.locked_by is None for r in rows.values())

                # /metrics shows the failing establishment (by FINESS EG only)
                service = Service(runtime, schedule=schedule)
                assert service.scheduler.schedule is schedule
                text = service.render_metrics()
                assert [line for line in text.splitlines() if line.startswith("vtdui_poll_consecutive_failures")] \
                    == [f'vtdui_poll_consecutive_failures{{finess_eg="{failing}"}} 1.0']
                for sample in ('vtdui_poll_establishments{state="total"} 20.0', "vtdui_polls_in_flight 0.0",
                               'vtdui_poll_establishments{state="polling"} 0.0', "vtdui_poll_never_succeeded 1.0"):
                    assert sample in text, sample

                # the fault ends: the next round (`vtdui run --once`) brings the missing decisions
                assert httpx.delete(f"{sim.admin_url}/faults", timeout=30).status_code == 200
                again = service.sync_once()
                assert again is not None and again.ok, [r.errors for r in again.establishments if r.errors]
                assert len(again.establishments) == 20
                for decision in decisions[failing]:
                    assert runtime.store.worklist_item(decision["id_nat_decision"], failing) is not None
                recovered = {r.finess_eg: r for r in schedule.snapshot()}[failing]
                assert recovered.consecutive_failures == 0 and recovered.last_error is None
                service.close()
            finally:
                schedule.close()
