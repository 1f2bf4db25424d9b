"""``vtdui demo``: the whole round trip on an embedded default, no external service.

1. starts a local HAPI FHIR JPA server (our launcher, database on disk in the demo directory);
2. starts the ViaTrajectoire simulator (HTTPS, mutual TLS, OAuth2) with seeded decisions;
3. runs one inbound cycle: flux 1 decisions, flux 3 evaluations, flux 5 statuses into HAPI;
4. shows the DUI's work list as HAPI now holds it;
5. plays the DUI user: changes the status of one work-list Task in HAPI ("contact made", TRE_R357 41
   with reason 152) with a plain PUT, as a DUI screen does; HAPI's REST-hook Subscription (installed by
   the demo, as ``vtdui setup`` does) delivers the change to vtdui's receiver (run by the demo, as
   ``vtdui run`` does), which queues the ESMSTask (flux 4); the worker sends it. The latency from the save
   to ViaTrajectoire's answer is shown;
6. shows what the simulator received and accepted, and that a second cycle stores nothing twice.

Everything lands in ``--dir`` (default ``./vtdui-demo``) so the result can be inspected afterwards;
``--keep-running`` leaves both servers up until Ctrl+C.
"""

from __future__ import annotations

import copy
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx
import pluggy
from rich.console import Console
from rich.table import Table

from vtdui import hapi_server, sdo
from vtdui.changes import reference_of
from vtdui.config import load_config
from vtdui.errors import VtduiError
from vtdui.logs import setup_logging
from vtdui.plugins import describe_plugins
from vtdui.receiver import (
    create_app,
    disable_subscriptions,
    hook_endpoint,
    install_subscriptions,
    server_config,
)
from vtdui.runtime import Runtime
from vtdui.sync import SyncReport

__all__ = ["demo", "user_status_change"]

#: Seconds the demo waits for HAPI to deliver the user's change through its Subscription.
DELIVERY_TIMEOUT = 60.0

#: The status change the demo plays as the DUI user: "Contact effectué" / "L'usager a visité l'ESMS".
DEMO_STATUS = ("41", "152")


def _code(concept: Any) -> str:
    for coding in (concept or {}).get("coding", []):
        if coding.get("code"):
            return f"{coding['code']} {coding.get('display', '')}".strip()
    return "-"


def _input(task: dict[str, Any], name: str) -> str:
    for item in task.get("input", []):
        codes = {c.get("code") for c in item.get("type", {}).get("coding", [])}
        if name in codes:
            value = item.get("valueIdentifier", {}).get("value") or item.get("valueString")
            if value:
                return str(value)
    return "-"


def _worklist_key(task: dict[str, Any]) -> tuple[str, str]:
    for identifier in task.get("identifier", []):
        if identifier.get("system") == "urn:vtdui:worklist" and "|" in str(identifier.get("value")):
            id_nat, _, finess_eg = str(identifier["value"]).partition("|")
            return id_nat, finess_eg
    raise click.ClickException(f"Task/{task.get('id')} has no work-list identifier")


def user_status_change(task: dict[str, Any], status: str, reason: str | None, when: date) -> dict[str, Any]:
    """Return ``task`` as a DUI user would save it after setting the ESMS status (and its reason).

    The local model keeps the ESMS status in ``businessStatus`` (TRE_R357) and its reason in
    ``statusReason`` (TRE_R358); ``meta.source`` is dropped because the change is the user's, not the
    plugin's (a plugin write is never emitted).
    """
    changed = copy.deepcopy(task)
    meta = changed.setdefault("meta", {})
    meta.pop("source", None)
    changed["businessStatus"] = {"coding": [{"system": sdo.TRE_R357, "code": status}]}
    if reason is not None:
        changed["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": reason}]}
    else:
        changed.pop("statusReason", None)
    changed["lastModified"] = when.isoformat()
    return changed


def _worklist_table(items: list[dict[str, Any]], limit: int) -> Table:
    table = Table(title=f"work list in HAPI ({len(items)} items, first {min(limit, len(items))} shown)")
    for column in ("Task id", "idNat_Decision", "ESMS status", "since"):
        table.add_column(column, no_wrap=True)
    for task in items[:limit]:
        table.add_row(str(task["id"])[:13], _input(task, sdo.ID_NAT_DECISION), _code(task.get("businessStatus")),
                      str(task.get("lastModified") or task.get("authoredOn") or "-")[:10])
    return table


def _sync_summary(report: SyncReport, console: Console) -> None:
    table = Table(title=f"inbound cycle ({report.seconds:.1f} s)")
    for column in ("establishment", "decisions", "unchanged", "evaluations", "statuses", "quarantined", "errors"):
        table.add_column(column, justify="left" if column in ("establishment", "errors") else "right")
    for r in report.establishments:
        table.add_row(r.finess_eg, str(r.decisions_stored), str(r.decisions_unchanged), str(r.evaluations_stored),
                      f"{r.statuses_applied}/{r.statuses_received}", str(r.quarantined), "; ".join(r.errors) or "-")
    console.print(table)


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("vtdui-demo"),
              show_default=True, help="Where the HAPI database, the simulator PKI and the DUI state go.")
