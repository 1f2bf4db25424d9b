"""In-memory store of the simulator: decisions (and their two documents), consents, Tasks, what the DUI sent.

One lock guards everything: the FHIR and admin listeners run in the same process and a test may
read the store from another thread. ``meta.lastUpdated`` values come from :meth:`SimulatorState.tick`,
which never returns the same instant twice, so a ``_lastUpdated=gt<last seen>`` poll never misses
nor repeats a change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from vtdui.simulator.dataset import (
    Dataset,
    Establishment,
    LegalEntity,
    SimulatedDecision,
    generate_decision,
    generate_evaluation,
)
from vtdui.simulator.fhir_time import format_instant

__all__ = [
    "Clock",
    "ReceivedRequest",
    "SimulatorState",
    "StoredConsent",
    "StoredDecision",
    "StoredTask",
    "TaskOrigin",
]

Clock = Callable[[], datetime]

#: Who wrote a Task: the DUI through flux 4, another establishment or the MDPH (both through the admin side), or
#: the establishment itself in ViaTrajectoire's screens before its interoperability ("vt-screen": mode reprise).
TaskOrigin = Literal["flux4", "other-esms", "mdph", "vt-screen"]

_RECEIVED_MAX = 10_000
_MS = timedelta(milliseconds=1)
_FHIR_ID = re.compile(r"[A-Za-z0-9.-]{1,59}")  # "dec-" + this stays within the 64 characters of an id


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _with_set_id(cda: bytes, set_id: str | None) -> bytes:
    """The document with another ``setId/@extension`` (the 2024 samples' convention), else unchanged."""
    if set_id is None:
        return cda
    from lxml import etree  # lazy: only for this convention

    root = etree.fromstring(cda, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    element = root.find("{urn:hl7-org:v3}setId")
    if element is not None:
        element.set("extension", set_id)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass
class StoredDecision:
    """A decision as ViaTrajectoire holds it: the decision document, the evaluation document, who was notified.

    Attributes:
        sim: the generated person/decision/evaluation.
        docref_id: logical id of the decision DocumentReference (57830-2).
        eval_docref_id: logical id of the evaluation DocumentReference (51848-0).
        version: version of both documents (CDA ``versionNumber``, ``meta.versionId``).
        last_updated: ``meta.lastUpdated`` of the decision DocumentReference.
        notified_to: FINESS EG of the establishments the decision is notified to.
        set_id: ``setId/@extension`` of its CDAs when it is not the idNat_Decision (the 2024 samples' "01").
    """

    sim: SimulatedDecision
    docref_id: str
    eval_docref_id: str
    version: int
    last_updated: datetime
    notified_to: tuple[str, ...]
    set_id: str | None = None
    _cda: dict[tuple[str, int], bytes] = field(default_factory=dict, repr=False)

    @property
    def id_nat_decision(self) -> str:
        """idNat_Decision (official identifier)."""
        return self.sim.decision.id_nat_decision

    @property
    def id_decision(self) -> str:
        """IdDecision (usual identifier, unique within the MDPH)."""
        return self.sim.decision.id_decision

    def decision_cda(self) -> bytes:
        """The current decision CDA (built once per version)."""
        key = ("decision", self.version)
        if key not in self._cda:
            self._cda[key] = _with_set_id(self.sim.decision_cda(version=self.version), self.set_id)
        return self._cda[key]

    def evaluation_cda(self) -> bytes:
        """The current evaluation CDA (built once per version)."""
        key = ("evaluation", self.version)
        if key not in self._cda:
            self._cda[key] = _with_set_id(self.sim.evaluation_cda(version=self.version), self.set_id)
        return self._cda[key]


@dataclass(frozen=True)
class StoredConsent:
    """A consent received through flux 2."""

    id: str
    finess_eg: str
    id_nat_decision: str
    last_updated: datetime
    resource: dict[str, Any]


@dataclass(frozen=True)
class StoredTask:
    """An ESMSTask: posted by the DUI (flux 4) or injected (another establishment, the MDPH).

    Attributes:
        id: logical id.
        origin: who wrote it.
        finess_eg: FINESS EG of its ``idNat_Struct`` (the establishment the status is about).
        id_nat_decision: the decision it concerns.
        last_updated: ``meta.lastUpdated``.
        resource: the full Task as served.
    """

    id: str
    origin: TaskOrigin
    finess_eg: str
    id_nat_decision: str
    last_updated: datetime
    resource: dict[str, Any]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the DUI made on the FHIR port, for ``GET /_admin/received``."""

    at: datetime
    method: str
    path: str
    query: str
    struct_idnat: str | None
    body: Any
    validation: list[dict[str, str]]
    status: int

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {"at": self.at.isoformat(timespec="milliseconds"), "method": self.method, "path": self.path,
                "query": self.query, "struct_idnat": self.struct_idnat, "body": self.body,
                "validation": self.validation, "status": self.status}


class SimulatorState:
    """Everything the simulator knows, thread-safe.

    Args:
        seed: dataset seed.
        n_decisions: decisions created by :meth:`reset`.
        clock: current time (aware datetime); injectable for tests.
    """

    def __init__(self, seed: int, n_decisions: int, *, clock: Clock = _utcnow) -> None:
        self.seed = seed
        self.n_decisions = n_decisions
        self.clock = clock
        self.lock = threading.RLock()
        self._last_tick = datetime(1970, 1, 1, tzinfo=UTC)
        self.entities: tuple[LegalEntity, ...] = ()
        self.decisions: dict[str, StoredDecision] = {}
        self.consents: dict[str, StoredConsent] = {}
        self.tasks: dict[str, StoredTask] = {}
        self.received: deque[ReceivedRequest] = deque(maxlen=_RECEIVED_MAX)
        self._docrefs: dict[str, tuple[str, Literal["decision", "evaluation"]]] = {}
        self._next_index = 0
        self.reset()

    # -- time ------------------------------------------------------------------------------------

    def tick(self) -> datetime:
        """Return "now" at millisecond precision, strictly after every instant returned before."""
        with self.lock:
            now = self.clock().astimezone(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if now <= self._last_tick:
                now = self._last_tick + _MS
            self._last_tick = now
            return now

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Regenerate the seeded dataset; forget consents, Tasks and received requests."""
        with self.lock:
            now = self.tick()
            dataset = Dataset.generate(self.seed, self.n_decisions, now)
            self.entities = dataset.entities
            self.decisions.clear()
            self.consents.clear()
            self.tasks.clear()
            self.received.clear()
            self._docrefs.clear()
            self._next_index = 0
            for sim in dataset.decisions:
                self._store(sim, sim.notified_at.astimezone(UTC).replace(
                    microsecond=sim.notified_at.microsecond // 1000 * 1000))

    def _store(self, sim: SimulatedDecision, last_updated: datetime) -> StoredDecision:
        self._next_index += 1
        key = sim.id_nat_decision
        # a logical id is FHIR's id datatype ([A-Za-z0-9-.]{1,64}): an idNat_Decision outside it (a test's "VTS|1,P$1")
        # is stood for by a digest of it, as a FHIR server would never serve such an id
        slug = key if _FHIR_ID.fullmatch(key) else hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        stored = StoredDecision(sim=sim, docref_id=f"dec-{slug}", eval_docref_id=f"eval-{slug}", version=1,
                                last_updated=last_updated, notified_to=tuple(sim.notified_to))
        self.decisions[key] = stored
        self._docrefs[stored.docref_id] = (key, "decision")
        self._docrefs[stored.eval_docref_id] = (key, "evaluation")
        return stored

    # -- establishments --------------------------------------------------------------------------

    def establishments(self) -> list[tuple[LegalEntity, Establishment]]:
        """Every establishment with its legal entity."""
        return [(ej, eg) for ej in self.entities for eg in ej.establishments]

    def legal_entity(self, finess_ej: str) -> LegalEntity | None:
        """The legal entity with this FINESS EJ."""
        return next((ej for ej in self.entities if ej.finess_ej == finess_ej), None)

    def establishment(self, finess_eg: str) -> Establishment | None:
        """The establishment with this FINESS EG."""
        return next((eg for _, eg in self.establishments() if eg.finess_eg == finess_eg), None)

    # -- decisions -------------------------------------------------------------------------------

    def add_decision(self, *, notified_to: Sequence[str] | None = None, id_decision: str | None = None,
                     id_nat_decision: str | None = None) -> StoredDecision:
        """Create a new decision (MDPH side), notified now.

        Args:
            notified_to: FINESS EG to notify (default: drawn by the generator).
            id_decision: idDecision to use (default: generated).
            id_nat_decision: idNat_Decision to use (default: generated, unique).

        Raises:
            ValueError: unknown establishment or idNat_Decision already used.
        """
        with self.lock:
            for eg in notified_to or ():
                if self.establishment(eg) is None:
                    raise ValueError(f"unknown establishment (FINESS EG) {eg!r}")
            if id_nat_decision is not None and id_nat_decision in self.decisions:
                raise ValueError(f"idNat_Decision {id_nat_decision!r} already exists")
            index = self._next_index
            rng = random.Random(f"vtdui:{self.seed}:decision:{index}")  # noqa: S311 - seeded test data
            now = self.tick()
            nat = id_nat_decision or f"VTS{self.seed}X{index + 1:06d}{secrets.token_hex(2).upper()}"
            person, decision = generate_decision(rng, self.entities, now, id_nat_decision=nat, sequence=index + 1)
            if notified_to:
                right = dataclasses.replace(decision.rights[0], id_nat_structs=tuple("1" + eg for eg in notified_to))
                decision = dataclasses.replace(decision, rights=(right, *decision.rights[1:]))
            if id_decision:
                decision = dataclasses.replace(decision, id_decision=id_decision)
            evaluation = generate_evaluation(rng, decision)
            sim = SimulatedDecision(person=person, decision=decision, evaluation=evaluation,
                                    notified_to=decision.rights[0].finess_list, notified_at=now)
            return self._store(sim, now)

    def update_decision(self, id_nat_decision: str) -> StoredDecision:
        """Publish a new version of a decision (MDPH "MAJDossier"): version + 1, ``lastUpdated`` moves.

        Raises:
            KeyError: unknown decision.
        """
        with self.lock:
            stored = self.decisions[id_nat_decision]
            stored.version += 1
            stored.last_updated = self.tick()
            return stored

    def replace_document(self, id_nat_decision: str, kind: Literal["decision", "evaluation"],
                         data: bytes) -> StoredDecision:
        """Serve ``data`` (any bytes: a broken or hostile CDA) as the current version of a decision's document.

        A later :meth:`update_decision` serves a regular document again.

        Raises:
            KeyError: unknown decision.
        """
        with self.lock:
            stored = self.decisions[id_nat_decision]
            stored._cda[(kind, stored.version)] = data
            return stored

    def decision_by_docref(self, docref_id: str) -> tuple[StoredDecision, Literal["decision", "evaluation"]] | None:
        """The decision a DocumentReference id belongs to, and which document it is."""
        with self.lock:
            found = self._docrefs.get(docref_id)
            if found is None:
                return None
            return self.decisions[found[0]], found[1]

    def decisions_for(self, finess_eg: str, after: datetime | None) -> list[StoredDecision]:
        """Decisions notified to ``finess_eg`` updated strictly after ``after``, oldest first."""
        with self.lock:
            found = [d for d in self.decisions.values()
                     if finess_eg in d.notified_to and (after is None or d.last_updated > after)]
        return sorted(found, key=lambda d: (d.last_updated, d.docref_id))

    # -- consents --------------------------------------------------------------------------------

    def add_consent(self, finess_eg: str, id_nat_decision: str, resource: dict[str, Any]) -> StoredConsent:
        """Store a consent received through flux 2; sets ``id`` and ``meta`` of ``resource``."""
        with self.lock:
            now = self.tick()
            consent_id = f"cons-{secrets.token_hex(6)}"
            served = dict(resource)
            served["id"] = consent_id
            served["meta"] = {**resource.get("meta", {}), "versionId": "1", "lastUpdated": _instant(now)}
            stored = StoredConsent(consent_id, finess_eg, id_nat_decision, now, served)
            self.consents[consent_id] = stored
            return stored

    def has_consent(self, id_nat_decision: str, finess_eg: str) -> bool:
        """Tell whether ``finess_eg`` sent a consent for this decision."""
        with self.lock:
            return any(c.id_nat_decision == id_nat_decision and c.finess_eg == finess_eg
                       for c in self.consents.values())

    # -- tasks -----------------------------------------------------------------------------------

    def add_task(self, origin: TaskOrigin, finess_eg: str, id_nat_decision: str,
                 resource: dict[str, Any]) -> StoredTask:
        """Store a new Task (never merged with an earlier one); sets ``id`` and ``meta``."""
        with self.lock:
            now = self.tick()
            task_id = f"task-{secrets.token_hex(6)}"
            served = dict(resource)
            served["id"] = task_id
            served["meta"] = {**resource.get("meta", {}), "versionId": "1", "lastUpdated": _instant(now)}
            stored = StoredTask(task_id, origin, finess_eg, id_nat_decision, now, served)
            self.tasks[task_id] = stored
            return stored

    def task_visible_to(self, task: StoredTask, finess_eg: str,
                        other_statuses: frozenset[str] | None = None) -> bool:
        """Flux 5 rule: statuses of *other* establishments on the caller's decisions, MDPH events on its own.

        Args:
            task: the Task.
            finess_eg: the caller's establishment.
            other_statuses: status codes of other establishments to show (``None``: all).
        """
        decision = self.decisions.get(task.id_nat_decision)
        if decision is None or finess_eg not in decision.notified_to:
            return False
        if task.origin in ("mdph", "vt-screen"):
            return task.finess_eg == finess_eg
        if task.finess_eg == finess_eg:
            return False  # never echo the caller's own posts
        if other_statuses is None:
            return True
        return bool(_status_codes(task.resource) & other_statuses)

    def tasks_for(self, finess_eg: str, after: datetime | None,
                  other_statuses: frozenset[str] | None = None) -> list[StoredTask]:
        """Tasks flux 5 returns to ``finess_eg``, updated strictly after ``after``, oldest first."""
        with self.lock:
            found = [t for t in self.tasks.values()
                     if (after is None or t.last_updated > after)
                     and self.task_visible_to(t, finess_eg, other_statuses)]
        return sorted(found, key=lambda t: (t.last_updated, t.id))

    # -- received --------------------------------------------------------------------------------

    def record(self, item: ReceivedRequest) -> None:
        """Remember one request of the DUI."""
        with self.lock:
            self.received.append(item)

    def received_since(self, index: int = 0) -> list[ReceivedRequest]:
        """Requests received, oldest first, from position ``index``."""
        with self.lock:
            return list(self.received)[index:]


def _status_codes(task: dict[str, Any]) -> set[str]:
    codes: set[str] = set()
    for item in task.get("input", []):
        kind = {c.get("code") for c in item.get("type", {}).get("coding", [])}
        if kind & {"statutESMS", "statutUnite"}:
            codes.update(str(c.get("code")) for c in item.get("valueCodeableConcept", {}).get("coding", []))
    return codes


_instant = format_instant
