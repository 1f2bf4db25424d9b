"""The inbound loop: ViaTrajectoire flux 1, 3 and 5 into the DUI's work list in HAPI.

One cycle (:meth:`SyncEngine.run_once`) visits every configured establishment. For each one:

* **flux 1**: search decision ids changed since the cursor, read each, decode and parse the CDA, map it
  (hook ``map_decision``), write one HAPI transaction per decision, then apply the flux-5 statuses that
  were waiting for that decision. Reads and parsing run :data:`PREFETCH` documents ahead in threads;
  mapping hooks and writes stay in this thread, in order;
* **flux 3**: for each decision whose consent ViaTrajectoire accepted (and whose evaluation is missing or
  older than the decision), fetch the evaluation and store it;
* **flux 5**: search statuses since the cursor, keep each one (dedupe by ViaTrajectoire Task id and
  version), and apply those whose decision is known.

Windows: the first connection looks back ``first_lookback_days`` (J-30, minus :data:`LOOKBACK_MARGIN` so
that ViaTrajectoire, counting on its own clock, accepts the bound); afterwards each search starts at the
previous *committed* cursor minus ``overlap_seconds``, and what the overlap lists again is skipped (same
id and ``lastUpdated``). A window ends at ViaTrajectoire's time of the search (the ``Date`` of its first
page), so a clock difference between the DUI and ViaTrajectoire cannot open a gap. A cursor only moves
after every item of its window is in HAPI or kept aside in the quarantine; a passing fault (network,
HAPI or ViaTrajectoire down) leaves it where it was, so the next cycle covers the same window again.

Bad items never stop the rest: a hostile or malformed CDA, a read refused for one id (403 included: the IG
allows it for an id not notified to this ESMS), an answer that is not the JSON shape the IG describes, an
answer over the size cap, a mapping hook that raises or a transaction HAPI refuses (4xx) is quarantined with
its reason; the others of the same cycle and establishment go on. A quarantined item is tried again on later
cycles with a backoff (``sync.quarantine_backoff_seconds``, doubling up to
``sync.quarantine_max_backoff_seconds``) for as long as it stays quarantined: never given up silently. A new
version of the document resolves the entry; ``vtdui status`` and ``vtdui quarantine list`` show them, and
``vtdui quarantine retry`` / ``drop`` let an operator act. A flux-5 Task of a malformed shape is quarantined
with the window it was found in, and that window is searched again on its retries. "Malformed" for a
received Task or DocumentReference: the hand-written shape checks first (plainer messages), then the FHIR R4
structural check of :mod:`vtdui.fhir_structure` (a wrong datatype deep in an element, an unknown element, a
list where one element is allowed), before anything is mapped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from vtdui import sdo
from vtdui.cda.parse import decode_attachment, parse_decision, parse_evaluation
from vtdui.errors import AuthError, DocumentError, HapiError, RemoteError, RetriableError, VtduiError
from vtdui.fhir_structure import check_structure
from vtdui.hookcontext import InboundContext, RejectedDocument
from vtdui.viatrajectoire._transport import ResponseTooLargeError
from vtdui.viatrajectoire.client import ConsentRequiredError, ReadRefusedError

if TYPE_CHECKING:
    import pluggy

    from vtdui.cda.records import DecisionDocument
    from vtdui.config import Config, Establishment, LegalEntity
    from vtdui.state import QuarantineItem, StateBackend
    from vtdui.store import HapiStore

__all__ = ["EstablishmentReport", "SyncEngine", "SyncReport", "id_nat_decision_of_task"]

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
#: Reason of a flux-5 Task whose JSON shape is not the IG's (its window is searched again on retries).
MALFORMED_TASK = "malformed-task"
#: Flux 1.3 reads in flight ahead of the document being stored.
PREFETCH = 4
#: Kept inside the J-30 bound: ViaTrajectoire counts the 30 days on its clock, when the request arrives.
LOOKBACK_MARGIN = timedelta(minutes=5)
#: HAPI answers 409 when two transactions conditionally create the same resource at once (establishments
#: polled concurrently, sharing an organisation or a person); nothing was written: tried again this often.
CONFLICT_RETRIES = 5
#: Reads again of a work-list item whose version changed between the read and the guarded write.
VERSION_CONFLICT_RETRIES = 3
#: HTTP statuses of a stale ``If-Match``: 412, or 409 "not the current version" (HAPI 8, HAPI-0989).
VERSION_CONFLICT = frozenset({409, 412})


class VTClient(Protocol):
    """What the sync engine needs from :class:`vtdui.viatrajectoire.client.ViaTrajectoireClient`."""

    def search_decisions(self, finess_eg: str, since: datetime) -> Iterable[Any]: ...
    def read_document(self, finess_eg: str, resource_id: str) -> dict[str, Any]: ...
    def search_evaluation(self, finess_eg: str, id_nat_decision: str) -> list[dict[str, Any]]: ...
    def search_statuses(self, finess_eg: str, since: datetime) -> Iterable[dict[str, Any]]: ...


@dataclass
class EstablishmentReport:
    """What one cycle did for one establishment."""

    finess_eg: str
    decisions_stored: int = 0
    decisions_unchanged: int = 0
    evaluations_stored: int = 0
    statuses_received: int = 0
    statuses_applied: int = 0
    statuses_waiting: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no passing fault interrupted the cycle."""
        return not self.errors


