"""A testing kit for integrators: test a vtdui plugin without the project's own test suite.

Everything here is installed with vtdui and needs no certificate, no configuration file and no
network, except :class:`SimulatorSession` (the project's ViaTrajectoire simulator, in-process over
real HTTP) and :func:`hapi_base_url` (a real HAPI FHIR server, when one is available). The pytest
fixtures built on it live in :mod:`vtdui.testing.pytest_plugin`, registered through the ``pytest11``
entry point: installing vtdui is enough for ``vtdui_pm``, ``vtdui_simulator``, ... to be available.

A minimal test of a plugin module ``acme_vtdui``::

    import acme_vtdui
    from vtdui import testing

    def test_the_wrapper_adds_the_extension():
        pm = testing.plugin_manager(acme_vtdui)
        entries = pm.hook.map_decision(document=testing.sample_decision(),
                                       context=testing.inbound_context())
        task = testing.worklist_task(entries)
        assert task["extension"][0]["url"] == acme_vtdui.ORIENTATION_TYPE_URL

The sample data comes from the simulator's dataset (seeded, so always the same) and its CDA builder:
decisions, evaluations and establishments with ROR units consistent with each other, as ViaTrajectoire
would serve them.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pluggy

from vtdui import sdo
from vtdui.cda.parse import parse_decision, parse_evaluation
from vtdui.cda.records import DecisionDocument, EvaluationDocument
from vtdui.config import Config, Establishment, HapiSettings, LegalEntity, RorUnit
from vtdui.hookcontext import InboundContext, OutboundContext, StatusChange
from vtdui.mapping import worklist
from vtdui.outbox import OutboxItem
from vtdui.plugins import get_plugin_manager
from vtdui.runtime import Runtime
from vtdui.simulator.dataset import Dataset
from vtdui.simulator.server import RunningSimulator, start_simulator

__all__ = [
    "SAMPLE_NOW",
    "SAMPLE_SEED",
    "SimulatorSession",
    "hapi_base_url",
    "inbound_context",
    "outbound_context",
    "plugin_manager",
    "sample_config",
    "sample_dataset",
    "sample_decision",
    "sample_decision_cda",
    "sample_evaluation",
    "sample_evaluation_cda",
    "status_change",
    "user_saves",
    "worklist_task",
]

#: Seed of the sample dataset (the same decisions, persons and establishments at every run).
SAMPLE_SEED = 1
#: Simulated "now" of the sample dataset.
SAMPLE_NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
_SAMPLE_DECISIONS = 5


def plugin_manager(*plugins: object, hooks_dir: Path | None = None, entrypoints: bool = False,
                   builtins: bool = True) -> pluggy.PluginManager:
    """A plugin manager as vtdui builds it, with ``plugins`` registered (modules or objects with hooks).

    Args:
        *plugins: your plugin modules or objects. A plugin also installed through its entry point (and
            loaded with ``entrypoints=True``) is registered once, under its entry-point name.
        hooks_dir: also load the ``*.py`` files of this directory, as ``hooks_dir`` of ``vtdui.toml`` does.
        entrypoints: also load the installed distributions of the ``vtdui`` entry-point group (off by
            default so that other installed plugins do not change what your test sees).
        builtins: register the built-in mapping and builders (your ``map_*`` / ``build_*`` run first and
            may return ``None`` to defer to them, as in production).

    Raises:
        vtdui.errors.ConfigError: a hook name is misspelt or has an argument the specification lacks.
    """
    return get_plugin_manager(hooks_dir, load_entrypoints=entrypoints, extra=tuple(plugins), builtins=builtins,
                              check_names=entrypoints)


@lru_cache(maxsize=4)
def sample_dataset(seed: int = SAMPLE_SEED, n_decisions: int = _SAMPLE_DECISIONS) -> Dataset:
    """The simulator's dataset for ``seed``: two legal entities of four establishments, ``n_decisions`` decisions."""
    return Dataset.generate(seed, n_decisions, SAMPLE_NOW)


def sample_config(*, seed: int = SAMPLE_SEED, hapi_base_url: str = "http://127.0.0.1:8080/fhir",
                  state_dir: Path | None = None) -> Config:
    """A configuration serving every establishment of the sample dataset, without certificates or file.

    Good for hook contexts; a real exchange with the simulator needs :meth:`SimulatorSession.write_config`.
    """
    entities: list[LegalEntity] = []
    for entity in sample_dataset(seed).entities:
        establishments = tuple(
            Establishment(finess_eg=est.finess_eg, name=est.name, is_esat=est.is_esat,
                          units=tuple(RorUnit(id_unite=u.id_unite, nom_unite=u.nom_unite,
                                              categorie_organisation=u.categorie_organisation,
                                              mode_prise_charge=u.mode_prise_charge,
                                              temporalite_accueil=u.temporalite_accueil) for u in est.units))
            for est in entity.establishments)
        entities.append(LegalEntity(finess_ej=entity.finess_ej, name=entity.name, establishments=establishments))
    config = Config(legal_entities=tuple(entities), hooks_dir=None, hapi=HapiSettings(base_url=hapi_base_url))
    return replace(config, state_dir=state_dir) if state_dir is not None else config


