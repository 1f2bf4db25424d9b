"""``vtdui run``: the long-running service next to HAPI.

One process, four activities sharing one :class:`~vtdui.runtime.Runtime`::

    HTTP listener (uvicorn, receiver.host:port)   POST/PUT /vtdui/hook/...  REST-hook deliveries from HAPI
                                                  GET /metrics              Prometheus text (prometheus_client)
                                                  GET /health               JSON, 503 when a loop died
    delivery worker (thread)     outbox → ViaTrajectoire; woken at once by a delivery, else every
                                 outbox.poll_seconds (retries whose backoff ended)
    reconciliation (thread)      every outbox.reconcile_seconds, and once at start: changes in HAPI the
                                 Subscriptions did not deliver (vtdui was down, HAPI gave up)
    inbound sync (thread)        the poll scheduler (:class:`vtdui.schedule.PollScheduler`): each establishment
                                 polled (flux 1, 3, 5) once per sync.interval_seconds at its own place in the
                                 interval, at most sync.max_concurrent at once (sync.max_concurrent_per_entity
                                 per legal entity); an establishment never synced is due at start

At start, the items a dead worker of this host left ``sending`` (a ``kill -9``, a power cut) are made
due again (:meth:`vtdui.outbox.Outbox.recover`). On SIGTERM or SIGINT the listener stops accepting,
the worker finishes the item it is sending and parks the ones it had claimed (pending, due now), the
loops end, then the stores are closed. A second signal exits at once; nothing is lost either way since
every item is committed before HAPI gets its answer, and leases expire.

:meth:`Service.run_once` (``vtdui run --once``) runs one round of each activity without the listener.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vtdui import __version__
from vtdui.emit import DeliveryReport
from vtdui.errors import ConfigError, VtduiError
from vtdui.exchanges import LATENCY_BUCKETS
from vtdui.logs import redact
from vtdui.outbox import ItemState
from vtdui.receiver import check_subscriptions, create_app, hook_endpoint, server_config
from vtdui.reconcile import CURSOR_OWNER, ReconcileReport
from vtdui.runtime import Runtime
from vtdui.schedule import OVERDUE_SECONDS, PollSchedule, PollScheduler
from vtdui.storage import open_poll_schedule
from vtdui.sync import EstablishmentReport, SyncReport

__all__ = ["CycleReport", "Metrics", "Service", "worker_is_dead"]

log = logging.getLogger(__name__)

#: Items handled per claim round of the worker.
_BATCH = 50
#: Seconds the shutdown waits for each loop to finish what it is doing.
_JOIN_SECONDS = 45.0


def worker_is_dead(worker: str) -> bool:
    """Tell whether an outbox worker name ``host:pid`` is a process of this host that no longer runs.

    Workers of other hosts are never declared dead (their lease expires instead).
    """
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Metrics:
    """Counters of this process (gauges are read from the stores when ``/metrics`` is scraped)."""

    started: float = field(default_factory=time.time)
    emissions: dict[tuple[str, str], int] = field(default_factory=dict)
    #: establishment polls by outcome (``ok``, ``error``)
    sync_cycles: dict[str, int] = field(default_factory=dict)
    pulled: dict[str, int] = field(default_factory=dict)
    reconcile_passes: dict[str, int] = field(default_factory=dict)
    reconcile_items: int = 0
    hook_deliveries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_delivery(self, report: DeliveryReport, flux_of: Callable[[int], str]) -> None:
        """Count the outcome of one :meth:`~vtdui.emit.Emitter.run_pending`."""
        with self.lock:
            for outcome, ids in (("sent", report.sent), ("failed", report.failed), ("retry", report.rescheduled)):
                for item_id in ids:
                    key = (flux_of(item_id), outcome)
                    self.emissions[key] = self.emissions.get(key, 0) + 1

    def add_sync(self, report: SyncReport) -> None:
        """Count the polls of one round over the establishments."""
        for establishment in report.establishments:
            self.add_poll(establishment)

    def add_poll(self, report: EstablishmentReport) -> None:
        """Count one establishment's poll."""
        with self.lock:
            outcome = "ok" if report.ok else "error"
            self.sync_cycles[outcome] = self.sync_cycles.get(outcome, 0) + 1
            for name in ("decisions_stored", "evaluations_stored", "statuses_received", "quarantined"):
                self.pulled[name] = self.pulled.get(name, 0) + int(getattr(report, name))

    def add_sync_failure(self) -> None:
        """Count an inbound round that raised."""
        with self.lock:
            self.sync_cycles["error"] = self.sync_cycles.get("error", 0) + 1

    def add_reconcile(self, report: ReconcileReport | None) -> None:
        """Count one reconciliation pass (``None``: it failed)."""
        with self.lock:
            outcome = "ok" if report is not None else "error"
            self.reconcile_passes[outcome] = self.reconcile_passes.get(outcome, 0) + 1
            if report is not None:
                self.reconcile_items += len(report.items)