@dataclass
class SyncReport:
    """What one cycle did, establishment by establishment."""

    establishments: list[EstablishmentReport] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, name: str) -> int:
        """Sum one counter over the establishments."""
        return sum(int(getattr(r, name)) for r in self.establishments)

    @property
    def ok(self) -> bool:
        """True when every establishment completed its cycle."""
        return all(r.ok for r in self.establishments)


def id_nat_decision_of_task(task: dict[str, Any]) -> str | None:
    """Return the idNat_Decision carried by an ESMSTask (``input[idNat_Decision]``), typed by code or text.

    Whatever the shape of the Task, this never raises: an input that is not the IG's shape is skipped.
    """
    for item in _dicts(task.get("input")):
        if sdo.ID_NAT_DECISION in input_type_keys(item):
            value = _obj(item.get("valueIdentifier")).get("value")
            return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value else None
    return None


def input_type_keys(item: dict[str, Any]) -> set[str]:
    """The codes of an input's ``type.coding`` and its ``type.text`` (brief §13.1: either may carry it)."""
    type_ = _obj(item.get("type"))
    keys = {str(c["code"]) for c in _dicts(type_.get("coding")) if isinstance(c.get("code"), str)}
    if isinstance(type_.get("text"), str) and type_["text"].strip():
        keys.add(type_["text"].strip())
    return keys


def task_shape_error(task: Any) -> str | None:
    """Say what breaks the JSON shape of an ESMSTask (types only, not the IG rules); ``None`` when usable."""
    if not isinstance(task, dict):
        return "the entry is not a JSON object"
    if not isinstance(task.get("id"), str) or not task["id"]:
        return "Task.id is missing or not a string"
    if "meta" in task and not isinstance(task["meta"], dict):
        return "Task.meta is not an object"
    if "lastUpdated" in _obj(task.get("meta")) and not isinstance(task["meta"]["lastUpdated"], str):
        return "Task.meta.lastUpdated is not a string"
    inputs = task.get("input")
    if not isinstance(inputs, list):
        return "Task.input is not a list"
    for index, item in enumerate(inputs):
        where = f"Task.input[{index}]"
        if not isinstance(item, dict):
            return f"{where} is not an object"
        if not isinstance(item.get("type"), dict):
            return f"{where}.type is not an object"
        if "coding" in item["type"] and (not isinstance(item["type"]["coding"], list)
                                         or not all(isinstance(c, dict) for c in item["type"]["coding"])):
            return f"{where}.type.coding is not a list of objects"
        for name, value in item.items():
            if name.startswith("value") and name not in ("valueString", "valueBoolean", "valueInteger",
                                                         "valueDate", "valueDateTime") \
                    and not isinstance(value, dict):
                return f"{where}.{name} is not an object"
    if id_nat_decision_of_task(task) is None:
        return "no input idNat_Decision with a value"
    return None


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _last_updated(resource: dict[str, Any]) -> str:
    value = _obj(resource.get("meta")).get("lastUpdated")
    return value if isinstance(value, str) else ""


