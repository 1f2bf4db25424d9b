"""Soak: two `vtdui run` workers on one PostgreSQL database, a seeded random mix of traffic and faults.

Real components only: the session's HAPI server (REST-hook Subscriptions installed by `vtdui setup`), the
ViaTrajectoire simulator (HTTPS, mutual TLS, OAuth2; faults armed on its admin port), a fresh database of the
session's PostgreSQL cluster (``vtdui db migrate``), and two `vtdui run` processes sharing it:

* worker **A** runs the inbound sync every 5 s (flux 1, 3, 5) and is the Subscriptions' target;
* worker **B** runs with ``--no-sync`` on a port of its own: it only delivers (and reconciles).

For ``VTDUI_SOAK_SECONDS`` (default 120) a random mix (seed printed; ``VTDUI_SOAK_SEED`` sets it; timing varies)
of: new decisions notified to 1 or 2 of three establishments (two legal entities); DUI users' status changes
on the work-list Tasks in HAPI, each item following a valid sequence (If-Match: a save refused because the plugin
wrote the item meanwhile is read again, as a screen would; now and then a screen is left open while the plugin
records a flux-5 status on its item, so that its save is refused: HAPI 8.8 answers 409, not FHIR's 412); other
establishments' statuses and MDPH events (flux 5); faults
(503 and 429 with Retry-After, dropped connections, an expired token, a short outage of every
``POST /fhir/Task``, 503 on the inbound searches).

Then, faults cleared and the outbox drained (bounded waits): every local change was accepted exactly once and
in its item's order, nothing else was posted, every decision is in HAPI's work list, every flux-5 status is
recorded on its item, the outbox holds nothing pending, sending or failed, nothing is quarantined, and the logs
of both workers hold no secret and no name, NIR or birth date of the simulator's persons.

Without the PostgreSQL backend (no :mod:`vtdui.storage`) the same run uses the SQLite default and worker A only.

Which path moves the changes: both workers reconcile every 5 s, so under faults a change is found by HAPI's
Subscription or by the reconciliation, whichever comes first: the soak checks that nothing is lost, doubled or
reordered through both paths together. Each path alone is proven in ``tests/e2e/outbound``
(``test_subscription_path.py``, and the reconciliation test of ``test_outbound_e2e.py``).
"""

from __future__ import annotations

import copy
import os
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from outbound_e2e_helpers import free_port, own_profiles, wait_for
from soak_helpers import (
    CONFLICT,
    Deployment,
    Worker,
    child_env,
    id_nat_of,
    secrets_of,
    sensitive_values,
    status_pair,
    wind_down,
    write_config,
)

from vtdui.mapping import systems, worklist
from vtdui.mapping.worklist import set_business_status
from vtdui.simulator.server import start_simulator

SOAK_SECONDS = float(os.environ.get("VTDUI_SOAK_SECONDS", "120"))

pytestmark = [pytest.mark.integration, pytest.mark.simulator, pytest.mark.timeout(int(SOAK_SECONDS) + 1200)]

#: Valid ESMS status sequences a DUI user follows on a work-list item (codes as in the outbound e2e tests).
SEQUENCES: tuple[tuple[tuple[str, str | None], ...], ...] = (
    (("41", "150"), ("42", None), ("72", None), ("71", None)),
    (("41", "152"), ("42", None), ("47", None), ("48", None)),
    (("45", "118"),),
    (("41", "153"), ("42", None)),
)
#: MDPH events applied in turn to the items kept for them (refusal ratified, reactivated, notification cancelled).
MDPH_SEQUENCE = (("46", "114"), ("54", "112"), ("49", "109"))
#: Statuses other establishments report (recorded on the items, never emitted back).
OTHER_STATUSES: tuple[tuple[str, str | None], ...] = (("43", None), ("47", None), ("45", "118"))
#: Weights of the actions of one step.
ACTIONS = {"decision": 1.0, "change": 6.0, "other-esms": 1.0, "mdph": 0.5, "fault": 1.2, "conflict": 0.3}
#: At most this many outages of every POST /fhir/Task, each OUTAGE seconds long.
MAX_OUTAGES = 2
OUTAGE = (5.0, 9.0)