class _FamiliesCollector(Collector):
    """A prometheus_client collector that builds its families on each scrape (figures read from the stores)."""

    def __init__(self, build: Callable[[], list[Metric]]) -> None:
        self._build = build

    def collect(self) -> Iterable[Metric]:
        """The families of this scrape."""
        return self._build()


@dataclass
class CycleReport:
    """What :meth:`Service.run_once` did."""

    sync: SyncReport | None = None
    sync_error: str | None = None
    reconcile: ReconcileReport | None = None
    reconcile_error: str | None = None
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    outbox: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No passing fault and no refused item in this cycle."""
        return (self.sync_error is None and self.reconcile_error is None and not self.delivery.failed
                and (self.sync is None or self.sync.ok))

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "ok": self.ok,
            "sync": None if self.sync is None else {
                "ok": self.sync.ok, "seconds": round(self.sync.seconds, 3),
                "establishments": [vars(r) for r in self.sync.establishments]},
            "sync_error": self.sync_error,
            "reconcile": None if self.reconcile is None else {
                "versions_seen": self.reconcile.versions_seen, "items": self.reconcile.items},
            "reconcile_error": self.reconcile_error,
            "delivery": {"sent": self.delivery.sent, "failed": self.delivery.failed,
                         "rescheduled": self.delivery.rescheduled},
            "outbox": self.outbox,
        }


class Service:
    """The service of ``vtdui run`` over a :class:`Runtime`.

    Args:
        runtime: the shared objects (the service does not close it).
        host / port: where the listener binds (default: ``receiver.host`` / ``receiver.port``).
        sync_interval: seconds between two polls of one establishment (default ``sync.interval_seconds``;
            ``0`` disables the inbound sync).
        reconcile_interval: seconds between reconciliation passes (default ``outbox.reconcile_seconds``).
        poll_interval: seconds the idle worker waits before looking for due retries (default
            ``outbox.poll_seconds``).
        poll_now: every establishment is due at start (``vtdui run --poll-now``) instead of at its own
            place in the interval.
        schedule: the poll schedule store (default: :func:`vtdui.storage.open_poll_schedule`, opened on
            first use and closed by :meth:`close`).
    """

    def __init__(self, runtime: Runtime, *, host: str | None = None, port: int | None = None,
                 sync_interval: float | None = None, reconcile_interval: float | None = None,
                 poll_interval: float | None = None, poll_now: bool = False,
                 schedule: PollSchedule | None = None) -> None:
        config = runtime.config
        self.runtime = runtime
        self.host = host if host is not None else config.receiver.host
        self.port = port if port is not None else config.receiver.port
        self.sync_interval = config.sync.interval_seconds if sync_interval is None else sync_interval
        self.reconcile_interval = (config.outbox.reconcile_seconds if reconcile_interval is None
                                   else reconcile_interval)
        self.poll_interval = config.outbox.poll_seconds if poll_interval is None else poll_interval
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._last_error: dict[str, str] = {}
        self._cert_expiry: dict[str, datetime] | None = None
        self._registry: CollectorRegistry | None = None
        self.poll_now = poll_now
        self._schedule = schedule
        self._owns_schedule = schedule is None
        self._scheduler: PollScheduler | None = None
        self._schedule_lock = threading.Lock()

    # -- one round of everything -------------------------------------------------------------------------

    @property
    def scheduler(self) -> PollScheduler:
        """The poll scheduler (its schedule store opened on first use)."""
        with self._schedule_lock:
            if self._scheduler is None:
                if self._schedule is None:
                    self._schedule = open_poll_schedule(self.runtime.config)
                state = self.runtime.state
                self._scheduler = PollScheduler(
                    self.runtime.config, self._schedule, self.runtime.sync.sync_establishment,
                    on_report=self.metrics.add_poll, interval=self.sync_interval or None,
                    never_polled=lambda finess_eg: state.cursor(finess_eg, "1") is None, is_dead=worker_is_dead)
            return self._scheduler

    def close(self) -> None:
        """Close the poll schedule store this service opened."""
        with self._schedule_lock:
            if self._schedule is not None and self._owns_schedule:
                self._schedule.close()
                self._schedule = None
            self._scheduler = None

    def sync_once(self) -> SyncReport | None:
        """Poll every configured establishment once (``None`` when none is configured).

        Same limits as the service loop (``sync.max_concurrent``, ``sync.max_concurrent_per_entity``); each
        poll is recorded in the poll schedule.
        """
        if not self.runtime.config.legal_entities:
            return None
        report = self.scheduler.run_all(should_stop=self.stopping.is_set)
        if not report.ok:
            log.warning("inbound cycle finished with errors: %s",
                        "; ".join(f"{r.finess_eg}: {', '.join(r.errors)}" for r in report.establishments if r.errors))
        return report

    def reconcile_once(self) -> ReconcileReport:
        """One reconciliation pass; wakes the worker when it queued something."""
        try:
            report = self.runtime.reconciler.run_once()
        except Exception:
            self.metrics.add_reconcile(None)
            raise
        self.metrics.add_reconcile(report)
        if report.items:
            self._wake.set()
        return report

    def deliver_due(self, limit: int = _BATCH) -> DeliveryReport:
        """Deliver the due items (at most ``limit``), counting the outcomes."""
        report = self.runtime.emitter.run_pending(limit, should_stop=self.stopping.is_set)
        self.metrics.add_delivery(report, self._flux_of)
        return report

    def run_once(self, *, inbound: bool = True) -> CycleReport:
        """Inbound cycle (unless ``inbound`` is false), reconciliation pass, then every due outbox item.

        Items a dead worker of this host left ``sending`` are recovered first, as :meth:`start` does.
        """
        cycle = CycleReport()
        self.recover()
        try:
            cycle.sync = self.sync_once() if inbound else None
        except VtduiError as exc:
            self.metrics.add_sync_failure()
            cycle.sync_error = str(exc)
        try:
            cycle.reconcile = self.reconcile_once()
        except VtduiError as exc:
            cycle.reconcile_error = str(exc)
        while True:
            report = self.deliver_due()
            cycle.delivery.sent += report.sent
            cycle.delivery.failed += report.failed
            cycle.delivery.rescheduled += report.rescheduled
            if report.attempted == 0:
                break
        cycle.outbox = self.runtime.outbox.counts()
        return cycle

    def _flux_of(self, item_id: int) -> str:
        item = self.runtime.outbox.backend.get(item_id)
        return item.flux if item is not None else "unknown"

    # -- the long-running service ------------------------------------------------------------------------

    def recover(self) -> int:
        """Make due again the items a dead worker of this host left ``sending``; return how many."""
        recovered = self.runtime.outbox.recover(worker_is_dead)
        for item in recovered:
            log.warning("outbox item %d was being sent by a worker that stopped; it will be sent again", item.id)
        return len(recovered)

    def endpoint(self) -> str:
        """The URL HAPI's Subscriptions must call."""
        return hook_endpoint(self.host, self.port, self.runtime.config.receiver.public_url)

    def build_app(self) -> Any:
        """The listener's ASGI application: receiver, ``/metrics``, ``/health``."""
        secret = self.runtime.config.receiver.secret

        def on_enqueued() -> None:
            with self.metrics.lock:
                self.metrics.hook_deliveries += 1
            self._wake.set()

        async def metrics(_request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            text = await run_in_threadpool(self.render_metrics)
            return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

        async def health(_request: Request) -> Response:
            body = self.health()
            return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

        return create_app(self.runtime.emitter, secret, on_enqueued=on_enqueued, extra_routes=[
            Route("/metrics", metrics, methods=["GET"]), Route("/health", health, methods=["GET"])])

    def start(self) -> None:
        """Recover, check the Subscriptions, start the listener and the loops (returns at once).

        Raises:
            ConfigError: no ``receiver.secret``, or the listener cannot bind its port.
        """
        if not self.runtime.config.receiver.secret:
            raise ConfigError("receiver.secret is empty: set it (e.g. receiver.secret = \"env:VTDUI_RECEIVER_SECRET\") "
                              "and run `vtdui setup` so that HAPI's Subscriptions send it")
        self.recover()
        endpoint = self.endpoint()
        try:
            for problem in check_subscriptions(self.runtime.store, endpoint, self.runtime.config.receiver.secret):
                log.warning("%s; until then only the reconciliation (every %.0fs) sees local changes",
                            problem, self.reconcile_interval)
        except VtduiError as exc:
            log.warning("cannot check the Subscriptions in HAPI: %s", exc)
        config = server_config(self.build_app(), self.host, self.port)
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(target=self._server.run, name="vtdui-http", daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"cannot listen on {self.host}:{self.port} (receiver.host / receiver.port): "
                                  "is another vtdui running, or the port taken?")
            time.sleep(0.02)
        log.info("listening on %s:%d; HAPI delivers to %s", self.host, self.port, endpoint)
        loops: list[tuple[str, Callable[[], None]]] = [("worker", self._worker_loop),
                                                       ("reconcile", self._reconcile_loop)]
        if self.sync_interval > 0 and self.runtime.config.legal_entities:
            loops.append(("sync", self._sync_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"vtdui-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the listener and the loops; in-flight work finishes or is parked."""
        self.stopping.set()
        self._wake.set()
        if self._server is not None:
            self._server.should_exit = True
        deadline = time.monotonic() + _JOIN_SECONDS
        for thread in [*self._threads, *([self._server_thread] if self._server_thread else [])]:
            thread.join(max(deadline - time.monotonic(), 0.1))
            if thread.is_alive():
                log.warning("%s did not stop in time; leaving it (its work is durable)", thread.name)

    def serve_forever(self) -> None:
        """Start, wait for SIGTERM/SIGINT, stop. A second signal exits at once."""
        self.start()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.stopping.is_set():
                log.warning("second signal: exiting now")
                os._exit(1)
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self.stopping.wait(0.5):
                dead = [t.name for t in self._threads if not t.is_alive()]
                if self._server_thread is not None and not self._server_thread.is_alive():
                    dead.append("vtdui-http")
                if dead:
                    log.error("%s stopped unexpectedly: shutting down", ", ".join(dead))
                    self.stopping.set()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _worker_loop(self) -> None:
        while not self.stopping.is_set():
            self._wake.clear()
            attempted = 0
            try:
                attempted = self.deliver_due().attempted
                self._last_error.pop("worker", None)
            except Exception as exc:  # HAPI or the outbox failing: keep the loop, try again later
                self._last_error["worker"] = redact(f"{type(exc).__name__}: {exc}")
                log.exception("delivery round failed")
            if attempted == 0:
                self._wake.wait(self.poll_interval)

    def _reconcile_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.reconcile_once()
                self._last_error.pop("reconcile", None)
            except Exception as exc:
                self._last_error["reconcile"] = redact(f"{type(exc).__name__}: {exc}")
                log.warning("reconciliation pass failed (the next one covers the same window): %s", exc)
            self.stopping.wait(self.reconcile_interval)

    def _sync_loop(self) -> None:
        def on_error(exc: Exception | None) -> None:
            if exc is None:
                self._last_error.pop("sync", None)
            else:
                self._last_error["sync"] = f"poll schedule: {type(exc).__name__}"

        self.scheduler.run_forever(self.stopping, stagger=not self.poll_now, on_error=on_error)

    # -- observability ---------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``/health``: ``ok`` while every loop runs; the last error of each loop when it had one."""
        loops = {t.name.removeprefix("vtdui-"): t.is_alive() for t in self._threads}
        status = "ok" if all(loops.values()) and not self.stopping.is_set() else "unavailable"
        body: dict[str, Any] = {"status": status, "version": __version__, "loops": loops,
                                "last_errors": dict(self._last_error)}
        if self._scheduler is not None:
            with self.metrics.lock:
                outcomes = dict(self.metrics.sync_cycles)
            body["polling"] = {"in_flight": len(self._scheduler.in_flight()), "polls": outcomes}
        return body

    def _certificate_expiries(self) -> dict[str, float]:
        """Seconds left on each legal entity's certificate, read once (the files do not change under us)."""
        if self._cert_expiry is None:
            from vtdui.viatrajectoire.tls import check_certificates

            config = self.runtime.config
            self._cert_expiry = {c.finess_ej: c.not_after for c in check_certificates(
                config.legal_entities, config.viatrajectoire.ca_file) if c.not_after is not None}
        now = datetime.now(UTC)
        return {ej: round((when - now).total_seconds()) for ej, when in self._cert_expiry.items()}

    def render_metrics(self) -> str:
        """The Prometheus text exposition of the figures of ``vtdui status`` and this process's counters."""
        if self._registry is None:
            # a registry of this service only (not the process-wide default): figures come from its stores
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_FamiliesCollector(self._metric_families))
        return generate_latest(self._registry).decode("utf-8")

    def _metric_families(self) -> list[Metric]:
        """Build every family now, from the stores (database-backed figures) and this process's counters."""
        runtime = self.runtime
        families: list[Metric] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
            labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
            family: GaugeMetricFamily | CounterMetricFamily = (
                CounterMetricFamily(name, help_text, labels=labels) if kind == "counter"
                else GaugeMetricFamily(name, help_text, labels=labels))
            for sample_labels, value in samples:
                family.add_metric([sample_labels.get(key, "") for key in labels], value)
            families.append(family)

        metric("vtdui_build_info", "gauge", "vtdui version.", [({"version": __version__}, 1)])
        metric("vtdui_process_start_time_seconds", "gauge", "When this process started (Unix time).",
               [({}, self.metrics.started)])
        counts = runtime.outbox.counts()
        metric("vtdui_outbox_items", "gauge", "Outbox items by state.",
               [({"state": state.value}, counts.get(state.value, 0)) for state in ItemState])
        oldest = runtime.outbox.oldest_pending_age()
        metric("vtdui_outbox_oldest_unsent_age_seconds", "gauge",
               "Age of the oldest item not sent yet (0 when none).", [({}, round(oldest or 0.0, 3))])
        now = datetime.now(UTC)
        sync_samples: list[tuple[dict[str, str], float]] = []
        reconcile_samples: list[tuple[dict[str, str], float]] = []
        for cursor in runtime.state.cursors():
            age = round((now - cursor.last_success).total_seconds(), 3)
            if cursor.finess_eg == CURSOR_OWNER:
                reconcile_samples.append(({"resource": cursor.flux.removeprefix("outbound:")}, age))
            else:
                sync_samples.append(({"finess_eg": cursor.finess_eg, "flux": cursor.flux}, age))
        metric("vtdui_sync_last_success_age_seconds", "gauge",
               "Seconds since the last successful inbound search, per establishment and flux.", sync_samples)
        metric("vtdui_reconcile_last_success_age_seconds", "gauge",
               "Seconds since the last complete reconciliation pass, per resource type.", reconcile_samples)
        metric("vtdui_quarantined_documents", "gauge", "Documents kept aside (not resolved).",
               [({}, len(runtime.state.quarantined()))])
        if self._scheduler is not None:  # the inbound sync runs in this process
            self._render_polling(metric, now)
        with self.metrics.lock:
            emissions = dict(self.metrics.emissions)
            cycles = dict(self.metrics.sync_cycles)
            pulled = dict(self.metrics.pulled)
            passes = dict(self.metrics.reconcile_passes)
            reconcile_items = self.metrics.reconcile_items
            hooks = self.metrics.hook_deliveries
        metric("vtdui_emissions_total", "counter",
               "Delivery attempts by flux (2 ESMSConsent, 4 ESMSTask) and outcome (sent, failed, retry).",
               [({"flux": flux, "outcome": outcome}, value) for (flux, outcome), value in sorted(emissions.items())]
               or [({"flux": "4", "outcome": "sent"}, 0)])
        metric("vtdui_sync_cycles_total", "counter", "Establishment polls (flux 1, 3, 5 of one establishment) "
               "by outcome.",
               [({"outcome": k}, v) for k, v in sorted(cycles.items())] or [({"outcome": "ok"}, 0)])
        metric("vtdui_inbound_total", "counter", "What the inbound cycles brought (decisions, evaluations, "
               "statuses stored; documents quarantined).", [({"what": k}, v) for k, v in sorted(pulled.items())])
        metric("vtdui_reconcile_passes_total", "counter", "Reconciliation passes by outcome.",
               [({"outcome": k}, v) for k, v in sorted(passes.items())] or [({"outcome": "ok"}, 0)])
        metric("vtdui_reconcile_items_total", "counter", "Outbox items found by the reconciliation.",
               [({}, reconcile_items)])
        metric("vtdui_hook_deliveries_total", "counter", "REST-hook deliveries from HAPI that queued items.",
               [({}, hooks)])
        tokens = runtime.token_expiries()
        metric("vtdui_token_expires_in_seconds", "gauge",
               "Seconds until the cached access token of each legal entity expires (renewed before).",
               [({"finess_ej": ej}, round(left, 3)) for ej, left in sorted(tokens.items()) if left is not None])
        metric("vtdui_client_certificate_expiry_seconds", "gauge",
               "Seconds until the client certificate of each legal entity expires (negative once expired).",
               [({"finess_ej": ej}, left) for ej, left in sorted(self._certificate_expiries().items())])
        histogram = HistogramMetricFamily(
            "vtdui_viatrajectoire_request_duration_seconds",
            "Duration of the HTTP attempts towards ViaTrajectoire by kind (token, fhir) and status class.",
            labels=["kind", "status"])
        for (kind, status), stats in sorted(runtime.exchanges.latency_histograms().items()):
            cumulative, buckets = 0, []
            for bound, count in zip(LATENCY_BUCKETS, stats.buckets, strict=True):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", stats.count))
            histogram.add_metric([kind, status], buckets, sum_value=stats.seconds)
        families.append(histogram)
        return families

    def _render_polling(self, metric: Callable[[str, str, str, list[tuple[dict[str, str], float]]], None],
                        now: datetime) -> None:
        """The poll schedule's gauges: due, overdue and leased establishments, oldest success, failures."""
        try:
            rows = self.scheduler.schedule.snapshot() if self._scheduler is not None else []
        except Exception as exc:  # the database is down: /metrics still answers with the rest
            log.warning("cannot read the poll schedule for /metrics: %s", type(exc).__name__)
            return
        due = sum(1 for r in rows if r.next_due_at <= now and not r.leased(now))
        overdue = sum(1 for r in rows if (now - r.next_due_at).total_seconds() > OVERDUE_SECONDS
                      and not r.leased(now))
        leased = sum(1 for r in rows if r.leased(now))
        metric("vtdui_poll_establishments", "gauge",
               "Establishments of the poll schedule: total, due now, overdue (due for more than "
               f"{OVERDUE_SECONDS:.0f} s, not being polled), being polled (by any worker).",
               [({"state": "total"}, len(rows)), ({"state": "due"}, due), ({"state": "overdue"}, overdue),
                ({"state": "polling"}, leased)])
        metric("vtdui_polls_in_flight", "gauge", "Establishments this process is polling now.",
               [({}, len(self.scheduler.in_flight()))])
        ages = [(now - (r.last_success_at or r.next_due_at)).total_seconds() if r.last_success_at else None
                for r in rows]
        known = [a for a in ages if a is not None]
        metric("vtdui_poll_last_success_age_seconds_max", "gauge",
               "Seconds since the last successful poll of the establishment that waited longest (0 when none "
               "succeeded yet; see vtdui_poll_never_succeeded).", [({}, round(max(known, default=0.0), 3))])
        metric("vtdui_poll_never_succeeded", "gauge", "Establishments without a successful poll yet.",
               [({}, sum(1 for a in ages if a is None))])
        metric("vtdui_poll_consecutive_failures", "gauge",
               "Failed polls in a row, per establishment (only those failing now).",
               [({"finess_eg": r.finess_eg}, r.consecutive_failures) for r in rows if r.consecutive_failures])