def _decision_index(index: int, seed: int) -> int:
    count = len(sample_dataset(seed).decisions)
    if not 0 <= index < count:
        raise IndexError(f"the sample dataset has {count} decisions (index 0..{count - 1})")
    return index


def sample_decision_cda(index: int = 0, *, seed: int = SAMPLE_SEED, version: int = 1) -> bytes:
    """The "Individu et décision" CDA (flux 1) of sample decision ``index``, as ViaTrajectoire serves it."""
    return sample_dataset(seed).decisions[_decision_index(index, seed)].decision_cda(version=version)


def sample_evaluation_cda(index: int = 0, *, seed: int = SAMPLE_SEED, version: int = 1) -> bytes:
    """The "Evaluation" CDA (flux 3) of sample decision ``index``."""
    return sample_dataset(seed).decisions[_decision_index(index, seed)].evaluation_cda(version=version)


def sample_decision(index: int = 0, *, seed: int = SAMPLE_SEED, version: int = 1) -> DecisionDocument:
    """Sample decision ``index`` parsed as ``map_decision`` receives it."""
    return parse_decision(sample_decision_cda(index, seed=seed, version=version))


def sample_evaluation(index: int = 0, *, seed: int = SAMPLE_SEED, version: int = 1) -> EvaluationDocument:
    """Sample evaluation ``index`` parsed as ``map_evaluation`` receives it."""
    return parse_evaluation(sample_evaluation_cda(index, seed=seed, version=version))


def _find(config: Config, finess_eg: str | None) -> tuple[LegalEntity, Establishment]:
    if finess_eg is not None:
        return config.establishment(finess_eg)
    entity = config.legal_entities[0]
    return entity, entity.establishments[0]


def inbound_context(config: Config | None = None, *, finess_eg: str | None = None, now: datetime | None = None,
                    worklist_task: dict[str, Any] | None = None) -> InboundContext:
    """The context of an inbound hook (``map_*``, ``before_store``, ``after_store``, ``on_document_rejected``).

    Args:
        config: default :func:`sample_config`.
        finess_eg: the establishment the data was read for (default: the first one configured).
        now: the time of the sync cycle (default :data:`SAMPLE_NOW`).
        worklist_task: the local work-list Task (``map_remote_status`` only).
    """
    config = config or sample_config()
    entity, establishment = _find(config, finess_eg)
    return InboundContext(config=config, legal_entity=entity, establishment=establishment,
                          source=sdo.PLUGIN_SOURCE, now=now or SAMPLE_NOW, worklist_task=worklist_task)


def outbound_context(config: Config | None = None, *, finess_eg: str | None = None,
                     worklist_task: dict[str, Any] | None = None,
                     decision: dict[str, Any] | None = None) -> OutboundContext:
    """The context of an outbound hook (``build_*``, ``before_send``, ``after_send``, ``on_send_error``)."""
    config = config or sample_config()
    entity, establishment = _find(config, finess_eg)
    return OutboundContext(config=config, legal_entity=entity, establishment=establishment,
                           worklist_task=worklist_task, decision=decision)


def status_change(context: OutboundContext | None = None, *, statut_esms: str = "40",
                  motif_esms: str | None = None, index: int = 0, **fields: Any) -> StatusChange:
    """A work-list status change (what ``build_esms_task`` receives) on sample decision ``index``.

    ``statut_esms`` / ``motif_esms`` are TRE_R357 / TRE_R358 codes (``40`` "en cours d'admission" by
    default); ``fields`` sets any other :class:`~vtdui.hookcontext.StatusChange` attribute.
    """
    context = context or outbound_context()
    decision = sample_dataset().decisions[_decision_index(index, SAMPLE_SEED)].decision
    values: dict[str, Any] = {
        "id_nat_decision": decision.id_nat_decision, "id_decision": decision.id_decision,
        "finess_eg": context.establishment.finess_eg, "task_id": "1", "task_version": "2",
        "statut_esms": statut_esms, "motif_esms": motif_esms,
        "date_statut_esms": SAMPLE_NOW.date().isoformat(),
    }
    values.update(fields)
    return StatusChange(**values)