@dataclass
class Item:
    """One work-list item (decision x establishment) and what happened to it."""

    id_nat: str
    eg: str
    sequence: tuple[tuple[str, str | None], ...] = ()
    mdph: bool = False
    ready: bool = False
    expected: list[tuple[str, str | None]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    mdph_events: int = 0
    mdph_status: str | None = None

    @property
    def has_next(self) -> bool:
        return self.ready and not self.mdph and len(self.expected) < len(self.sequence)


@dataclass
class Soak:
    """The traffic generator: its random source, the items and the counters of what it did."""

    deployment: Deployment
    rng: random.Random
    ours: list[str]
    reporter: str
    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    outages: int = 0
    outage_until: float | None = None

    def new_decision(self, mdph: bool = False) -> None:
        notified = self.rng.sample(self.ours, 2) if self.rng.random() < 0.2 else [self.rng.choice(self.ours)]
        decision = self.deployment.new_decision(notified)
        id_nat = decision["id_nat_decision"]
        self.decisions.append(id_nat)
        for eg in notified:
            self.items[(id_nat, eg)] = Item(id_nat, eg, sequence=self.rng.choice(SEQUENCES), mdph=mdph)
        self.counts["decisions"] += 1

    def check_arrivals(self, client: Any) -> bool:
        """Mark the items now in HAPI's work list; tell whether every item is."""
        for item in self.items.values():
            if not item.ready and self.deployment.worklist_task(item.id_nat, item.eg, client) is not None:
                item.ready = True
        return all(item.ready for item in self.items.values())

    def change(self, client: Any) -> None:
        candidates = [i for i in self.items.values() if i.has_next]
        if not candidates:
            return
        self.change_item(client, self.rng.choice(candidates))

    def change_item(self, client: Any, item: Item) -> None:
        statut, motif = item.sequence[len(item.expected)]
        # the user looks at the screen a moment before saving: the plugin may write the item meanwhile
        _, conflicts = self.deployment.user_change(client, item.id_nat, item.eg, statut, motif,
                                                   think=self.rng.uniform(0.0, 1.0))
        item.expected.append((statut, motif))
        self.counts["changes"] += 1
        self.counts["saves in conflict with the plugin, read again"] += conflicts

    def conflict(self, client: Any) -> None:
        """A user's screen open on an item while the plugin records a flux-5 status on it: the save is refused.

        The screen then reads the item again and saves the change (counted like any other change).
        """
        candidates = [i for i in self.items.values() if i.has_next]
        if not candidates:
            return
        item = self.rng.choice(candidates)
        d = self.deployment
        opened = d.worklist_task(item.id_nat, item.eg, client)
        assert opened is not None
        statut, motif = self.rng.choice(OTHER_STATUSES)
        event = d.event(source="esms", finess_eg=self.reporter, id_nat_decision=item.id_nat, statut_esms=statut,
                        **({"motif_esms": motif} if motif else {}))
        for other in self.items.values():
            if other.id_nat == item.id_nat:
                other.events.append(event["resource"]["id"])
        self.counts["other-ESMS statuses"] += 1
        deadline = time.monotonic() + 20  # the next inbound cycle of worker A (every 5 s) writes the item
        while time.monotonic() < deadline:
            current = d.worklist_task(item.id_nat, item.eg, client) or {}
            if current.get("meta", {}).get("versionId") != opened["meta"]["versionId"]:
                break
            time.sleep(0.5)
        else:
            self.counts["conflict not provoked (no inbound cycle in 20 s)"] += 1
        statut, motif = item.sequence[len(item.expected)]
        stale = set_business_status(copy.deepcopy(opened), statut, reason=motif, date=date.today().isoformat())
        stale["meta"] = {k: v for k, v in stale["meta"].items() if k in ("profile", "tag")}
        response = client.put(f"Task/{opened['id']}", json=stale,
                              headers={"If-Match": f'W/"{opened["meta"]["versionId"]}"'})
        if response.status_code == 200:  # not provoked (no inbound cycle wrote it): this save is the change
            item.expected.append((statut, motif))
            self.counts["changes"] += 1
            return
        assert response.status_code in CONFLICT, response.text
        self.counts[f"stale saves refused ({response.status_code}), read again"] += 1
        self.change_item(client, item)

    def other_esms(self) -> None:
        candidates = [i for i in self.items.values() if i.ready]
        if not candidates:
            return
        item = self.rng.choice(candidates)
        statut, motif = self.rng.choice(OTHER_STATUSES)
        task = self.deployment.event(source="esms", finess_eg=self.reporter, id_nat_decision=item.id_nat,
                                     statut_esms=statut, **({"motif_esms": motif} if motif else {}))
        for other in self.items.values():  # every establishment of ours notified of the decision sees it
            if other.id_nat == item.id_nat:
                other.events.append(task["resource"]["id"])
        self.counts["other-ESMS statuses"] += 1

    def mdph(self) -> None:
        candidates = [i for i in self.items.values() if i.ready and i.mdph and i.mdph_events < len(MDPH_SEQUENCE)]
        if not candidates:
            return
        item = self.rng.choice(candidates)
        statut, motif = MDPH_SEQUENCE[item.mdph_events]
        item.mdph_events += 1
        task = self.deployment.event(source="mdph", finess_eg=item.eg, id_nat_decision=item.id_nat,
                                     statut_esms=statut, motif_esms=motif, description="Événement MDPH (soak)")
        item.events.append(task["resource"]["id"])
        item.mdph_status = statut
        self.counts["MDPH events"] += 1

    def fault(self, now: float, deadline: float) -> None:
        if self.outage_until is not None:
            return
        kinds = ["503", "429", "drop", "expire-token", "inbound-503"]
        if self.outages < MAX_OUTAGES and deadline - now > 30:
            kinds.append("outage")
        kind = self.rng.choice(kinds)
        d = self.deployment
        if kind == "503":
            d.fault(route="POST /fhir/Task", status=503, retry_after=1, count=self.rng.randint(1, 3))
        elif kind == "429":
            d.fault(route="POST /fhir/Task", status=429, retry_after=self.rng.choice([1, 2]), count=1)
        elif kind == "drop":
            d.fault(route="POST /fhir/Task", action="drop", count=1)
        elif kind == "expire-token":
            d.fault(route="POST /fhir/Task", action="expire-token", count=1)
        elif kind == "inbound-503":
            d.fault(route="GET /fhir/DocumentReference*", status=503, count=self.rng.randint(1, 2))
        else:
            d.fault(route="POST /fhir/Task", status=503, count=100_000)
            self.outages += 1
            self.outage_until = now + self.rng.uniform(*OUTAGE)
        self.counts[f"fault {kind}"] += 1

    def end_outage(self, now: float) -> None:
        if self.outage_until is not None and now >= self.outage_until:
            self.deployment.clear_faults()  # also disarms what else was armed: the next faults come anew
            self.outage_until = None


def _choose_establishments(info: dict[str, Any]) -> tuple[list[str], str]:
    """Three non-ESAT establishments over two legal entities (ours), and one more that reports statuses."""
    by_entity = [[e["finess_eg"] for e in entity["establishments"] if not e["is_esat"]]
                 for entity in info["legal_entities"]]
    ours = by_entity[0][:2] + by_entity[1][:1]
    if len(ours) < 3:
        ours = [eg for group in by_entity for eg in group][:3]
    assert len(ours) >= 2, info["legal_entities"]
    reporter = next(e["finess_eg"] for entity in info["legal_entities"] for e in entity["establishments"]
                    if e["finess_eg"] not in ours)
    return ours, reporter


def test_soak_two_workers_random_traffic_and_faults(hapi: Any, request: pytest.FixtureRequest,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("soak")
    seed = int(os.environ.get("VTDUI_SOAK_SEED") or random.SystemRandom().randrange(1, 10**9))
    rng = random.Random(seed)
    database_url = request.getfixturevalue("postgres").fresh_database("soak")
    sim = start_simulator(tmp / "simulator", seed=seed, n_decisions=1, port=0, admin_port=0,
                          hapi_base_url=hapi.base_url)
    workers: list[Worker] = []
    deployment: Deployment | None = None
    wound_down = False
    started = time.monotonic()
    try:
        ours, reporter = _choose_establishments(sim.info)
        port_a, port_b = free_port(), free_port()
        config_path = write_config(tmp / "vtdui.toml", sim, ours, state_dir=tmp / "dui-state",
                                   hapi_base_url=hapi.base_url, receiver_port=port_a,
                                   receiver_secret=secrets.token_urlsafe(24), database_url=database_url,
                                   sync_interval=5, reconcile_seconds=5)
        env = child_env(own_profiles(tmp / "profiles", f"-soak{seed}"), database_url)
        deployment = Deployment(sim=sim, config_path=config_path, tmp=tmp, hapi_base_url=hapi.base_url,
                                child_env=env, database_url=database_url)
        deployment.migrate()
        deployment.cli("setup", "--json")
        soak = Soak(deployment, rng, ours, reporter)
        for index in range(9):
            soak.new_decision(mdph=index % 3 == 0)
        worker_a = deployment.worker("a", port_a)
        workers.append(worker_a)
        worker_a.start()
        worker_b = deployment.worker("b", port_b)
        workers.append(worker_b)
        worker_b.start("--no-sync")
        with deployment.fhir() as client:
            wait_for(lambda: soak.check_arrivals(client),
                     "the first decisions in the work list", timeout=180, pause=1)
            # -- the soak itself ---------------------------------------------------------------------------
            began = time.monotonic()
            deadline = began + SOAK_SECONDS
            next_arrivals = began
            steps = 0
            while (now := time.monotonic()) < deadline and steps < 100_000:
                steps += 1
                soak.end_outage(now)
                if now >= next_arrivals:
                    soak.check_arrivals(client)
                    next_arrivals = now + 3
                action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                if action == "decision":
                    soak.new_decision(mdph=rng.random() < 0.2)
                elif action == "change":
                    soak.change(client)
                elif action == "other-esms":
                    soak.other_esms()
                elif action == "mdph":
                    soak.mdph()
                elif action == "conflict":
                    soak.conflict(client)
                else:
                    soak.fault(now, deadline)
                time.sleep(rng.uniform(0.05, 0.3))
            active = time.monotonic() - began
            deployment.clear_faults()
            soak.outage_until = None
            # -- drain (bounded) ---------------------------------------------------------------------------
            drain_started = time.monotonic()
            wait_for(lambda: soak.check_arrivals(client),
                     "every decision created in the simulator in HAPI's work list", timeout=180, pause=1)
            expected = {(i.id_nat, i.eg): i.expected for i in soak.items.values() if i.expected}
            total = sum(len(v) for v in expected.values())

            def delivered() -> dict[tuple[str, str], list[tuple[str | None, str | None]]] | None:
                got: dict[tuple[str, str], list[tuple[str | None, str | None]]] = {}
                for r in deployment.accepted_tasks():
                    got.setdefault((id_nat_of(r["body"]) or "", r["struct_idnat"][1:]), []).append(
                        status_pair(r["body"]))
                return got if sum(len(v) for v in got.values()) >= total else None

            received = wait_for(delivered, f"{total} ESMSTasks accepted by the simulator", timeout=300, pause=1)

            def outbox_drained() -> dict[str, int] | None:
                with deployment.runtime() as runtime:
                    counts = runtime.outbox.counts()
                return counts if counts["pending"] == counts["sending"] == counts["failed"] == 0 else None

            outbox_counts = wait_for(outbox_drained, "an empty outbox (nothing pending, sending or failed)",
                                     timeout=120, pause=1)

            def events_recorded() -> list[str] | None:
                missing = []
                for item in soak.items.values():
                    if not item.events:
                        continue
                    task = deployment.worklist_task(item.id_nat, item.eg, client) or {}
                    seen = {r.get(systems.RS_TASK_ID) for r in worklist.remote_statuses(task)}
                    missing += [f"{item.id_nat}/{item.eg}:{e}" for e in item.events if e not in seen]
                return None if missing else []

            wait_for(lambda: events_recorded() is not None, "every flux-5 status recorded on its work-list item",
                     timeout=120, pause=2)
            for item in soak.items.values():
                if item.mdph_status is not None:
                    task = deployment.worklist_task(item.id_nat, item.eg, client) or {}
                    assert worklist.business_status(task) == item.mdph_status, (item, task.get("businessStatus"))
            drain = time.monotonic() - drain_started
        retries = 0.0
        sent_by: dict[str, int] = {}
        for worker in workers:
            metrics = worker.metrics()
            retries += metrics.get('vtdui_emissions_total{flux="4",outcome="retry"}', 0.0)
            sent_by[worker.name] = int(metrics.get('vtdui_emissions_total{flux="4",outcome="sent"}', 0.0))
        with deployment.runtime() as runtime:
            quarantined = runtime.state.quarantined()
            sent_items = runtime.outbox.list(states=["sent"], limit=100_000)
        rejected_attempts = sum(1 for r in deployment.sim.context.state.received_since(0)
                                if r.method == "POST" and r.path.endswith("/Task") and r.status != 201)
        # -- the checks ----------------------------------------------------------------------------------------
        assert received == expected, _difference(expected, received)
        assert quarantined == [], quarantined
        assert outbox_counts["sent"] == total == len(sent_items), (outbox_counts, total)
        assert soak.counts["changes"] >= 10, "too few changes for the soak to prove anything"
        wind_down(deployment, worker_a, workers[1:])
        wound_down = True
        text = "\n".join(worker.log_text() for worker in workers)
        assert len(text.splitlines()) >= 20, "the workers logged almost nothing: the check would prove nothing"
        sensitive = sensitive_values(sim)
        assert len(sensitive) >= 20, "too few persons for the privacy check to mean anything"
        leaked = sorted(v for v in sensitive | secrets_of(deployment) if v in text)
        assert leaked == [], f"{len(leaked)} sensitive value(s) found in the logs of the workers"
        assert "Bearer " not in text and "access_token" not in text
        print()
        print(f"soak (seed {seed}, PostgreSQL, 2 workers): "
              f"{active:.0f} s of traffic, drained in {drain:.0f} s, {time.monotonic() - started:.0f} s in all")
        print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(soak.counts.items())))
        print(f"  {total} changes delivered exactly once, in order, over {len(expected)} items; "
              f"{len(soak.items)} work-list items from {len(soak.decisions)} decisions; "
              f"{retries:.0f} delivery retries, {rejected_attempts} POSTs answered by a fault; "
              f"items sent by worker: {sent_by}")
    finally:
        if deployment is not None and workers and not wound_down:
            _cleanup(deployment, workers)
        sim.stop()


def _cleanup(deployment: Deployment, workers: list[Worker]) -> None:
    """After a failure: the Subscriptions off (receiver up when possible), every worker stopped."""
    try:
        deployment.clear_faults()
        wind_down(deployment, workers[0], workers[1:])
    except Exception as exc:  # cleanup: the failure that matters was raised already
        print(f"wind-down after a failure did not complete: {exc}")
        for worker in workers:
            try:
                worker.stop()
            except Exception:
                worker.process = None
        deployment.cli("setup", "--off", check=False)


def _difference(expected: dict[tuple[str, str], list[tuple[str, str | None]]],
                received: dict[tuple[str, str], list[tuple[str | None, str | None]]]) -> str:
    lines = []
    for key in sorted(set(expected) | set(received)):
        if expected.get(key, []) != received.get(key, []):
            lines.append(f"{key}: expected {expected.get(key, [])}, received {received.get(key, [])}")
    return "\n".join(lines[:30])