@click.option("--decisions", default=30, show_default=True, type=click.IntRange(1, 100_000),
              help="Decisions the simulator generates.")
@click.option("--port", default=hapi_server.DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="HAPI port (0 or a taken port: a free one is chosen).")
@click.option("--memory", default="1g", show_default=True, help="HAPI maximum Java heap.")
@click.option("--keep-running", is_flag=True, help="Leave HAPI and the simulator up until Ctrl+C.")
def demo(directory: Path, decisions: int, port: int, memory: str, keep_running: bool) -> None:
    """Run the whole round trip on a local HAPI server and the ViaTrajectoire simulator."""
    from vtdui.simulator.server import start_simulator

    setup_logging("WARNING", "text")
    console = Console()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    hapi_run = directory / "hapi-run"
    if port == 0 or (hapi_server.status(state_dir=hapi_run) is None and hapi_server.port_in_use(port)):
        port = hapi_server.free_port()

    console.rule("1. local HAPI FHIR server")
    try:
        info = hapi_server.start(port, data_dir=directory / "hapi-db", memory=memory, state_dir=hapi_run,
                                 progress=_start_progress(console))
    except VtduiError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"  HAPI FHIR at {info.base_url} (database {info.data_dir})")
    sim = None
    try:
        console.rule("2. ViaTrajectoire simulator (HTTPS + mTLS + OAuth2)")
        sim = start_simulator(directory / "simulator", seed=1, n_decisions=decisions, port=0, admin_port=0,
                              hapi_base_url=info.base_url)
        console.print(f"  FHIR {sim.fhir_base_url}  token {sim.token_url}  admin {sim.admin_url}")
        console.print(f"  DUI configuration written to {sim.config_path}")
        config = load_config(sim.config_path, env={"FHIR_BASE_URL": info.base_url})
        with Runtime(config) as runtime:
            console.print("  plugins loaded:")
            for line in plugin_lines(runtime.pm):
                console.print(f"    {line}", markup=False, highlight=False)
            with _receiver(runtime, console):
                _round_trip(runtime, sim.admin_url, console)
        if keep_running:
            console.rule("servers left running")
            console.print(f"  HAPI {info.base_url}   simulator admin {sim.admin_url}/info")
            console.print(f"  try: vtdui status --config {sim.config_path}")
            console.print("  Ctrl+C to stop both.")
            _wait_for_signal()
    finally:
        if sim is not None:
            sim.stop()
        hapi_server.stop(state_dir=hapi_run)
    console.print(f"Done. Everything is in {directory} (run again to start from the same data).")


def plugin_lines(pm: pluggy.PluginManager) -> list[str]:
    """The loaded plugins, one line each: name and origin (what ``vtdui plugins`` details)."""
    return [f"{info.name} ({info.origin})" for info in describe_plugins(pm)]


def _start_progress(console: Console) -> Callable[[str], None]:
    """Progress of the first Maven build and of the start: phases in full, downloads as a running count."""
    downloads = 0

    def show(line: str) -> None:
        nonlocal downloads
        text = line.removeprefix("[INFO] ").strip()
        if text.startswith(("Downloading from", "Downloaded from", "Progress")):
            if text.startswith("Downloaded from"):
                downloads += 1
                if downloads % 100 == 0:
                    console.print(f"  Maven: {downloads} artifacts downloaded (first build only)")
            return
        if text.startswith(("Building", "Starting", "BUILD", "Total time", "---", "Reactor", "Compiling")) or \
                line.startswith(("[ERROR]", "[WARNING]")):
            console.print(f"  {text}")

    return show


@contextmanager
def _receiver(runtime: Runtime, console: Console) -> Iterator[None]:
    """Run the receiver on a free loopback port, with vtdui's Subscriptions in HAPI pointing at it.

    On the way out the Subscriptions are turned off while the receiver still answers (HAPI then has nothing
    left to deliver to a closed port), then the receiver stops.
    """
    import uvicorn

    secret = secrets.token_urlsafe(24)
    port = hapi_server.free_port()
    app = create_app(runtime.emitter, secret)
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, name="vtdui-demo-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise click.ClickException("the demo's receiver did not start")
        time.sleep(0.05)
    endpoint = hook_endpoint("127.0.0.1", port)
    try:
        installed = install_subscriptions(runtime.store, endpoint, secret)
        console.print(f"  receiver at {endpoint}; Subscriptions active: {', '.join(s.id for s in installed)}")
        yield
    finally:
        try:
            disable_subscriptions(runtime.store)
        except VtduiError as exc:
            console.print(f"  could not turn the Subscriptions off: {exc}")
        server.should_exit = True
        thread.join(timeout=10)