def worklist_task(entries: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """The work-list Task among transaction ``entries`` (what ``map_decision`` returned).

    Raises:
        LookupError: there is none.
    """
    for entry in entries or ():
        resource = entry.get("resource")
        if isinstance(resource, dict) and worklist.is_worklist_task(resource):
            return resource
    raise LookupError("no work-list Task among the entries")


def user_saves(runtime: Runtime, task: Mapping[str, Any], statut_esms: str, motif_esms: str | None = None,
               when: date | None = None) -> list[OutboxItem]:
    """Save a work-list Task in HAPI as a DUI user would after setting its ESMS status; enqueue the change.

    The local model keeps the ESMS status in ``businessStatus`` (TRE_R357) and its reason in
    ``statusReason`` (TRE_R358). In production HAPI's REST hook hands the new version to vtdui's
    receiver; here it is handed over directly (:meth:`vtdui.emit.Emitter.enqueue_resource`), so a test
    needs no receiver. ``runtime.emitter.run_pending()`` then delivers.

    Returns:
        The outbox items of the change (pending, or failed when the built ESMSTask breaks the IG rules).
    """
    changed = copy.deepcopy(dict(task))
    changed.setdefault("meta", {}).pop("source", None)  # the user's change, not the plugin's own write
    changed["businessStatus"] = {"coding": [{"system": sdo.TRE_R357, "code": statut_esms}]}
    if motif_esms is not None:
        changed["statusReason"] = {"coding": [{"system": sdo.TRE_R358, "code": motif_esms}]}
    else:
        changed.pop("statusReason", None)
    changed["lastModified"] = (when or datetime.now(UTC).date()).isoformat()
    saved = runtime.store.update(changed, if_match=str(task["meta"]["versionId"]))
    return runtime.emitter.enqueue_resource(saved, via="test")


def hapi_base_url() -> str | None:
    """The FHIR base of a HAPI server to test against: ``$FHIR_BASE_URL`` if it answers, else ``None``.

    The pytest fixture ``vtdui_hapi`` adds a fallback: the project's HAPI launcher (``vtdui hapi build``
    once), started for the session.
    """
    url = os.environ.get("FHIR_BASE_URL", "").rstrip("/")
    if not url:
        return None
    try:
        answered = httpx.get(f"{url}/metadata", timeout=10).status_code == 200
    except httpx.HTTPError:
        answered = False
    if not answered:
        raise RuntimeError(f"FHIR_BASE_URL={url} is set but GET {url}/metadata does not answer 200")
    return url


class SimulatorSession:
    """The ViaTrajectoire simulator running in this process (HTTPS with mutual TLS, and its admin port).

    The admin methods are thin clients of the admin API (``/_admin``, plain HTTP on the loopback), the
    MDPH's side of ViaTrajectoire: publish decisions, serve a hostile document, post MDPH events and other
    establishments' statuses, arm faults, read what the DUI sent. Each raises ``AssertionError`` with the
    simulator's answer when it refuses.

    Args:
        data_dir: where its PKI, ``vtdui.toml`` and ``info.json`` go.
        seed: dataset seed.
        n_decisions: decisions published at start (``0``: add them with :meth:`new_decisions`).
        hapi_base_url: the HAPI server written in its ``vtdui.toml``.
    """

    def __init__(self, data_dir: Path, *, seed: int = SAMPLE_SEED, n_decisions: int = 0,
                 hapi_base_url: str | None = None) -> None:
        self.seed = seed
        options: dict[str, Any] = {"port": 0, "admin_port": 0}
        if hapi_base_url:
            options["hapi_base_url"] = hapi_base_url
        self.running: RunningSimulator = start_simulator(data_dir, seed=seed, n_decisions=n_decisions, **options)

    @property
    def fhir_base_url(self) -> str:
        """The ViaTrajectoire FHIR API (``https://127.0.0.1:<port>/fhir``)."""
        return self.running.fhir_base_url

    @property
    def admin_url(self) -> str:
        """The admin API (``http://127.0.0.1:<port>/_admin``)."""
        return self.running.admin_url

    @property
    def info(self) -> dict[str, Any]:
        """``GET /_admin/info``: URLs, client credentials, certificate files, legal entities, establishments."""
        return self.running.info

    def establishments(self) -> list[dict[str, Any]]:
        """Every establishment of the simulator (``finess_eg``, ``name``, ``is_esat``, ``units`` ...)."""
        return [est for entity in self.info["legal_entities"] for est in entity["establishments"]]

    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Call the admin API; return its JSON answer."""
        response = httpx.request(method, f"{self.admin_url}/{path}", json=body, params=params or None, timeout=60)
        assert response.status_code < 300, f"{method} /_admin/{path}: {response.status_code} {response.text}"
        return response.json()

    def new_decisions(self, notified_to: Sequence[str], count: int = 1) -> list[dict[str, Any]]:
        """Publish ``count`` new decisions notified to these establishments (flux 1 serves them)."""
        found: list[dict[str, Any]] = []
        for _ in range(count):
            found += self.admin("POST", "decisions", {"notified_to": list(notified_to)})["decisions"]
        return found

    def update_decision(self, id_nat_decision: str) -> dict[str, Any]:
        """Publish a new version of a decision's documents (the DUI reads it again)."""
        answer: dict[str, Any] = self.admin("POST", f"decisions/{id_nat_decision}/update")
        return answer

    def serve_document(self, id_nat_decision: str, content: bytes, kind: str = "decision") -> None:
        """Serve ``content`` (any bytes: a malformed or hostile CDA) as the decision's current document.

        The DUI keeps it aside (quarantine, ``on_document_rejected``); :meth:`update_decision` serves a
        regular document again.
        """
        response = httpx.put(f"{self.admin_url}/decisions/{id_nat_decision}/document", params={"kind": kind},
                             content=content, timeout=60)
        assert response.status_code == 200, response.text

    def event(self, id_nat_decision: str, **fields: Any) -> dict[str, Any]:
        """Post an MDPH event (``statut_esms`` 37, 46, 49, 54) or another establishment's status (``source="esms"``).

        Flux 5 serves it at the DUI's next sync. Returns the ESMSTask created.
        """
        task: dict[str, Any] = self.admin("POST", "events", {"id_nat_decision": id_nat_decision, **fields})["tasks"][0]
        return task

    def arm_fault(self, route: str, action: str = "status", count: int = 1, **options: Any) -> dict[str, Any]:
        """Make the next ``count`` requests matching ``route`` (``"POST /fhir/Task"``) misbehave.

        ``action``: ``status`` (with ``status=503``, ``retry_after=...``), ``delay`` (``delay=`` seconds),
        ``drop`` (close the connection), ``expire-token``.
        """
        rule: dict[str, Any] = self.admin("POST", "faults", {"route": route, "action": action, "count": count,
                                                             **options})
        return rule

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self.admin("DELETE", "faults")

    def received(self, since: int = 0) -> list[dict[str, Any]]:
        """What the DUI sent (method, path, ``struct_idnat``, body, validation, status), from request ``since``."""
        found: list[dict[str, Any]] = self.admin("GET", "received", since=since)["requests"]
        return found

    def write_config(self, path: Path, *, hapi_base_url: str, state_dir: Path,
                     establishments: Sequence[str] | None = None, hooks_dir: Path | None = None) -> Path:
        """Write a ``vtdui.toml`` for a DUI talking to this simulator and to ``hapi_base_url``.

        Args:
            path: the file to write.
            hapi_base_url: the HAPI server.
            state_dir: vtdui's state directory.
            establishments: FINESS EG to serve (default: all), with their ROR units.
            hooks_dir: the hooks directory (default: none).
        """
        info = self.info

        def s(value: object) -> str:
            return json.dumps(value, ensure_ascii=False)

        lines = [f"state_dir = {s(str(state_dir))}", f"hooks_dir = {s(str(hooks_dir) if hooks_dir else '')}", "",
                 "[logging]", 'level = "WARNING"', "", "[hapi]", f"base_url = {s(hapi_base_url)}", "",
                 "[viatrajectoire]", f"base_url = {s(info['fhir_base_url'])}", f"token_url = {s(info['token_url'])}",
                 f"client_id = {s(info['client_id'])}", f"client_secret = {s(info['client_secret'])}",
                 f"ca_file = {s(info['ca_cert'])}", "", "[retry]", "attempts = 2", "base_delay = 0.1",
                 "max_delay = 1.0", ""]
        for entity in info["legal_entities"]:
            chosen = [e for e in entity["establishments"] if establishments is None or e["finess_eg"] in establishments]
            if not chosen:
                continue
            lines += ["[[legal_entities]]", f"finess_ej = {s(entity['finess_ej'])}", f"name = {s(entity['name'])}",
                      f"cert_file = {s(entity['cert_file'])}", f"key_file = {s(entity['key_file'])}", ""]
            for est in chosen:
                lines += ["[[legal_entities.establishments]]", f"finess_eg = {s(est['finess_eg'])}",
                          f"name = {s(est['name'])}", f"is_esat = {'true' if est['is_esat'] else 'false'}", ""]
                for unit in est.get("units", []):
                    lines += ["[[legal_entities.establishments.units]]"]
                    lines += [f"{key} = {s(unit[key])}" for key in
                              ("id_unite", "nom_unite", "categorie_organisation", "mode_prise_charge",
                               "temporalite_accueil") if unit.get(key) is not None]
                    lines.append("")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines), encoding="utf-8")
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """Stop both listeners."""
        self.running.stop()

    def __enter__(self) -> SimulatorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