def _attachment(document: dict[str, Any]) -> tuple[str | None, str | None]:
    """``content[0].attachment`` data and content type, checking the JSON shape on the way.

    Raises:
        DocumentError: ``malformed-resource``, naming the element of the wrong type.
    """
    if "meta" in document and not isinstance(document["meta"], dict):
        raise DocumentError("DocumentReference.meta is not an object", reason="malformed-resource")
    content = document.get("content")
    if content is None:
        return None, None
    if not isinstance(content, list):
        raise DocumentError("DocumentReference.content is not a list", reason="malformed-resource")
    if not content:
        return None, None
    if not isinstance(content[0], dict):
        raise DocumentError("DocumentReference.content[0] is not an object", reason="malformed-resource")
    attachment = content[0].get("attachment")
    if attachment is None:
        return None, None
    if not isinstance(attachment, dict):
        raise DocumentError("DocumentReference.content[0].attachment is not an object", reason="malformed-resource")
    data, content_type = attachment.get("data"), attachment.get("contentType")
    if data is not None and not isinstance(data, str):
        raise DocumentError("DocumentReference.content[0].attachment.data is not a base64 string",
                            reason="malformed-resource")
    return data, content_type if isinstance(content_type, str) else None


def _structure_problem(resource: dict[str, Any]) -> str | None:
    """What the FHIR R4 structural check finds (datatypes, unknown elements, cardinalities), ``None`` if nothing.

    Runs after the hand-written shape checks (their messages are plainer) and catches what they do not look
    at, a wrong datatype deep in an element for instance. Paths and kinds of problem only: no value.
    """
    issues = check_structure(resource)
    if not issues:
        return None
    return "not well-formed FHIR R4 (fhir-structure): " + "; ".join(f"{v.path}: {v.message}" for v in issues[:5]) \
        + (f"; and {len(issues) - 5} more" if len(issues) > 5 else "")


def _check_document_structure(document: dict[str, Any]) -> None:
    """Check a received DocumentReference structurally before its CDA is decoded and mapped.

    The attachment's data is left out of the model validation: it can weigh megabytes, and
    :func:`~vtdui.cda.parse.decode_attachment` checks it as base64 with a size cap anyway.

    Raises:
        DocumentError: ``malformed-resource``, with the paths of the problems.
    """
    light = document
    content = document.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict) \
            and isinstance(content[0].get("attachment"), dict) and "data" in content[0]["attachment"]:
        attachment = {k: v for k, v in content[0]["attachment"].items() if k != "data"}
        light = {**document, "content": [{**content[0], "attachment": attachment}, *content[1:]]}
    problem = _structure_problem(light)
    if problem is not None:
        raise DocumentError(f"DocumentReference {problem}", reason="malformed-resource")


def quarantine_next_try(item: QuarantineItem, base: float, ceiling: float) -> datetime | None:
    """When a quarantined item is tried again (``None`` when its last try is unreadable: due at once).

    ``base`` seconds after its last try, doubling with each further try up to ``ceiling``.

    Never "given up": an item becomes due again and again for as long as it stays quarantined.
    """
    try:
        last = datetime.fromisoformat(item.last_tried)
    except ValueError:
        return None
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    doublings = min(max(item.attempts - 1, 0), 40)  # 2**40 times any base exceeds any ceiling; no overflow
    return last + timedelta(seconds=min(base * 2**doublings, ceiling))


def quarantine_due(item: QuarantineItem, now: datetime, base: float, ceiling: float) -> bool:
    """Tell whether a quarantined item's next try is due (see :func:`quarantine_next_try`)."""
    due = quarantine_next_try(item, base, ceiling)
    return due is None or now >= due


