"""Outbound: local changes in HAPI become ESMSTask (flux 4) and ESMSConsent (flux 2) sent to ViaTrajectoire.

:class:`Emitter` is the one place that turns a new version of a work-list Task or of a Consent into
an outbox item, and that delivers outbox items::

    enqueue_change / enqueue_consent            (receiver, reconciliation)
        detect ─▶ build_esms_task | build_esms_consent ─▶ conformance ─▶ outbox pending
                                                                     └─▶ outbox failed ─▶ on_send_error
    run_pending                                 (worker loop, ``vtdui outbox run``)
        claim ─▶ conformance ─▶ before_send ─▶ conformance ─▶ POST ─▶ after_send | on_send_error ─▶ audit

Failure model of the outbound hooks (each failure fires ``on_send_error`` once, with the error):

* the built resource breaks IG rules, or is not well-formed FHIR R4 (a wrong datatype, an unknown element, a
  list for a single element: rule ``fhir-structure``, :mod:`vtdui.fhir_structure`):
  :class:`~vtdui.errors.ConformanceError` with ``culprit="build"``,
  when it is built and again if an operator retries it unchanged; ``before_send`` never sees it;
* a ``before_send`` implementation breaks a conformant resource (or raises): ``culprit="before_send"``
  (the message names the plugins implementing it);
* ViaTrajectoire refuses it: :class:`~vtdui.errors.RemoteError` with its OperationOutcome (no local rule
  was broken);
* passing faults past ``retry.max_age_seconds``: the last :class:`~vtdui.errors.RetriableError`.

Where the DUI user sees a refusal: the plugin adds a ``Task.note`` to the work-list Task (author
``vtdui``, the broken rule or ViaTrajectoire's message), written with ``meta.source`` =
:data:`vtdui.sdo.PLUGIN_SOURCE` so that the note itself is never emitted, and with ``If-Match`` so a
concurrent edit by the user is never overwritten. A note is what every DUI screen already shows on a
Task; an OperationOutcome would be a resource no screen looks at. The full OperationOutcome stays
in the outbox item (``vtdui outbox show``) and in the audit trail.

Audit: every attempt (and every refusal before sending) is an ``AuditEvent`` in HAPI, tagged
``urn:vtdui:audit|emission``, with ``meta.source`` = PLUGIN_SOURCE, the local resource as entity,
the outcome code (0 success, 4 passing fault, 8 refused) and the outbox item id; no health data.

Choices for the errors of :mod:`vtdui.viatrajectoire.client`:

* :class:`~vtdui.errors.RetriableError` (network, 429, 5xx), including ``DeliveryUncertainError``
  (the POST may have been applied): rescheduled with backoff until ``retry.max_age_seconds``. An
  uncertain delivery is thus sent again: ViaTrajectoire has no idempotency key, and a status sent twice
  is better than a status lost;
* :class:`~vtdui.errors.AuthError`: rescheduled too (the certificate or the referencing is wrong for
  every item alike; when it is fixed, everything flows again without an operator requeueing each item);
* :class:`~vtdui.errors.RemoteError` (ViaTrajectoire refused the resource): failed, with its
  OperationOutcome; the decision's later items wait until ``retry`` (after a fix) or ``drop``.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pluggy

from vtdui import sdo
from vtdui.builders import decision_identifiers
from vtdui.changes import (
    change_from_dict,
    change_to_dict,
    consent_event,
    detect_changes,
    is_own_write,
    reference_of,
    version_of,
    worklist_key,
)
from vtdui.config import Config, Establishment, LegalEntity
from vtdui.conformance import check_esms_consent, check_esms_task, has_errors, to_operation_outcome
from vtdui.errors import (
    AuthError,
    ConfigError,
    ConformanceError,
    HapiError,
    RemoteError,
    RetriableError,
    RuleViolation,
    VtduiError,
)
from vtdui.fhir_structure import RULE as STRUCTURE_RULE
from vtdui.fhir_structure import check_structure
from vtdui.hookcontext import OutboundContext
from vtdui.mapping.worklist import worklist_query
from vtdui.outbox import ItemState, NewItem, Outbox, OutboxItem, normalize_instant
from vtdui.terminology import StateTerminology

__all__ = [
    "AUDIT_TAG",
    "CURRENT_ITEM",
    "DeliveryReport",
    "Emitter",
    "OutboundClient",
    "OutboundState",
    "OutboundStore",
    "format_request",
    "vread",
]

log = logging.getLogger(__name__)

#: Tag of the AuditEvents the emitter writes (``AuditEvent?_tag=urn:vtdui:audit|emission``).
AUDIT_TAG = {"system": "urn:vtdui:audit", "code": "emission"}
_NOTE_AUTHOR = "vtdui"
#: The outbox item being sent by this thread while the ViaTrajectoire client runs (``None`` otherwise):
#: lets an ``on_exchange`` trace recorder attach each HTTP attempt to its item (``vtdui evidence``).
CURRENT_ITEM: contextvars.ContextVar[OutboxItem | None] = contextvars.ContextVar("vtdui_current_item",
                                                                               default=None)
#: A Consent that names neither its establishment nor an Organization is matched against the work lists
#: of at most this many establishments (one search each).
_MAX_CONSENT_LOOKUPS = 50
_AUDIT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
               "display": "RESTful Operation"}
_AUDIT_CREATE = {"system": "http://hl7.org/fhir/restful-interaction", "code": "create", "display": "create"}


class OutboundStore(Protocol):
    """What the emitter needs from the HAPI side (:class:`vtdui.store.HapiStore` provides it)."""

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None: ...  # noqa: D102
    def history(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]: ...  # noqa: D102
    def search(self, resource_type: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...  # noqa: D102
    def transaction(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]: ...  # noqa: D102
    def update(self, resource: Mapping[str, Any], if_match: str | None = None) -> dict[str, Any]: ...  # noqa: D102


def vread(store: OutboundStore, resource_type: str, resource_id: str, version: str) -> dict[str, Any] | None:
    """One version of a resource (``GET Type/id/_history/vid``; ``None`` when HAPI does not have it).

    A versioned read, not the ``_history`` search: HAPI reuses cached search results for about a minute
    (``reuse_cached_search_results_millis``), so a ``_history`` search made just after a change may not
    list it yet, while a read always answers from the database.
    """
    return store.read(resource_type, f"{resource_id}/_history/{version}")


class OutboundClient(Protocol):
    """What the emitter needs from :class:`vtdui.viatrajectoire.client.ViaTrajectoireClient`."""

    def post_task(self, finess_eg: str, task: Mapping[str, Any]) -> Any: ...  # noqa: D102
    def post_consent(self, finess_eg: str, consent: Mapping[str, Any]) -> Any: ...  # noqa: D102


class OutboundState(Protocol):
    """What the emitter needs from :class:`vtdui.state.StateStore`."""

    def record_consent(self, id_nat_decision: str, finess_eg: str) -> None: ...  # noqa: D102
    def consent_accepted(self, id_nat_decision: str, finess_eg: str) -> bool: ...  # noqa: D102


@dataclass
class DeliveryReport:
    """What one :meth:`Emitter.run_pending` did."""

    sent: list[int] = field(default_factory=list)
    rescheduled: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dry_run: list[str] = field(default_factory=list)
    #: items this worker had claimed but another worker took over (the lease had expired): not sent here
    lost: list[int] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        """Number of items handled."""
        return len(self.sent) + len(self.rescheduled) + len(self.failed) + len(self.dry_run)


#: Items leased per claim: small, so that several workers share a backlog evenly (a claim is one short query).
CLAIM_SIZE = 10


def _now() -> datetime:
    return datetime.now(UTC)


class _LeaseKeeper:
    """While a delivery round runs, renew the leases of the items its worker holds (every third of a lease).

    A live worker thus never loses a claimed item to another, however long a send takes (a timeout, the
    client's own retries, a ``Retry-After``); only a dead or stalled worker's leases expire.
    """

    def __init__(self, outbox: Outbox, worker: str) -> None:
        self.outbox = outbox
        self.worker = worker
        self.period = max(outbox.lease.total_seconds() / 3, 0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vtdui-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.outbox.renew(self.worker)
            except Exception:  # the store is unreachable for a moment: the next renewal tries again
                log.warning("could not renew the outbox leases of %s", self.worker, exc_info=True)


def _violations_text(violations: Iterable[RuleViolation]) -> str:
    return "; ".join(f"[{v.rule}] {v.path}: {v.message}" for v in violations if v.severity == "error")


def _broken(violations: Iterable[RuleViolation]) -> str:
    """Say what a refused resource breaks: the FHIR R4 structure (datatypes, elements), the IG rules, or both."""
    errors = [v for v in violations if v.severity == "error"]
    structural = any(v.rule == STRUCTURE_RULE for v in errors)
    rules = any(v.rule != STRUCTURE_RULE for v in errors)
    if structural and not rules:
        return "is not well-formed FHIR R4 (fhir-structure)"
    return "is not well-formed FHIR R4 (fhir-structure) and breaks IG rules" if structural else "breaks IG rules"


def format_request(base_url: str, item: OutboxItem) -> str:
    """The exact HTTP request an item would be sent as, ``Authorization`` redacted (dry run).

    The headers and the body's serialisation are those of
    :class:`~vtdui.viatrajectoire.client.ViaTrajectoireClient` (compact JSON, UTF-8).
    """
    resource_type = "Consent" if item.kind == "consent" else "Task"
    body = json.dumps(item.payload, ensure_ascii=False, separators=(",", ":"))
    lines = [
        f"POST {base_url.rstrip('/')}/{resource_type}",
        "Authorization: Bearer ***",
        f"struct_idnat: {sdo.id_nat_struct(item.finess_eg)}",
        "Accept: application/fhir+json",
        "Content-Type: application/fhir+json; charset=utf-8",
        "",
        body,
    ]
    return "\n".join(lines)


class Emitter:
    """Turns local changes into outbox items and delivers them.

    Args:
        config: the validated configuration (establishments, ROR units, retry).
        outbox: the durable queue.
        client_for: the ViaTrajectoire client of a legal entity.
        pm: plugin manager carrying the build / send hooks.
        store: the HAPI side (previous versions, decisions, notes, audit).
        state: records accepted consents (flux 3 waits for them).
        on_consent_accepted: called with ``(id_nat_decision, finess_eg)`` after ViaTrajectoire accepted
            a consent, to fetch the evaluation (flux 3) at once.
        dry_run: print the requests instead of sending them (items stay pending).
        out: where a dry run prints (default: the logger).
        worker: this worker's name in the outbox leases.
        history_floor: for a resource type, the normalised instant (:func:`vtdui.outbox.normalize_instant`)
            before which versions are not emitted when catching up on versions delivered out of order
            (``None``: only the delivered version is considered).
    """

    def __init__(self, config: Config, outbox: Outbox, client_for: Callable[[LegalEntity], OutboundClient],
                 pm: pluggy.PluginManager, store: OutboundStore, state: OutboundState, *,
                 on_consent_accepted: Callable[[str, str], object] | None = None, dry_run: bool = False,
                 out: Callable[[str], None] | None = None, worker: str | None = None,
                 history_floor: Callable[[str], str | None] | None = None) -> None:
        self.config = config
        self.history_floor = history_floor
        self.outbox = outbox
        self.client_for = client_for
        self.pm = pm
        self.store = store
        self.state = state
        self.on_consent_accepted = on_consent_accepted
        self.dry_run = dry_run
        self.out = out or (lambda text: log.info("dry run:\n%s", text))
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        #: the JDV the payloads are checked against, including what `vtdui terminology update` fetched
        self.terminology = StateTerminology(config.state_dir)

    # -- helpers --------------------------------------------------------------------------------------

    def _establishment(self, finess_eg: str) -> tuple[LegalEntity, Establishment] | None:
        try:
            return self.config.establishment(finess_eg)
        except ConfigError:
            return None

    def _read_reference(self, reference: Mapping[str, Any] | None) -> dict[str, Any] | None:
        target = str((reference or {}).get("reference") or "")
        parts = target.split("/")
        if len(parts) < 2 or not parts[-1]:
            return None
        resource_type, resource_id = parts[-2], parts[-1]
        if "_history" in parts:
            index = parts.index("_history")
            resource_type, resource_id = parts[index - 2], parts[index - 1]
        try:
            return self.store.read(resource_type, resource_id)
        except HapiError as exc:
            log.warning("cannot read %s/%s: %s", resource_type, resource_id, exc)
            return None

    def previous_version(self, resource: Mapping[str, Any]) -> dict[str, Any] | None:
        """The version of ``resource`` just before it in HAPI (``None`` for the first one)."""
        version = version_of(resource)
        if not version.isdigit() or int(version) <= 1:
            return None
        return vread(self.store, str(resource["resourceType"]), str(resource["id"]), str(int(version) - 1))

    # -- producing --------------------------------------------------------------------------------------

    def enqueue_notification(self, resource_type: str, resource_id: str, version: str | None, *,
                             via: str = "hook") -> list[OutboxItem] | None:
        """Enqueue what HAPI holds for a delivered Task or Consent version (a REST-hook notification).

        The delivered body is never built from: the version it names is read back from HAPI (a versioned
        read, or the current version when the body names none) and :meth:`enqueue_resource` works on what
        HAPI returns. So a forged, stale or unknown body can only make vtdui look at what HAPI really holds.

        Returns:
            The outbox items (see :meth:`enqueue_resource`), or ``None`` when HAPI does not hold that
            resource version: the caller refuses the delivery and nothing is queued.

        Raises:
            HapiError: HAPI could not be read (the caller answers so that HAPI delivers again).
        """
        if resource_type not in ("Task", "Consent"):
            return None
        stored = (vread(self.store, resource_type, resource_id, version) if version
                  else self.store.read(resource_type, resource_id))
        if stored is None or stored.get("resourceType") != resource_type or str(stored.get("id")) != resource_id:
            return None
        return self.enqueue_resource(stored, via=via)

    def enqueue_resource(self, resource: Mapping[str, Any], *, floor: str | None = None,
                         via: str = "hook") -> list[OutboxItem]:
        """Enqueue what a stored Task or Consent version means, and the versions before it not queued yet.

        HAPI may deliver quick successive versions out of order (several delivery threads), or not at
        all (vtdui down, HAPI gave up), and a later version may be the plugin's own write (a note) that
        is never emitted itself. So the versions before ``resource`` are read back (versioned reads)
        until one already queued, or one older than ``floor`` (the reconciliation's window start, by
        default ``history_floor``: what predates vtdui is never emitted), and enqueued oldest first:
        the outbox always receives the versions of a resource in order.

        Args:
            resource: the delivered (or found) version.
            floor: overrides ``history_floor``.
            via: how the version reached vtdui (``hook``, ``reconciliation``), kept in the item's ``origin``.

        Returns:
            The outbox items of every version enqueued or found already queued, oldest first.

        Raises:
            HapiError: HAPI could not give a previous version (the caller retries later).
        """
        kind = resource.get("resourceType")
        if kind not in ("Task", "Consent"):
            return []
        if floor is None and self.history_floor is not None:
            floor = self.history_floor(str(kind))
        if floor is None and is_own_write(resource):
            return []  # no window to catch up on: the plugin's own write alone reports nothing
        items: list[OutboxItem] = []
        for current, previous in self._unqueued_versions(resource, floor):
            if kind == "Task":
                items += self.enqueue_change(current, previous, via=via)
            else:
                items += self.enqueue_consent(current, previous, via=via)
        return items

    def _unqueued_versions(self, resource: Mapping[str, Any],
                           floor: str | None) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """``(version, previous version)`` pairs to enqueue, oldest first, ending with ``resource``."""
        kind, ident = str(resource["resourceType"]), str(resource["id"])
        chain: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        current: dict[str, Any] = dict(resource)
        while True:
            number = version_of(current)
            if not number.isdigit() or int(number) <= 1:
                chain.append((current, None))
                break
            earlier = vread(self.store, kind, ident, str(int(number) - 1))
            chain.append((current, earlier))
            if earlier is None or floor is None or self.outbox.backend.get_by_key(reference_of(earlier)) is not None:
                break
            if normalize_instant((earlier.get("meta") or {}).get("lastUpdated")) < floor:
                break
            current = earlier
        chain.reverse()
        return [(version, previous) for version, previous in chain if not is_own_write(version)]

    def enqueue_change(self, current: dict[str, Any], previous: dict[str, Any] | None, *,
                       via: str | None = None) -> list[OutboxItem]:
        """Detect the status change of a work-list Task version, build, check and enqueue its ESMSTask.

        Returns:
            The outbox items for this version (new or already there), ``[]`` when it reports nothing.
        """
        key = reference_of(current)
        existing = self.outbox.backend.get_by_key(key)
        if existing is not None:
            return [existing]
        id_nat, finess = worklist_key(current)
        found = self._establishment(finess) if finess else None
        if id_nat is None or found is None:
            if finess and found is None and not is_own_write(current):
                log.warning("Task %s belongs to establishment %s which is not configured: not emitted",
                            current.get("id"), finess)
            return []
        entity, establishment = found
        decision = self._read_reference(current.get("focus")) if isinstance(current.get("focus"), Mapping) else None
        id_decision, _ = decision_identifiers(decision)
        items: list[OutboxItem] = []
        for change in detect_changes(previous, current, establishment, id_decision=id_decision):
            context = OutboundContext(config=self.config, legal_entity=entity, establishment=establishment,
                                      worklist_task=current, decision=decision)
            task = self.pm.hook.build_esms_task(change=change, context=context)
            if task is None:
                log.info("no build_esms_task implementation answered for %s: nothing emitted", key)
                continue
            item = NewItem(kind="task", idempotency_key=key, id_nat_decision=change.id_nat_decision,
                           finess_eg=establishment.finess_eg, payload=task,
                           sequence=normalize_instant((current.get("meta") or {}).get("lastUpdated")),
                           source_ref=f"Task/{current.get('id')}",
                           origin={"change": change_to_dict(change), **({"via": via} if via else {})})
            violations = check_structure(task) + check_esms_task(
                task, expected_struct=establishment.id_nat_struct, terminology=self.terminology.current())
            items.append(self._enqueue_checked(item, violations, "ESMSTask", context))
        return items

    def enqueue_consent(self, current: dict[str, Any], previous: dict[str, Any] | None = None, *,
                        via: str | None = None) -> list[OutboxItem]:
        """Build, check and enqueue the ESMSConsent of a new local Consent."""
        key = reference_of(current)
        existing = self.outbox.backend.get_by_key(key)
        if existing is not None:
            return [existing]
        event = consent_event(current, previous)
        if event is None:
            return []
        decision = self._read_reference(event.decision_reference) if event.decision_reference else None
        _, id_nat = decision_identifiers(decision)
        id_nat = id_nat or event.id_nat_decision
        finess = event.finess_eg
        if finess is None and event.organization_reference is not None:
            organization = self._read_reference(event.organization_reference)
            finess = _finess_of(organization)
        if finess is None and id_nat is not None:
            finess = self._only_establishment_of(id_nat)
        found = self._establishment(finess) if finess else None
        if id_nat is None or found is None:
            log.warning("Consent %s: cannot tell its decision or establishment: not emitted", current.get("id"))
            return []
        entity, establishment = found
        if self.state.consent_accepted(id_nat, establishment.finess_eg):
            log.info("Consent %s: ViaTrajectoire already accepted a consent for this decision and "
                     "establishment: not sent again", current.get("id"))
            return []
        context = OutboundContext(config=self.config, legal_entity=entity, establishment=establishment,
                                  worklist_task=None, decision=decision)
        built = self.pm.hook.build_esms_consent(consent=current, context=context)
        if built is None:
            return []
        item = NewItem(kind="consent", idempotency_key=key, id_nat_decision=id_nat,
                       finess_eg=establishment.finess_eg, payload=built,
                       sequence=normalize_instant((current.get("meta") or {}).get("lastUpdated")),
                       source_ref=f"Consent/{current.get('id')}",
                       origin={"consent": reference_of(current), **({"via": via} if via else {})})
        violations = check_structure(built) + check_esms_consent(built, expected_struct=establishment.id_nat_struct,
                                                                 expected_decision=id_nat)
        return [self._enqueue_checked(item, violations, "ESMSConsent", context)]

    def _only_establishment_of(self, id_nat: str) -> str | None:
        """The configured establishment holding the decision in its work list, when there is exactly one."""
        holders: list[str] = []
        for _, establishment in self.config.establishments()[:_MAX_CONSENT_LOOKUPS]:
            name, _, value = worklist_query(id_nat, establishment.finess_eg).partition("=")
            try:
                if self.store.search("Task", {name: value}):
                    holders.append(establishment.finess_eg)
            except VtduiError as exc:
                log.warning("cannot search the work list of %s: %s", establishment.finess_eg, exc)
        return holders[0] if len(holders) == 1 else None

    def _enqueue_checked(self, item: NewItem, violations: list[RuleViolation], what: str,
                         context: OutboundContext) -> OutboxItem:
        if has_errors(violations):
            reason = _violations_text(violations)
            hook = "build_esms_consent" if item.kind == "consent" else "build_esms_task"
            error = ConformanceError(f"{what} not sent: the resource built by {hook} {_broken(violations)}",
                                     violations, culprit="build")
            stored, created = self.outbox.enqueue_failed(
                item, f"{what} not sent, the {hook} result {_broken(violations)}: {reason}",
                to_operation_outcome(violations))
            if created:
                log.warning("%s for %s kept as failed item %d: %s", what, item.source_ref, stored.id, reason)
                self._note(item.source_ref, f"Statut non transmis à ViaTrajectoire (règles de l'IG non "
                                            f"respectées) : {reason}")
                self._audit(stored, outcome="8", description=f"refused before sending: {reason}")
                self._send_error(stored, error, context, item.payload)
            return stored
        stored, created = self.outbox.enqueue(item)
        if created:
            log.info("%s for %s queued as item %d", what, item.source_ref, stored.id)
        return stored

    # -- delivering --------------------------------------------------------------------------------------

    def run_pending(self, limit: int = 50, *, should_stop: Callable[[], bool] | None = None) -> DeliveryReport:
        """Deliver the eligible items (head of each decision, due), oldest first; return what happened.

        Args:
            limit: at most this many items handled.
            should_stop: asked before each item; when it answers ``True`` (shutdown) the items claimed
                but not started are given back untouched (pending, due now) and the call returns.
        """
        report = DeliveryReport()
        with ExitStack() as leases:
            keeping = False
            while report.attempted < limit:
                items = self.outbox.claim(self.worker, min(limit - report.attempted, CLAIM_SIZE))
                if not items:
                    break
                if not keeping:  # an idle round (nothing due) starts no renewal thread
                    leases.enter_context(_LeaseKeeper(self.outbox, self.worker))
                    keeping = True
                for index, item in enumerate(items):
                    if should_stop is not None and should_stop():
                        for parked in items[index:]:
                            self.outbox.release(parked)
                        return report
                    self._deliver(item, report)
                if self.dry_run:
                    break  # released items are eligible again at once: one pass only
        return report

    def _deliver(self, item: OutboxItem, report: DeliveryReport) -> None:
        found = self._establishment(item.finess_eg)
        if found is None:
            self._fail(item, report, ConfigError(f"establishment {item.finess_eg} is no longer configured"), None)
            return
        entity, establishment = found
        context = OutboundContext(config=self.config, legal_entity=entity, establishment=establishment)
        resource = copy.deepcopy(item.payload)
        built = self._violations(item, resource, establishment)
        if has_errors(built):  # before_send sees conformant resources only: a broken build fails here
            hook = "build_esms_consent" if item.kind == "consent" else "build_esms_task"
            error = ConformanceError(f"{item.kind} item {item.id}: the resource built by {hook} "
                                     f"{_broken(built)}; before_send was not called", built, culprit="build")
            self._fail(item, report, error, to_operation_outcome(built), context, resource,
                       note=f"Statut non transmis à ViaTrajectoire (règles de l'IG non respectées) : "
                            f"{_violations_text(built)}")
            return
        try:
            self.pm.hook.before_send(resource=resource, flux=item.flux, context=context)
        except Exception as exc:  # a plugin's bug must not lose the item: it is kept, failed, with the reason
            self._fail(item, report, VtduiError(f"a before_send hook failed: {type(exc).__name__}: {exc}"), None,
                       context, resource)
            return
        violations = self._violations(item, resource, establishment)
        if has_errors(violations):
            error = ConformanceError(f"{item.kind} item {item.id}: a before_send implementation ("
                                     f"{', '.join(self._implementers('before_send')) or '?'}) made the conformant "
                                     f"resource break IG rules or FHIR structure", violations, culprit="before_send")
            self._fail(item, report, error, to_operation_outcome(violations), context, resource,
                       note=f"Statut non transmis à ViaTrajectoire (règles de l'IG non respectées) : "
                            f"{_violations_text(violations)}")
            return
        if self.dry_run:
            self.out(format_request(self.config.viatrajectoire.base_url, _with_payload(item, resource)))
            self.outbox.release(item)
            report.dry_run.append(item.idempotency_key)
            return
        if not self.outbox.renew(self.worker, item):
            # this worker stalled past its lease and another one took the item over: it is theirs to send
            log.warning("outbox item %d was taken over by another worker (lease expired); not sent here", item.id)
            report.lost.append(item.id)
            return
        try:
            created = self._post(entity, establishment.finess_eg, item, resource)
        except (RetriableError, AuthError) as exc:
            outcome = exc.outcome if isinstance(exc, RemoteError) else None
            updated = self.outbox.mark_retry(item, str(exc), getattr(exc, "retry_after", None), outcome)
            if updated.state is ItemState.FAILED:
                self._after_failure(updated, report, exc, context, resource)
            else:
                report.rescheduled.append(item.id)
                self._audit(updated, outcome="4", description=f"attempt {item.attempts} failed, will retry: {exc}")
            return
        except RemoteError as exc:
            self._fail(item, report, exc, exc.outcome, context, resource,
                       note="ViaTrajectoire a refusé le statut : " + ("; ".join(exc.issues()) or str(exc)))
            return
        except ConfigError as exc:
            self._fail(item, report, exc, None, context, resource)
            return
        response = {"status": getattr(created, "status", None), "id": getattr(created, "id", None),
                    "location": getattr(created, "location", None),
                    "version_id": getattr(created, "version_id", None)}
        sent = self.outbox.mark_sent(item, response)
        report.sent.append(item.id)
        where = response["location"] or response["id"]
        self._audit(sent, outcome="0", description=f"accepted by ViaTrajectoire as {where}")
        try:
            self.pm.hook.after_send(resource=resource, response=getattr(created, "resource", {}) or {},
                                    flux=item.flux, context=context)
        except Exception:  # an observer's failure must not undo a delivery
            log.exception("an after_send hook failed for outbox item %d", item.id)
        if item.kind == "consent":
            self.state.record_consent(item.id_nat_decision, item.finess_eg)
            if self.on_consent_accepted is not None:
                try:
                    self.on_consent_accepted(item.id_nat_decision, item.finess_eg)
                except Exception:  # the evaluation is fetched by the next sync cycle anyway
                    log.exception("fetching the evaluation after consent item %d failed; the next sync "
                                  "cycle will fetch it", item.id)

    def _post(self, entity: LegalEntity, finess_eg: str, item: OutboxItem, resource: dict[str, Any]) -> Any:
        token = CURRENT_ITEM.set(item)
        try:
            client = self.client_for(entity)
            if item.kind == "consent":
                return client.post_consent(finess_eg, resource)
            return client.post_task(finess_eg, resource)
        finally:
            CURRENT_ITEM.reset(token)

    def _violations(self, item: OutboxItem, resource: dict[str, Any],
                    establishment: Establishment) -> list[RuleViolation]:
        if item.kind == "consent":
            return check_structure(resource) + check_esms_consent(
                resource, expected_struct=establishment.id_nat_struct, expected_decision=item.id_nat_decision)
        return check_structure(resource) + check_esms_task(resource, expected_struct=establishment.id_nat_struct,
                                                           terminology=self.terminology.current())

    def _implementers(self, hook: str) -> list[str]:
        """Names of the plugins implementing ``hook`` (to name who may have broken a rule)."""
        caller = getattr(self.pm.hook, hook)
        return [self.pm.get_name(impl.plugin) or impl.plugin_name for impl in caller.get_hookimpls()]

    def _send_error(self, item: OutboxItem, error: VtduiError, context: OutboundContext,
                    resource: dict[str, Any] | None) -> None:
        try:
            self.pm.hook.on_send_error(resource=resource or item.payload, error=error, flux=item.flux, context=context)
        except Exception:  # an observer's failure must not change the item's fate
            log.exception("an on_send_error hook failed for outbox item %d", item.id)

    def _fail(self, item: OutboxItem, report: DeliveryReport, error: VtduiError, outcome: dict[str, Any] | None,
              context: OutboundContext | None = None, resource: dict[str, Any] | None = None, *,
              note: str | None = None) -> None:
        failed = self.outbox.mark_failed(item, str(error), outcome)
        self._after_failure(failed, report, error, context, resource, note=note)

    def _after_failure(self, item: OutboxItem, report: DeliveryReport, error: VtduiError,
                       context: OutboundContext | None, resource: dict[str, Any] | None, *,
                       note: str | None = None) -> None:
        report.failed.append(item.id)
        log.warning("outbox item %d (%s) failed: %s", item.id, item.source_ref, error)
        self._audit(item, outcome="8", description=str(error))
        self._note(item.source_ref, note or f"Statut non transmis à ViaTrajectoire : {error}")
        if context is not None:
            self._send_error(item, error, context, resource)

    # -- operator -------------------------------------------------------------------------------------------

    def rebuild(self, item_id: int) -> OutboxItem:
        """Rebuild a failed item from its local source with today's configuration and hooks, then requeue it.

        Use it after fixing the configuration (a ROR unit) or a hook. The rebuilt resource is checked
        again: if it still breaks rules the item stays failed with the new reasons.
        """
        item = self.outbox.show(item_id)
        found = self._establishment(item.finess_eg)
        if found is None:
            raise ConfigError(f"establishment {item.finess_eg} is not configured")
        entity, establishment = found
        rebuilt: dict[str, Any] | None
        if item.kind == "task" and "change" in item.origin:
            source_type, source_id, _, version = item.idempotency_key.split("/")
            worklist = vread(self.store, source_type, source_id, version)
            decision = self._read_reference((worklist or {}).get("focus"))
            context = OutboundContext(config=self.config, legal_entity=entity, establishment=establishment,
                                      worklist_task=worklist, decision=decision)
            rebuilt = self.pm.hook.build_esms_task(change=change_from_dict(item.origin["change"]), context=context)
            violations = (check_structure(rebuilt) if rebuilt else []) + check_esms_task(
                rebuilt or {}, expected_struct=establishment.id_nat_struct, terminology=self.terminology.current())
        else:
            source_type, source_id, _, version = item.idempotency_key.split("/")
            consent = vread(self.store, source_type, source_id, version) or {}
            event = consent_event(consent)
            decision = self._read_reference(event.decision_reference) if event else None
            context = OutboundContext(config=self.config, legal_entity=entity, establishment=establishment,
                                      decision=decision)
            rebuilt = self.pm.hook.build_esms_consent(consent=consent, context=context)
            violations = (check_structure(rebuilt) if rebuilt else []) + check_esms_consent(
                rebuilt or {}, expected_struct=establishment.id_nat_struct, expected_decision=item.id_nat_decision)
        if rebuilt is None or has_errors(violations):
            reason = _violations_text(violations) or "no build hook produced a resource"
            failed = self.outbox.mark_failed(item, f"still not sendable after rebuild: {reason}",
                                             to_operation_outcome(violations))
            if rebuilt is not None:  # the same failure model as a first build: the builder is named
                hook = "build_esms_consent" if item.kind == "consent" else "build_esms_task"
                self._send_error(failed, ConformanceError(f"{item.kind} item {item.id}: the resource rebuilt by "
                                                          f"{hook} still {_broken(violations)}", violations,
                                                          culprit="build"), context, rebuilt)
            return failed
        return self.outbox.retry(item_id, payload=rebuilt)

    def list_audit(self, source_ref: str | None = None, count: int = 100) -> list[dict[str, Any]]:
        """The emission AuditEvents, newest first (of one local resource, ``Task/12``, when given)."""
        params = {"_tag": f"{AUDIT_TAG['system']}|{AUDIT_TAG['code']}", "_sort": "-date", "_count": str(count)}
        if source_ref:
            params["entity"] = source_ref
        return self.store.search("AuditEvent", params)

    # -- side records in HAPI -------------------------------------------------------------------------------

    def _audit(self, item: OutboxItem, *, outcome: str, description: str) -> None:
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "meta": {"source": sdo.PLUGIN_SOURCE, "tag": [AUDIT_TAG]},
            "type": _AUDIT_TYPE,
            "subtype": [_AUDIT_CREATE],
            "action": "C",
            "recorded": _now().isoformat(timespec="milliseconds"),
            "outcome": outcome,
            "outcomeDesc": description[:2000],
            "agent": [{"who": {"display": f"vtdui {self.worker}"}, "requestor": True}],
            "source": {"observer": {"display": "vtdui"}, "site": sdo.id_nat_struct(item.finess_eg)},
            "entity": [{
                "what": {"reference": item.source_ref} if item.source_ref else {"display": item.idempotency_key},
                "description": f"flux {item.flux} outbox item {item.id}",
                "detail": [
                    {"type": "outbox-item", "valueString": str(item.id)},
                    {"type": "source-version", "valueString": item.idempotency_key},
                    {"type": "attempt", "valueString": str(item.attempts)},
                    {"type": "state", "valueString": item.state.value},
                ],
            }],
        }
        if item.response and item.response.get("location"):
            event["entity"][0]["detail"].append({"type": "viatrajectoire", "valueString": item.response["location"]})
        try:
            self.store.transaction([{"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}])
        except VtduiError as exc:  # the outbox keeps the truth; the audit copy is best effort
            log.warning("could not write the AuditEvent of outbox item %d: %s", item.id, exc)

    def _note(self, source_ref: str | None, text: str) -> None:
        if not source_ref or not source_ref.startswith("Task/"):
            return
        task_id = source_ref.split("/", 1)[1]
        for _ in range(3):  # a concurrent edit by the user: read again and retry
            try:
                task = self.store.read("Task", task_id)
                if task is None:
                    return
                updated = copy.deepcopy(task)
                updated.setdefault("note", []).append(
                    {"authorString": _NOTE_AUTHOR, "time": _now().isoformat(timespec="seconds"), "text": text[:4000]})
                updated.setdefault("meta", {})["source"] = sdo.PLUGIN_SOURCE
                self.store.update(updated, if_match=version_of(task))
                return
            except HapiError as exc:
                if exc.status in (409, 412):  # HAPI 8 answers 409 for a stale If-Match in some paths
                    continue
                log.warning("could not add the note to %s: %s", source_ref, exc)
                return
        log.warning("could not add the note to %s: it kept changing", source_ref)


def _with_payload(item: OutboxItem, payload: dict[str, Any]) -> OutboxItem:
    from dataclasses import replace

    return replace(item, payload=payload)


def _finess_of(organization: Mapping[str, Any] | None) -> str | None:
    for ident in (organization or {}).get("identifier", []) or []:
        value = str(ident.get("value") or "")
        if ident.get("system") in (sdo.FINESS_SYSTEM, "urn:oid:1.2.250.1.71.4.2.2") and value:
            return value[1:] if len(value) == 10 and value.startswith("1") else value
    return None