def _round_trip(runtime: Runtime, admin_url: str, console: Console) -> None:
    console.rule("3. inbound cycle: flux 1 (decisions), 3 (evaluations), 5 (statuses)")
    report = runtime.sync.run_once()
    _sync_summary(report, console)
    if not report.ok:
        raise click.ClickException("the inbound cycle failed; see the errors above")

    console.rule("4. the DUI's work list")
    items = runtime.store.worklist()
    console.print(_worklist_table(items, 10))
    if not items:
        raise click.ClickException("the work list is empty")

    console.rule("5. the DUI user records a contact; HAPI's Subscription delivers it; vtdui sends the ESMSTask")
    fresh = [t for t in items if _code(t.get("businessStatus")).startswith("39 ")]
    if len(fresh) < 2:
        raise click.ClickException("every work-list item was already handled by an earlier demo run; "
                                   "run again with another --dir (or remove this one) to start afresh")
    task = fresh[0]
    status, reason = DEMO_STATUS
    changed = user_status_change(task, status, reason, date.today())
    started = time.monotonic()
    saved = runtime.store.update(changed, if_match=str(task["meta"]["versionId"]))
    console.print(f"  PUT Task/{saved['id']} businessStatus {status}, statusReason {reason} "
                  f"-> version {saved['meta']['versionId']}")
    key = reference_of(saved)
    # the demo does not queue the change itself: it waits for HAPI's delivery, as after a DUI user's save
    while (item := runtime.outbox.backend.get_by_key(key)) is None:
        if time.monotonic() - started > DELIVERY_TIMEOUT:
            raise click.ClickException(f"HAPI did not deliver {key} to the receiver within {DELIVERY_TIMEOUT:.0f} s: "
                                       "see HAPI's log (hapi-run/) for the Subscription's deliveries")
        time.sleep(0.02)
    delivered = time.monotonic() - started
    console.print(f"  HAPI's Subscription delivered it: item {item.id} queued after {delivered:.2f} s")
    delivery = runtime.emitter.run_pending()
    accepted = time.monotonic() - started
    console.print(f"  delivery: {len(delivery.sent)} sent, {len(delivery.failed)} refused, "
                  f"{len(delivery.rescheduled)} to retry")
    console.print(f"  save in HAPI -> accepted by ViaTrajectoire: {accepted:.2f} s")
    id_nat = _input(saved, sdo.ID_NAT_DECISION)
    received = httpx.get(f"{admin_url}/received", timeout=30).json()
    table = Table(title="received by ViaTrajectoire (simulator)")
    for column in ("flux", "idNat_Decision", "HTTP", "statutESMS", "motifESMS", "rule errors"):
        table.add_column(column, no_wrap=column != "motifESMS")
    for entry in received["requests"]:
        body = entry.get("body") or {}
        if entry.get("method") != "POST" or not isinstance(body, dict) or body.get("resourceType") != "Task":
            continue
        codes = {i["type"]["coding"][0]["code"]: i for i in body.get("input", []) if i.get("type")}
        if _input(body, sdo.ID_NAT_DECISION) != id_nat:
            continue
        errors = [v for v in entry.get("validation", []) if v.get("severity") == "error"]
        table.add_row("4 ESMSTask", id_nat, str(entry.get("status")),
                      _code(codes.get("statutESMS", {}).get("valueCodeableConcept")).split(" ")[0],
                      _code(codes.get("motifESMS", {}).get("valueCodeableConcept")), str(len(errors)))
    console.print(table)

    console.rule("6. the MDPH cancels a notification; the next cycle applies it (flux 5)")
    other = fresh[1]
    other_id_nat, other_eg = _worklist_key(other)
    event = httpx.post(f"{admin_url}/events", json={"id_nat_decision": other_id_nat, "source": "mdph",
                                                    "finess_eg": other_eg, "statut_esms": "49"}, timeout=30)
    if event.status_code != 201:
        raise click.ClickException(f"the simulator refused the MDPH event: {event.text}")
    console.print(f"  MDPH: status 49 (notification annulée) on {other_id_nat} for {other_eg}")
    again = runtime.sync.run_once()
    _sync_summary(again, console)
    updated = runtime.store.read("Task", str(other["id"])) or {}
    console.print(f"  Task {str(other['id'])[:13]} now: {_code(updated.get('businessStatus'))}; "
                  f"decisions stored again: {again.total('decisions_stored')} (nothing is stored twice)")

    console.rule("where to look next")
    console.print("  with --keep-running (both servers stay up):")
    console.print(f"    work list:     GET {runtime.config.hapi.base_url}/Task?code=urn:vtdui:task-kind|worklist-item")
    console.print(f"    sent to VT:    GET {admin_url}/received")
    console.print("  at any time (the state stays in the demo directory):")
    console.print(f"    plugin state:  vtdui status --config {runtime.config.path}")
    console.print(f"    outbox:        vtdui outbox list --config {runtime.config.path}")
    console.print("  in production:   vtdui config check, vtdui setup, vtdui run (README: Operations)")


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