class SyncEngine:
    """Runs inbound cycles for every configured establishment.

    Args:
        config: validated configuration.
        state: cursors, dedupe, quarantine and pending statuses.
        store: the HAPI side.
        pm: plugin manager carrying the mapping hooks.
        client_for: returns the ViaTrajectoire client of a legal entity (one token per EJ).
        clock: current time (injected by tests).
        progress: called as ``progress(finess_eg, done, total_or_None)`` while a back-fill runs.
    """

    def __init__(self, config: Config, *, state: StateBackend, store: HapiStore, pm: pluggy.PluginManager,
                 client_for: Callable[[LegalEntity], VTClient],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 progress: Callable[[str, int, int | None], None] | None = None) -> None:
        self.config = config
        self.state = state
        self.store = store
        self.pm = pm
        self.client_for = client_for
        self.clock = clock
        self.progress = progress
        #: flux 1.3 reads in flight ahead of the document being written (at least 1)
        self.prefetch = PREFETCH

    # -- the cycle ---------------------------------------------------------------------------------

    def run_once(self, only: Iterable[str] | None = None) -> SyncReport:
        """Run one cycle over every configured establishment (or those of ``only``, FINESS EG)."""
        started = time.monotonic()
        wanted = set(only) if only is not None else None
        report = SyncReport()
        for entity, establishment in self.config.establishments():
            if wanted is not None and establishment.finess_eg not in wanted:
                continue
            report.establishments.append(self.sync_establishment(entity, establishment))
        report.seconds = time.monotonic() - started
        return report

    def sync_establishment(self, entity: LegalEntity, establishment: Establishment) -> EstablishmentReport:
        """Run flux 1, 3 and 5 for one establishment; a fault in one flux does not skip the others."""
        report = EstablishmentReport(establishment.finess_eg)
        context = InboundContext(config=self.config, legal_entity=entity, establishment=establishment,
                                 source=sdo.PLUGIN_SOURCE, now=self.clock())
        try:
            client = self.client_for(entity)
        except VtduiError as exc:
            report.errors.append(f"client: {exc}")
            return report
        for name, step in (("flux 1", self._flux1), ("flux 3", self._flux3), ("flux 5", self._flux5)):
            try:
                step(client, context, report)
            except (RetriableError, HapiError, VtduiError) as exc:
                # the cursor of that flux did not move: the next cycle covers the same window again
                log.warning("sync %s for %s interrupted: %s", name, establishment.finess_eg, type(exc).__name__)
                report.errors.append(f"{name}: {exc}")
            except Exception as exc:  # an answer no rule foresaw: reported, never a traceback to the user
                # only the type: the message of an unexpected error may quote the answer (health data)
                log.error("sync %s for %s interrupted by an unexpected %s", name, establishment.finess_eg,
                          type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
                report.errors.append(f"{name}: unexpected {type(exc).__name__} (the cursor did not move)")
        return report

    # -- windows ------------------------------------------------------------------------------------

    def _since(self, finess_eg: str, flux: str, now: datetime) -> datetime:
        """Lower bound of the next search: J-30 at first connection, else the committed cursor minus the overlap.

        Both J-30 bounds keep :data:`LOOKBACK_MARGIN` inside the window, because ViaTrajectoire measures
        "30 days" on its own clock when the request arrives, a little later than ``now``.
        """
        cursor = self.state.cursor(finess_eg, flux)
        oldest = now - timedelta(days=self.config.sync.max_lookback_days) + LOOKBACK_MARGIN
        if cursor is None:
            first = now - timedelta(days=self.config.sync.first_lookback_days) + LOOKBACK_MARGIN
            return max(first, oldest)
        since = cursor.instant - timedelta(seconds=self.config.sync.overlap_seconds)
        if since < oldest:
            log.warning("cursor of flux %s for %s is older than %d days: searching from J-%d only",
                        flux, finess_eg, self.config.sync.max_lookback_days, self.config.sync.max_lookback_days)
            return oldest
        return since

    # -- flux 1 ---------------------------------------------------------------------------------------

    def _flux1(self, client: VTClient, context: InboundContext, report: EstablishmentReport) -> None:
        eg = context.establishment.finess_eg
        window_start = self.clock()
        since = self._since(eg, "1", window_start)
        results = client.search_decisions(eg, since)
        hits = list(results)
        window_end = _server_time(results, window_start)
        retry = self._due_quarantine(eg, "1", window_start)
        listed = {str(_hit_field(h, "id")) for h in hits}
        todo: list[tuple[str, str | None]] = [(str(_hit_field(h, "id")), _hit_field(h, "last_updated"))
                                              for h in hits]
        todo += [(q.vt_id, q.last_updated) for q in retry if q.vt_id not in listed]
        total = len(todo)
        fresh = [(vt_id, last_updated) for vt_id, last_updated in todo
                 if not (last_updated and self.state.seen(vt_id, eg, last_updated))]
        done = total - len(fresh)
        report.decisions_unchanged += done  # listed again by the overlap, or unchanged: dedupe
        if self.progress is not None and done:
            self.progress(eg, done, total)
        # Reads (flux 1.3) and CDA parsing run a few documents ahead in threads while this thread maps and
        # writes in order: ViaTrajectoire's latency hides behind HAPI's, and the writes keep their order.
        with ThreadPoolExecutor(max_workers=max(self.prefetch, 1), thread_name_prefix="vtdui-flux1") as pool:
            pending: deque[Future[_Fetched]] = deque()
            ahead = iter(fresh)

            def submit_next() -> None:
                item = next(ahead, None)
                if item is not None:
                    pending.append(pool.submit(_fetch_decision, client, eg, item[0]))

            for _ in range(max(self.prefetch, 1)):
                submit_next()
            try:
                for vt_id, last_updated in fresh:
                    future = pending.popleft()
                    submit_next()
                    self._one_decision(context, report, vt_id, last_updated, future.result)
                    done += 1
                    if self.progress is not None:
                        self.progress(eg, done, total)
            finally:
                for future in pending:
                    future.cancel()
        # every item of the window is in HAPI or in the quarantine: the cursor may move
        self.state.commit_cursor(eg, "1", window_end)

    def _one_decision(self, context: InboundContext, report: EstablishmentReport, vt_id: str,
                      listed_last_updated: str | None, read: Callable[[], _Fetched]) -> None:
        """Store one decision document; ``read`` gives it read and parsed, or raises what the read raised."""
        eg = context.establishment.finess_eg
        try:
            fetched = read()
        except AuthError:
            raise  # the whole establishment is refused: not this document's fault
        except RemoteError as exc:
            # refused for this id only (403 not notified, gone, unreadable or oversized answer): keep it visible
            reason = ("read-forbidden" if isinstance(exc, ReadRefusedError) else
                      "too-large" if isinstance(exc, ResponseTooLargeError) else "read-refused")
            self._reject(context, report, flux="1", vt_id=vt_id, last_updated=listed_last_updated,
                         reason=reason, message=str(exc), raw=None)
            return
        last_updated = fetched.last_updated
        if last_updated and self.state.seen(vt_id, eg, last_updated):
            report.decisions_unchanged += 1
            return
        if fetched.error is not None or fetched.parsed is None:
            error = fetched.error or DocumentError("the document could not be parsed", reason="xml-syntax")
            self._reject(context, report, flux="1", vt_id=vt_id, last_updated=last_updated, reason=error.reason,
                         message=str(error), raw=fetched.raw)
            return
        parsed = fetched.parsed
        if fetched.official is not None and fetched.official != parsed.id_nat_decision:
            if self.config.sync.setid_rule != "lenient":
                self._reject(context, report, flux="1", vt_id=vt_id, last_updated=last_updated,
                             reason="identifier-mismatch", raw=fetched.raw,
                             message="the CDA setId (idNat_Decision) differs from the DocumentReference's official "
                                     "identifier (sync.setid_rule = \"lenient\" accepts it)")
                return
            # lenient (the 2024 samples' "01"/"02" setIds): the official identifier is the idNat_Decision
            parsed = dataclasses.replace(parsed, decision=dataclasses.replace(parsed.decision,
                                                                              id_nat_decision=fetched.official))
        if self._map_and_store(context, report, flux="1", vt_id=vt_id, last_updated=last_updated, raw=fetched.raw,
                               hook="map_decision", document=parsed):
            self.state.mark_stored(vt_id, eg, last_updated, parsed.id_nat_decision, "decision")
            report.decisions_stored += 1
            self._apply_pending(context, report, parsed.id_nat_decision)

    def _map_and_store(self, context: InboundContext, report: EstablishmentReport, *, flux: str, vt_id: str,
                       last_updated: str | None, raw: bytes | None, hook: str, document: Any) -> bool:
        """Run the mapping hook and the transaction; quarantine what cannot be stored. True when stored.

        A hook that raises, or a 4xx from HAPI, keeps the document aside and the batch goes on; a passing
        fault of HAPI (:class:`RetriableError`) propagates, so the cursor stays where it was.
        """
        try:
            entries = getattr(self.pm.hook, hook)(document=document, context=context)
            if entries:
                self.pm.hook.before_store(entries=entries, context=context)
        except Exception as exc:  # a plugin's bug must not stop the batch
            log.warning("flux %s document %s: hook %s failed (%s)", flux, vt_id, hook, type(exc).__name__)
            self._reject(context, report, flux=flux, vt_id=vt_id, last_updated=last_updated,
                         reason="mapping-failed", message=f"{hook} or before_store raised {type(exc).__name__}",
                         raw=raw)
            return False
        if not entries:
            self._reject(context, report, flux=flux, vt_id=vt_id, last_updated=last_updated, reason="no-mapping",
                         message=f"no {hook} implementation returned resources", raw=raw)
            return False
        try:
            self._write(entries, context)
        except HapiError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                # HAPI refused what the mapping produced: keep the document aside, go on with the others
                self._reject(context, report, flux=flux, vt_id=vt_id, last_updated=last_updated,
                             reason="hapi-rejected", message=str(exc), raw=raw)
                return False
            raise
        return True

    # -- flux 3 ---------------------------------------------------------------------------------------

    def _flux3(self, client: VTClient, context: InboundContext, report: EstablishmentReport) -> None:
        if not self.config.sync.fetch_evaluations:
            return
        eg = context.establishment.finess_eg
        for id_nat in self.state.evaluations_due(eg):
            if not self.state.known_decision(id_nat, eg):
                continue  # the evaluation links to the decision: wait until the decision is in HAPI
            try:
                self.fetch_evaluation(client, context, report, id_nat)
            except ConsentRequiredError:
                # ViaTrajectoire does not see the consent (yet): try again next cycle
                log.info("flux 3 for %s: consent not registered yet for one decision", eg)

    def fetch_evaluation(self, client: VTClient, context: InboundContext, report: EstablishmentReport,
                         id_nat_decision: str) -> bool:
        """Fetch and store the evaluation of one decision (flux 3); return True when stored.

        Raises:
            ConsentRequiredError: ViaTrajectoire answered 403 (no consent registered for this decision).
            RetriableError: ViaTrajectoire or HAPI is unreachable (nothing was recorded).
        """
        eg = context.establishment.finess_eg
        try:
            documents = client.search_evaluation(eg, id_nat_decision)
        except AuthError:
            raise
        except RemoteError as exc:
            self._reject(context, report, flux="3", vt_id=f"evaluation:{id_nat_decision}", last_updated=None,
                         reason="read-refused", message=str(exc), raw=None)
            return False
        if not documents:
            return False  # empty searchset: no consent registered yet, or no evaluation
        document = documents[0]
        vt_id = str(document.get("id", id_nat_decision))
        last_updated = _last_updated(document)
        data: str | None = None
        raw: bytes | None = None
        try:
            data, _ = _attachment(document)
            _check_document_structure(document)
            if data is None:
                raise DocumentError("the evaluation DocumentReference carries no CDA", reason="no-data")
            raw = decode_attachment(data, max_bytes=MAX_DOCUMENT_BYTES)
            parsed = parse_evaluation(raw)
            if parsed.id_nat_decision != id_nat_decision:
                raise DocumentError("the evaluation CDA setId (idNat_Decision) is not the decision asked for",
                                    reason="identifier-mismatch")
        except DocumentError as exc:
            self._reject(context, report, flux="3", vt_id=vt_id, last_updated=last_updated, reason=exc.reason,
                         message=str(exc), raw=raw if raw is not None else _raw_data(data))
            return False
        if not self._map_and_store(context, report, flux="3", vt_id=vt_id, last_updated=last_updated, raw=raw,
                                   hook="map_evaluation", document=parsed):
            return False
        self.state.mark_stored(vt_id, eg, last_updated, id_nat_decision, "evaluation")
        self.state.resolve_quarantine(f"evaluation:{id_nat_decision}", eg)
        self.state.mark_evaluation_fetched(id_nat_decision, eg, str(_obj(document.get("meta")).get("versionId", "")))
        report.evaluations_stored += 1
        return True

    # -- flux 5 ---------------------------------------------------------------------------------------

    def _flux5(self, client: VTClient, context: InboundContext, report: EstablishmentReport) -> None:
        eg = context.establishment.finess_eg
        window_start = self.clock()
        since = self._since(eg, "5", window_start)
        # malformed Tasks due for a retry: their windows are searched again (flux 5 has no read by id)
        again = [q for q in self._due_quarantine(eg, "5", window_start) if q.reason == MALFORMED_TASK]
        for item in again:
            found_in = _instant(item.last_updated)
            if found_in is not None:
                since = min(since, max(found_in, window_start - timedelta(days=self.config.sync.max_lookback_days)
                                       + LOOKBACK_MARGIN))
        results = client.search_statuses(eg, since)
        # a Task malformed again keeps its first entry (same key: its attempts count, its backoff grows)
        first_seen = {q.vt_id: q.last_updated for q in self.state.quarantined()
                      if q.finess_eg == eg and q.flux == "5" and q.reason == MALFORMED_TASK}
        malformed: set[str] = set()
        for task in results:
            problem = task_shape_error(task) or _structure_problem(task)
            if problem is not None:
                vt_task_id = str(task["id"]) if isinstance(task, dict) and isinstance(task.get("id"), str) \
                    else "task-without-id"
                malformed.add(vt_task_id)
                # kept with the window it was found in: its retries search that window again
                self._reject(context, report, flux="5", vt_id=vt_task_id,
                             last_updated=first_seen.get(vt_task_id) or since.isoformat(),
                             reason=MALFORMED_TASK, message=problem,
                             raw=json.dumps(task, ensure_ascii=False).encode("utf-8"))
                continue
            id_nat = id_nat_decision_of_task(task) or ""
            vt_task_id = str(task["id"])
            if self.state.keep_status(vt_task_id=vt_task_id, finess_eg=eg, id_nat_decision=id_nat,
                                      last_updated=_last_updated(task), body=task):
                report.statuses_received += 1
        for item in again:
            if item.vt_id not in malformed:  # searched again and well-formed now (or gone): resolved
                self.state.resolve_quarantine(item.vt_id, eg)
        window_end = _server_time(results, window_start)
        self._apply_pending(context, report, None)
        # the statuses are kept in the state store (applied, or waiting for their decision): the cursor may move
        self.state.commit_cursor(eg, "5", window_end)

    def _apply_pending(self, context: InboundContext, report: EstablishmentReport,
                       id_nat_decision: str | None) -> None:
        eg = context.establishment.finess_eg
        waiting = 0
        for pending in self.state.pending_statuses(id_nat_decision, eg):
            if not self.state.known_decision(pending.id_nat_decision, eg):
                waiting += 1
                continue
            if self._apply_one(context, pending.body, pending.vt_task_id, pending.last_updated):
                self.state.mark_status_applied(pending.vt_task_id, eg)
                report.statuses_applied += 1
            else:
                waiting += 1
        if id_nat_decision is None:
            report.statuses_waiting = waiting

    def _apply_one(self, context: InboundContext, task: dict[str, Any], vt_task_id: str,
                   last_updated: str) -> bool:
        """Apply one flux-5 status to its work-list item; False when it must wait (kept pending).

        The update is guarded by the version read (``If-Match``): when a DUI user changed the item in
        between (HTTP 412, or 409 "not the current version" as HAPI 8 answers inside a transaction), the item
        is read again and the status applied once more.
        """
        eg = context.establishment.finess_eg
        id_nat = id_nat_decision_of_task(task) or ""
        for attempt in range(VERSION_CONFLICT_RETRIES + 1):
            worklist = self.store.worklist_item(id_nat, eg)
            if worklist is None:
                return False
            ctx = InboundContext(config=context.config, legal_entity=context.legal_entity,
                                 establishment=context.establishment, source=context.source, now=context.now,
                                 worklist_task=worklist)
            try:
                entries = self.pm.hook.map_remote_status(task=task, context=ctx)
                if entries:
                    self.pm.hook.before_store(entries=entries, context=ctx)
            except Exception as exc:  # a plugin's bug must not stop the other statuses
                self.state.quarantine(finess_eg=eg, flux="5", vt_id=vt_task_id, last_updated=last_updated,
                                      reason="mapping-failed",
                                      message=f"map_remote_status or before_store raised {type(exc).__name__}",
                                      raw=None)
                return False
            if not entries:
                return True  # already recorded, or this establishment's own status read back
            try:
                self._write(entries, ctx)
            except HapiError as exc:
                if exc.status in VERSION_CONFLICT and attempt < VERSION_CONFLICT_RETRIES:
                    continue  # changed meanwhile by a DUI user: read it again
                if exc.status is not None and 400 <= exc.status < 500:
                    self.state.quarantine(finess_eg=eg, flux="5", vt_id=vt_task_id, last_updated=last_updated,
                                          reason="hapi-rejected", message=str(exc), raw=None)
                    return False
                raise
            self.state.resolve_quarantine(vt_task_id, eg)
            return True
        return False

    # -- shared --------------------------------------------------------------------------------------

    def _due_quarantine(self, finess_eg: str, flux: str, now: datetime) -> list[QuarantineItem]:
        """The quarantined items of one flux and establishment whose next try (with backoff) is due."""
        sync = self.config.sync
        return [q for q in self.state.quarantined() if q.finess_eg == finess_eg and q.flux == flux
                and quarantine_due(q, now, sync.quarantine_backoff_seconds, sync.quarantine_max_backoff_seconds)]

    def _write(self, entries: list[dict[str, Any]], context: InboundContext) -> dict[str, Any]:
        """Write prepared entries in one HAPI transaction, then call the ``after_store`` observers.

        A 409 (a concurrent transaction created the same conditional resource, or held its lock) is tried
        again a few times after a short random pause: HAPI rolled the transaction back, and the retry finds
        what the other one created. Not when an entry is guarded by ``If-Match``: the same version can never
        match again, the caller reads the resource again instead.
        """
        guarded = any((entry.get("request") or {}).get("ifMatch") for entry in entries)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                response = self.store.transaction(entries)
                break
            except HapiError as exc:
                if exc.status != 409 or guarded or attempt == CONFLICT_RETRIES:
                    raise
                log.info("HAPI transaction in conflict with a concurrent one (409): trying again")
                time.sleep(0.05 * 2**attempt + random.uniform(0, 0.1))  # noqa: S311 - jitter, not security
        try:
            self.pm.hook.after_store(entries=entries, response=response, context=context)
        except Exception:  # an observer's failure must not undo or repeat a committed write
            log.exception("an after_store hook failed")
        return response

    def _reject(self, context: InboundContext, report: EstablishmentReport, *, flux: str, vt_id: str,
                last_updated: str | None, reason: str, message: str, raw: bytes | None) -> None:
        eg = context.establishment.finess_eg
        # on_document_rejected fires once per document and reason: a document still refused for the same
        # reason when a later cycle retries it is not reported again (a success resolves the entry, and a
        # new reason is news)
        reported = any(q.vt_id == vt_id and q.finess_eg == eg and q.reason == reason
                       for q in self.state.quarantined())
        item = self.state.quarantine(finess_eg=eg, flux=flux, vt_id=vt_id, last_updated=last_updated,
                                     reason=reason, message=message, raw=raw)
        report.quarantined += 1
        log.warning("flux %s document %s for %s quarantined: %s", flux, vt_id, eg, reason)
        if reported:
            return
        rejected = RejectedDocument(key=item.key, reason=reason, message=message, path=item.path or "")
        try:
            self.pm.hook.on_document_rejected(rejected=rejected, context=context)
        except Exception:
            log.exception("an on_document_rejected hook failed")


@dataclass(frozen=True)
class _Fetched:
    """A flux-1.3 document read and parsed (in a read-ahead thread): the record, or why it is refused."""

    last_updated: str
    raw: bytes | None
    parsed: DecisionDocument | None
    error: DocumentError | None
    official: str | None = None


def _fetch_decision(client: VTClient, finess_eg: str, vt_id: str) -> _Fetched:
    """Read one decision DocumentReference, decode and parse its CDA (pure: no state, no hook)."""
    document = client.read_document(finess_eg, vt_id)
    last_updated = _last_updated(document)
    data: str | None = None
    raw: bytes | None = None
    try:
        data, _ = _attachment(document)
        _check_document_structure(document)
        if data is None:
            raise DocumentError("the DocumentReference carries no CDA (content.attachment.data is empty)",
                                reason="no-data")
        raw = decode_attachment(data, max_bytes=MAX_DOCUMENT_BYTES)
        parsed = parse_decision(raw)
        official = _official_identifier(document)
    except DocumentError as exc:
        kept = raw if raw is not None else _raw_data(data) if data is not None else _raw_json(document)
        return _Fetched(last_updated, kept, None, exc)
    return _Fetched(last_updated, raw, parsed, None, official)


def _server_time(results: Any, fallback: datetime) -> datetime:
    """Where a window ends: the ViaTrajectoire clock (``Date`` of the first page) when known, else ``fallback``.

    The ``Date`` header has a one-second resolution (truncated), so it never lies after the moment the
    server selected the results.
    """
    value = getattr(results, "server_time", None)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return fallback


def _official_identifier(document: dict[str, Any]) -> str | None:
    """The ``official`` identifier (idNat_Decision) of an ESMSDocumentReference, if it carries one."""
    for ident in _dicts(document.get("identifier")):
        if ident.get("use") == "official" and isinstance(ident.get("value"), str):
            return str(ident["value"])
    return None


def _hit_field(hit: Any, name: str) -> Any:
    if isinstance(hit, dict):
        if name == "last_updated":
            return _last_updated(hit) or None
        return hit.get(name)
    return getattr(hit, name, None)


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _raw_json(document: dict[str, Any]) -> bytes | None:
    """The resource itself, kept for inspection when its shape is wrong (bounded like a document)."""
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8")[: MAX_DOCUMENT_BYTES + 1]
    except (TypeError, ValueError):
        return None


def _raw_data(data: str | None) -> bytes | None:
    if data is None:
        return None
    return data.encode("utf-8", "replace")[: MAX_DOCUMENT_BYTES + 1]
