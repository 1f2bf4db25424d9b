"""Play the rehearsal's scenarios on a running DUI (HAPI + vtdui) and ViaTrajectoire (the simulator).

The runner has three roles, kept apart:

- the DUI user: :class:`~vtdui.rehearsal.actions.DuiScreen` (plain FHIR on HAPI, never a call into vtdui);
- vtdui itself, as ``vtdui run`` would run it: its receiver gets HAPI's Subscription deliveries (started by
  the command), the runner turns the outbox worker (``emitter.run_pending``) and the inbound cycle;
- the witness: what ViaTrajectoire received (the simulator's admin API), the outbox item and its HTTP
  exchanges, each payload checked against the IG rules (vtdui's conformance checker), the work list
  before and after.

A step that does not get what it must fails with the step and, when a rule is broken, the rule named.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from vtdui import sdo
from vtdui.conformance import check_esms_consent, check_esms_task
from vtdui.evidence import redact_health
from vtdui.outbox import ItemState, OutboxItem
from vtdui.rehearsal.actions import DuiScreen, SavedVersion
from vtdui.rehearsal.scenarios import (
    GiveConsent,
    NothingSent,
    PublishJdv,
    Refused,
    RemoteEvent,
    RetryKept,
    Save,
    Scenario,
    Step,
    UpdateJdv,
    Worklist,
)
from vtdui.runtime import Runtime
from vtdui.terminology import StateTerminology, Terminology, update_from_server

__all__ = ["Rehearsal", "ScenarioResult", "StepResult", "status_key"]

#: Seconds a step waits for HAPI's delivery and ViaTrajectoire's answer (or for the evaluation).
STEP_TIMEOUT = 90.0


def _codes(concept: Any) -> list[str]:
    return [str(c.get("code")) for c in (concept or {}).get("coding", []) if c.get("code")]


def _inputs(task: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in task.get("input", []):
        type_ = item.get("type") or {}
        name = next(iter(_codes(type_)), type_.get("text"))
        for key, value in item.items():
            if key.startswith("value"):
                if key == "valueCodeableConcept":
                    out[str(name)] = next(iter(_codes(value)), None)
                else:
                    out[str(name)] = value.get("value") if isinstance(value, dict) else value
    return out


def status_key(task: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """``(statutESMS, motifESMS, statutUnite, motifUnite)`` of an ESMSTask."""
    values = _inputs(task)
    return (values.get(sdo.STATUT_ESMS), values.get(sdo.MOTIF_ESMS), values.get(sdo.STATUT_UNITE),
            values.get(sdo.MOTIF_UNITE))


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class StepResult:
    """What one step did and what was checked."""

    label: str
    ok: bool = False
    failure: str | None = None
    rule: str | None = None
    #: epoch seconds of the timeline's points: save, queued (vtdui), sent (to ViaTrajectoire), answered
    times: dict[str, float] = field(default_factory=dict)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    payload: dict[str, Any] | None = None
    payload_kind: str | None = None


@dataclass
class ScenarioResult:
    """One scenario's verdict (``pass``, ``fail`` or ``not run``) and evidence."""

    name: str
    title: str
    verdict: str
    reason: str | None = None
    id_nat: str | None = None
    finess_eg: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def failing(self) -> StepResult | None:
        """The step that failed, if any."""
        return next((s for s in self.steps if not s.ok), None)


class StepFailedError(Exception):
    """A step did not get what it must (``rule``: the IG rule broken, when one is)."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


def _rules_of(outcome: dict[str, Any] | None) -> list[str]:
    texts = []
    for issue in (outcome or {}).get("issue", []):
        if issue.get("severity") in ("error", "fatal"):
            texts.append(str((issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""))
    return texts


class Rehearsal:
    """The scenarios on one DUI (``runtime``, its HAPI) and one ViaTrajectoire (simulated, or configured)."""

    def __init__(self, runtime: Runtime, admin_url: str | None, *,
                 progress: Callable[[str], None] = print) -> None:
        """Open the DUI screen on HAPI and find the establishments to play on.

        Args:
            runtime: vtdui's runtime (its configuration, HAPI, outbox, exchange log).
            admin_url: the simulator's admin API on the embedded default; ``None`` against a configured
                ViaTrajectoire: the establishments then come from the configuration, the decisions from what
                that environment notifies, and the checks from vtdui's exchange log only.
            progress: where the progress lines go.
        """
        self.runtime = runtime
        self.admin_url = admin_url.rstrip("/") if admin_url else None
        self.progress = progress
        self.screen = DuiScreen(runtime.config.hapi.base_url)
        #: decisions in status 39 no scenario took (named in the instructions of the skipped ones)
        self._spare: list[str] = []
        self._others: list[str] = []
        #: work-list items ``(idNat_Decision, FINESS EG)`` the MDPH cancelled (49), found after the cycle
        self._cancelled: list[tuple[str, str]] = []
        #: saves vtdui kept failed, per decision (the retry step sends them again)
        self._kept: dict[str, SavedVersion] = {}
        #: the FHIR terminology server the JDV update reads (the simulator's, on the embedded default)
        self.terminology_url: str | None = None
        if self.admin_url is not None:
            info = httpx.get(f"{self.admin_url}/info", timeout=30).json()
            self.terminology_url = str(info["terminology_url"])
            establishments = info["legal_entities"][0]["establishments"]
            esat = next(e for e in establishments if e["is_esat"] and e["units"])
            other = next(e for e in establishments if e["finess_eg"] != esat["finess_eg"])
            self.places = {"esat": str(esat["finess_eg"]), "other": str(other["finess_eg"])}
            self.unit = str(esat["units"][0]["id_unite"])
            return
        configured = [eg for entity in runtime.config.legal_entities for eg in entity.establishments]
        with_units = next((eg for eg in configured if eg.is_esat and eg.units), None)
        others = [eg for eg in configured if eg is not with_units]
        if not others:
            raise ValueError("the configuration declares no establishment to play the rehearsal on")
        #: without a configured ESAT with ROR units the unit scenarios are skipped (see :meth:`skip_reason`)
        self.places = {"other": str(others[0].finess_eg)}
        #: the establishments "other" may be (:meth:`_pick` takes the one with the most items in status 39)
        self._others = [str(eg.finess_eg) for eg in others]
        self.unit = ""
        if with_units is not None:
            self.places["esat"] = str(with_units.finess_eg)
            self.unit = str(with_units.units[0].id_unite)

    @property
    def configured(self) -> bool:
        """Whether the rehearsal runs against a configured ViaTrajectoire (no simulator admin API)."""
        return self.admin_url is None

    def skip_reason(self, scenario: Scenario, candidate: str | None = None) -> str | None:
        """Why ``scenario`` cannot be played against a configured ViaTrajectoire, with what to do (else ``None``).

        Args:
            scenario: the scenario.
            candidate: a decision in status 39 the instruction can name.
        """
        if not self.configured:
            return None
        if any(isinstance(step, (PublishJdv, UpdateJdv)) for step in scenario.steps):
            # a real environment's JDV come from the ANS's terminology server, not from ViaTrajectoire
            return ("the JDV come from the ANS's terminology server, which the rehearsal cannot make publish a "
                    "new version: run `vtdui terminology update --server <the ANS terminology server FHIR base>` "
                    "(then `vtdui terminology show` lists the versions) to refresh vtdui's JDV")
        decision = f"decision {candidate}" if candidate else "a decision in status 39 notified to it"
        rerun = f"then run `vtdui rehearse --config F --only {scenario.name}`"
        # what the rehearsal cannot see on its own: played in the DUI, the item shown after the next cycle
        shown = "then show the work-list item after the next cycle (vtdui status, the DUI's screen)"
        if scenario.reprise:
            return ("needs a decision taken over in ViaTrajectoire's screens (mode reprise): enter statuses "
                    f"{', '.join(s for s, _ in scenario.reprise)} on a new decision for establishment "
                    f"{self.places['other']} in ViaTrajectoire before its first synchronisation, {shown}")
        if self._is_mdph(scenario):
            return (f"needs an MDPH action: ask the MDPH test contact to cancel (status 49) {decision} of "
                    f"establishment {self.places['other']}, {rerun}")
        if scenario.shared or any(isinstance(step, RemoteEvent) for step in scenario.steps):
            return ("needs a second establishment's action: ask the ViaTrajectoire test contact for a decision "
                    f"notified to {self.places['other']} and to another ESMS, and that ESMS to set status 41 on it, "
                    f"{shown}")
        if scenario.place not in self.places:
            return ("needs an ESAT with its ROR units in the configuration (is_esat = true and its "
                    "[[legal_entities.establishments.units]]); add it, " + rerun)
        return None

    def close(self) -> None:
        """Close the DUI screen's client."""
        self.screen.close()

    # -- the whole run ---------------------------------------------------------------------------------

    def run(self, scenarios: list[Scenario]) -> list[ScenarioResult]:
        """Get each scenario's decision, run one inbound cycle, then play the scenarios in order.

        On the embedded default each scenario's decision is created in the simulator; against a configured
        ViaTrajectoire it is a work-list item in status 39 among the decisions that environment notified
        (after one inbound cycle), one per scenario; a scenario that needs an action outside the DUI there is
        ``skipped`` with what to do.
        """
        if self.configured:
            self.progress("inbound cycle (flux 1, 3, 5): the decisions ViaTrajectoire notified")
            self.runtime.sync.run_once()
            decisions = self._pick(scenarios)
        else:
            decisions = self._create(scenarios)
            self.progress(f"{len(decisions)} decisions notified by ViaTrajectoire; inbound cycle (flux 1, 3, 5)")
            self.runtime.sync.run_once()
        results = []
        for index, scenario in enumerate(scenarios, 1):
            self.progress(f"[{index}/{len(scenarios)}] {scenario.name}: {scenario.title}")
            id_nat = decisions.get(scenario.name)
            reason = (None if self._is_mdph(scenario) and self._cancelled
                      else self.skip_reason(scenario, next(iter(self._spare), None)))
            if reason is None and id_nat is None:
                reason = (f"no work-list item of establishment {self.places.get(scenario.place)} left in status 39: "
                          "ask the ViaTrajectoire test contact for more decisions notified to it, then run "
                          f"`vtdui rehearse --config F --only {scenario.name}`")
            if reason is not None:
                result = ScenarioResult(scenario.name, scenario.title, "skipped", reason=reason,
                                        finess_eg=self.places.get(scenario.place))
                self.progress(f"    SKIPPED: {reason}")
                results.append(result)
                continue
            assert id_nat is not None
            if self.configured and self._is_mdph(scenario):
                # the cancellation was made by the MDPH: only the work list's 49 is left to check
                eg = self._cancelled[0][1]
                result = self.play(replace(scenario, steps=tuple(s for s in scenario.steps
                                                                 if isinstance(s, Worklist))), id_nat, eg)
            else:
                result = self.play(scenario, id_nat)
            step = result.failing
            self.progress(f"    {result.verdict.upper()} ({result.seconds:.1f} s)" +
                          (f": step '{step.label}': {step.failure}" if step else ""))
            results.append(result)
        return results

    def _create(self, scenarios: list[Scenario]) -> dict[str, str]:
        """Create each scenario's decision in the simulator (embedded default)."""
        assert self.admin_url is not None
        decisions: dict[str, str] = {}
        for scenario in scenarios:
            eg = self.places[scenario.place]
            notified = [eg] + ([self.places["esat"]] if scenario.shared else [])
            response = httpx.post(f"{self.admin_url}/decisions", json={"notified_to": notified}, timeout=30)
            response.raise_for_status()
            decisions[scenario.name] = str(response.json()["decisions"][0]["id_nat_decision"])
            if scenario.reprise:
                statuses = [{"statut_esms": statut, **({"motif_esms": motif} if motif else {})}
                            for statut, motif in scenario.reprise]
                response = httpx.post(f"{self.admin_url}/decisions/{decisions[scenario.name]}/reprise",
                                      json={"finess_eg": eg, "statuses": statuses}, timeout=30)
                response.raise_for_status()
        return decisions

    def _pick(self, scenarios: list[Scenario]) -> dict[str, str]:
        """One work-list item in status 39 per playable scenario, each decision used once (configured mode)."""
        waiting = {eg: self.screen.worklist_in_status(eg, "39") for eg in self._others}
        self.places["other"] = max(self._others, key=lambda eg: len(waiting[eg]))
        free = {place: waiting.get(eg) or self.screen.worklist_in_status(eg, "39") for place, eg in self.places.items()}
        used: set[str] = set()
        decisions: dict[str, str] = {}
        self._cancelled = [(d, eg) for eg in dict.fromkeys([*self._others, *self.places.values()])
                           for d in self.screen.worklist_in_status(eg, "49")]
        for scenario in scenarios:
            if self._is_mdph(scenario) and self._cancelled:
                decisions[scenario.name] = self._cancelled[0][0]
                continue
            if self.skip_reason(scenario) is not None:
                continue
            needs_fresh = any(isinstance(step, GiveConsent) for step in scenario.steps)
            for id_nat in free.get(scenario.place, []):
                if id_nat in used or (needs_fresh and self.screen.evaluations(id_nat)):
                    continue
                decisions[scenario.name] = id_nat
                used.add(id_nat)
                break
        self._spare = [d for d in free.get("other", []) if d not in used]
        self.progress(f"{len(decisions)} work-list item(s) in status 39 picked among the decisions notified")
        return decisions

    @staticmethod
    def _is_mdph(scenario: Scenario) -> bool:
        return any(isinstance(step, RemoteEvent) and step.source == "mdph" for step in scenario.steps)

    def play(self, scenario: Scenario, id_nat: str, eg: str | None = None) -> ScenarioResult:
        """Play one scenario on its decision (for ``eg``: default, its place's); its first failing step ends it."""
        eg = eg or self.places[scenario.place]
        started = time.monotonic()
        result = ScenarioResult(scenario.name, scenario.title, "pass", id_nat=id_nat, finess_eg=eg)
        result.before = self.screen.worklist_item(id_nat, eg)
        for step in scenario.steps:
            outcome = StepResult(step.label)
            result.steps.append(outcome)
            try:
                self._step(step, outcome, id_nat, eg)
                outcome.ok = True
            except StepFailedError as exc:
                outcome.failure, outcome.rule = str(exc), exc.rule
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
                outcome.failure = f"{type(exc).__name__}: {exc}"
            if not outcome.ok:
                result.verdict = "fail"
                break
        result.after = self.screen.worklist_item(id_nat, eg)
        result.seconds = time.monotonic() - started
        return result

    # -- steps -----------------------------------------------------------------------------------------

    def _item(self, id_nat: str, eg: str) -> dict[str, Any]:
        task = self.screen.worklist_item(id_nat, eg)
        if task is None:
            raise StepFailedError(f"decision {id_nat} is not in the work list of {eg}")
        return task

    def _step(self, step: Step, outcome: StepResult, id_nat: str, eg: str) -> None:
        if isinstance(step, Worklist):
            codes = _codes(self._item(id_nat, eg).get("businessStatus"))
            outcome.checks.append({"check": f"work-list status {step.statut}", "found": codes,
                                   "ok": step.statut in codes})
            if step.statut not in codes:
                raise StepFailedError(f"the work list shows status {codes or 'none'}, expected {step.statut}")
        elif isinstance(step, Save):
            task = self._item(id_nat, eg)
            saved = self.screen.save_status(task, statut=step.statut, motif=step.motif,
                                            statut_unite=step.statut_unite, motif_unite=step.motif_unite,
                                            id_unite=self.unit if step.statut_unite else None)
            sent = self._delivered(saved, outcome, "esms-task", eg)
            self._check_sent(step, sent, outcome, id_nat)
        elif isinstance(step, Refused):
            self._refused(step, outcome, id_nat, eg)
        elif isinstance(step, PublishJdv):
            self._publish(step, outcome)
        elif isinstance(step, UpdateJdv):
            self._update_jdv(outcome)
        elif isinstance(step, RetryKept):
            kept = self._kept.pop(id_nat, None)
            if kept is None:
                raise StepFailedError("no save of this decision was kept failed: nothing to retry")
            item = self.runtime.outbox.backend.get_by_key(kept.key)
            if item is None:
                raise StepFailedError(f"the outbox holds no item for {kept.key}")
            started = time.time()
            self.runtime.outbox.retry(item.id)  # what `vtdui outbox retry ID` does
            outcome.times["save"] = started
            outcome.exchanges.append({"label": f"operator: vtdui outbox retry {item.id}", "method": "-",
                                      "url": kept.key, "status": "pending", "started": started,
                                      "duration": time.time() - started})
            sent = self._delivered(kept, outcome, "esms-task", eg, record_save=False)
            self._check_sent(step.save, sent, outcome, id_nat)
        elif isinstance(step, GiveConsent):
            if self.screen.evaluations(id_nat):
                raise StepFailedError("HAPI already holds the evaluation before the consent: the step would prove "
                                      "nothing (ViaTrajectoire serves evaluations without consent?)")
            saved = self.screen.give_consent(self._item(id_nat, eg), eg)
            self._delivered(saved, outcome, "esms-consent", eg)
            self._received(id_nat, "Consent", outcome, lambda body: True)
            documents = self._wait(lambda: self._cycle_then(lambda: self.screen.evaluations(id_nat)),
                                   "the evaluation (flux 3) in HAPI after the consent")
            outcome.checks.append({"check": "evaluation (flux 3) in HAPI", "found": len(documents), "ok": True})
        elif isinstance(step, NothingSent):
            self.runtime.emitter.run_pending()
            items = self.runtime.outbox.list(id_nat_decision=id_nat)
            requests = ([] if self.admin_url is None else
                        httpx.get(f"{self.admin_url}/received", timeout=30).json()["requests"])
            posted = [r for r in requests if r.get("method") == "POST" and id_nat in json.dumps(r.get("body"))]
            outcome.checks.append({"check": "nothing queued by vtdui nor received by ViaTrajectoire",
                                   "ok": not items and not posted, "queued": len(items), "received": len(posted)})
            if items or posted:
                raise StepFailedError(f"{len(items)} item(s) queued, {len(posted)} received by ViaTrajectoire")
        elif isinstance(step, RemoteEvent):
            self._remote(step, outcome, id_nat, eg)

    def _check_sent(self, step: Save, sent: dict[str, Any], outcome: StepResult, id_nat: str) -> None:
        """Check the statuses sent are the save's and that ViaTrajectoire accepted them."""
        expected = (step.statut, step.motif, step.statut_unite, step.motif_unite)
        found = status_key(sent)
        outcome.checks.append({"check": "statuses received by ViaTrajectoire", "expected": list(expected),
                               "found": list(found), "ok": found == expected})
        if found != expected:
            raise StepFailedError(f"ViaTrajectoire received {found}, expected {expected}")
        self._received(id_nat, "Task", outcome, lambda body: status_key(body) == expected)

    def _refused(self, step: Refused, outcome: StepResult, id_nat: str, eg: str) -> None:
        """The save must be kept failed by vtdui for ``step.rule``, and ViaTrajectoire receive nothing."""
        save = step.save
        saved = self.screen.save_status(self._item(id_nat, eg), statut=save.statut, motif=save.motif,
                                        statut_unite=save.statut_unite, motif_unite=save.motif_unite,
                                        id_unite=self.unit if save.statut_unite else None)
        try:
            self._delivered(saved, outcome, "esms-task", eg)
        except StepFailedError as exc:
            rules: list[str] = next((c.get("errors", []) for c in outcome.checks
                                     if c.get("check") == "IG rules of the payload"),
                         [])
            if not any(str(r).startswith(step.rule) for r in rules):
                raise StepFailedError(f"vtdui kept it for another rule than {step.rule}: {exc}", rule=exc.rule) from exc
            # the failed rule check is what this step expects: record it as such
            outcome.checks[-1] = {**outcome.checks[-1], "check": f"kept failed by vtdui for {step.rule}", "ok": True}
        else:
            raise StepFailedError(f"vtdui sent a save that breaks {step.rule} with its JDV", rule=step.rule)
        self._kept[id_nat] = saved
        if self.admin_url is not None:
            requests = httpx.get(f"{self.admin_url}/received", timeout=30).json()["requests"]
            posted = [r for r in requests if r.get("method") == "POST" and id_nat in json.dumps(r.get("body"))]
            outcome.checks.append({"check": "nothing received by ViaTrajectoire", "ok": not posted,
                                   "received": len(posted)})
            if posted:
                raise StepFailedError(f"ViaTrajectoire received {len(posted)} request(s) about {id_nat}")

    def _publish(self, step: PublishJdv, outcome: StepResult) -> None:
        """Publish the new JDV_J251 and ASS_A32 versions on the simulator's terminology endpoint."""
        if self.admin_url is None:
            raise StepFailedError("a JDV publication cannot be played against a configured environment")
        version = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        calls = [("terminology/valuesets", {"url": sdo.JDV_J251, "version": version, "add": [
                     {"system": sdo.TRE_R358, "code": step.motif, "display": step.display}]}),
                 ("terminology/conceptmaps", {"url": sdo.ASS_A32, "version": version, "add": [
                     {"source": status, "target": step.motif} for status in step.statuses]})]
        for path, body in calls:
            started = time.time()
            response = httpx.post(f"{self.admin_url}/{path}", json=body, timeout=30)
            outcome.times.setdefault("save", started)
            outcome.exchanges.append({"label": "terminology server publication (simulator admin)", "method": "POST",
                                      "url": f"{self.admin_url}/{path}", "status": response.status_code,
                                      "started": started, "duration": time.time() - started, "request": body,
                                      "response": response.json() if response.content else None})
            if response.status_code != 200:
                raise StepFailedError(f"the simulator refused the publication: HTTP {response.status_code}")
        outcome.checks.append({"check": "published on the terminology server", "ok": True, "version": version,
                               "terminology server": self.terminology_url})

    def _update_jdv(self, outcome: StepResult) -> None:
        """Refresh vtdui's JDV_J251 and ASS_A32 from the terminology server, as ``vtdui terminology update``."""
        if self.terminology_url is None:
            raise StepFailedError("no terminology server to update from")
        state_dir = self.runtime.config.state_dir
        before = Terminology.load(state_dir=state_dir)
        started = time.time()
        report = update_from_server(self.terminology_url, [sdo.JDV_J251, sdo.ASS_A32], state_dir=state_dir)
        after = Terminology.load(state_dir=state_dir)
        outcome.times["save"] = started
        outcome.exchanges.append({"label": "vtdui terminology update", "method": "GET",
                                  "url": self.terminology_url, "status": "errors" if report.errors else "ok",
                                  "started": started, "duration": time.time() - started,
                                  "response": str(report).splitlines()})
        versions = {"JDV_J251": [before.valueset_version(sdo.JDV_J251), after.valueset_version(sdo.JDV_J251)],
                    "ASS_A32": [before.a32_version, after.a32_version]}
        changed = all(old != new for old, new in versions.values())
        outcome.checks.append({"check": "JDV versions before -> after the update", "ok": changed and not report.errors,
                               **{name: f"{old} -> {new}" for name, (old, new) in versions.items()},
                               "errors": [c.summary() for c in report.errors]})
        if report.errors:
            raise StepFailedError(f"the terminology update failed: {report.errors[0].summary()}")
        if not changed:
            raise StepFailedError(f"the terminology update changed no version: {versions}")

    def _cycle_then(self, probe: Callable[[], Any]) -> Any:
        self.runtime.sync.run_once()
        return probe()

    def _wait(self, probe: Callable[[], Any], what: str, timeout: float = STEP_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StepFailedError(f"gave up waiting {timeout:.0f} s for {what}")
            time.sleep(0.1)

    def _delivered(self, saved: SavedVersion, outcome: StepResult, kind: str, eg: str, *,
                   record_save: bool = True) -> dict[str, Any]:
        """Wait for HAPI's delivery and vtdui's send of ``saved``; check the payload; return the body sent.

        ``record_save``: put the DUI save in the step's timeline (not for a retry of a save kept failed).
        """
        if record_save:
            outcome.times["save"] = saved.started
            outcome.exchanges.append({"label": "DUI save", "method": saved.method, "url": saved.url,
                                      "status": saved.status, "started": saved.started, "duration": saved.duration,
                                      "request": redact_health(saved.resource)})
        outbox = self.runtime.outbox

        def settled() -> OutboxItem | None:
            self.runtime.emitter.run_pending()
            item = outbox.backend.get_by_key(saved.key)
            return item if item is not None and item.state in (ItemState.SENT, ItemState.FAILED) else None

        item: OutboxItem = self._wait(settled, f"HAPI's delivery of {saved.key} and vtdui's send")
        queued = _epoch(item.first_enqueued_at.isoformat())
        if queued is not None:
            outcome.times["queued"] = queued
        exchanges = self.runtime.exchanges.for_item(item.id)
        post = next((e for e in reversed(exchanges) if e.method == "POST"), None)
        if post is not None:
            sent_at = _epoch(post.started_at)
            if sent_at is not None:
                outcome.times["sent"] = sent_at
                outcome.times["answered"] = sent_at + post.duration
            outcome.exchanges.append({"label": "vtdui -> ViaTrajectoire", "method": post.method, "url": post.url,
                                      "status": post.status, "started": sent_at, "duration": post.duration,
                                      **redact_health(post.as_dict())})
        if item.state is ItemState.FAILED:
            rules = _rules_of(item.outcome) or [item.last_error or "refused"]
            outcome.checks.append({"check": "IG rules of the payload", "ok": False, "errors": rules})
            raise StepFailedError(f"vtdui did not send it: {rules[0]}", rule=rules[0].split(":", 1)[0])
        body: dict[str, Any] = item.payload
        if post is not None and post.request_body:
            body = json.loads(post.request_body)
        # the JDV as vtdui has them now (shipped snapshot + `vtdui terminology update`): a code a newer JDV
        # version added is checked against that version
        terminology = StateTerminology(self.runtime.config.state_dir).current()
        violations = (check_esms_task(body, expected_struct="1" + eg, terminology=terminology) if kind == "esms-task"
                      else check_esms_consent(body))
        errors = [f"{v.rule}: {v.message}" for v in violations if v.severity == "error"]
        outcome.checks.append({"check": "IG rules of the payload (vtdui's conformance checker)", "ok": not errors,
                               "errors": errors,
                               "warnings": [f"{v.rule}: {v.message}" for v in violations if v.severity != "error"]})
        outcome.payload, outcome.payload_kind = redact_health(body), kind
        if errors:
            raise StepFailedError(f"the payload breaks {errors[0]}", rule=errors[0].split(":", 1)[0])
        return body

    def _received(self, id_nat: str, resource_type: str, outcome: StepResult,
                  matches: Callable[[dict[str, Any]], bool]) -> None:
        """Check ViaTrajectoire holds an accepted POST of ``resource_type`` about ``id_nat`` matching.

        Against a configured ViaTrajectoire (no admin API) the witness is vtdui's exchange log: the answer
        to the POST, which must be 201 (the payload's rule check was done on the body sent).
        """
        if self.admin_url is None:
            answer = next((e.get("status") for e in reversed(outcome.exchanges)
                           if e.get("label") == "vtdui -> ViaTrajectoire"), None)
            outcome.checks.append({"check": f"{resource_type} accepted by ViaTrajectoire (vtdui's exchange log)",
                                   "ok": answer == 201, "found": answer})
            if answer != 201:
                raise StepFailedError(f"ViaTrajectoire answered {answer} to the {resource_type} POST, not 201")
            return
        requests = httpx.get(f"{self.admin_url}/received", timeout=30).json()["requests"]
        found = [r for r in requests if r.get("method") == "POST" and str(r.get("path", "")).endswith(
            "/" + resource_type) and id_nat in json.dumps(r.get("body")) and matches(r.get("body") or {})]
        ok = bool(found) and found[-1].get("status") == 201
        errors = [v for v in (found[-1].get("validation", []) if found else []) if v.get("severity") == "error"]
        outcome.checks.append({"check": f"{resource_type} received and accepted by ViaTrajectoire",
                               "ok": ok and not errors, "found": found[-1].get("status") if found else None,
                               "errors": [f"{e.get('rule')}: {e.get('message')}" for e in errors]})
        if not ok:
            raise StepFailedError(f"ViaTrajectoire holds no accepted {resource_type} for {id_nat}")
        if errors:
            raise StepFailedError(f"ViaTrajectoire's check: {errors[0].get('rule')}", rule=str(errors[0].get("rule")))

    def _remote(self, step: RemoteEvent, outcome: StepResult, id_nat: str, eg: str) -> None:
        if self.admin_url is None:
            raise StepFailedError("an event in ViaTrajectoire cannot be played against a configured environment")
        reporter = eg if step.source == "mdph" else self.places["esat"]
        body = {"id_nat_decision": id_nat, "source": step.source, "finess_eg": reporter, "statut_esms": step.statut}
        if step.motif:
            body["motif_esms"] = step.motif
        started = time.time()
        response = httpx.post(f"{self.admin_url}/events", json=body, timeout=30)
        outcome.times["save"] = started
        outcome.exchanges.append({"label": "ViaTrajectoire event (simulator admin)", "method": "POST",
                                  "url": f"{self.admin_url}/events", "status": response.status_code,
                                  "started": started, "duration": time.time() - started, "request": body})
        if response.status_code != 201:
            raise StepFailedError(f"the simulator refused the event: HTTP {response.status_code}")
        cycle = time.time()
        self.runtime.sync.run_once()
        outcome.times["sent"], outcome.times["answered"] = cycle, time.time()
        task = self._item(id_nat, eg)
        if step.source == "mdph":
            codes = _codes(task.get("businessStatus"))
            ok = step.statut in codes
            outcome.checks.append({"check": f"work-list status {step.statut} after flux 5", "found": codes, "ok": ok})
            if not ok:
                raise StepFailedError(f"the work list shows {codes or 'no status'}, expected {step.statut}")
            return
        seen = [self._flat(ext) for ext in task.get("extension", [])]
        ok = any(s.get("idNat_Struct") == "1" + reporter and s.get("statutESMS") == step.statut for s in seen)
        outcome.checks.append({"check": f"status {step.statut} of establishment {reporter} on the work-list item",
                               "found": seen, "ok": ok})
        if not ok:
            raise StepFailedError(f"the work-list item does not show {reporter}'s status {step.statut}")

    @staticmethod
    def _flat(extension: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for part in extension.get("extension", []) if isinstance(extension, dict) else []:
            for key, value in part.items():
                if key == "valueCoding":
                    record[str(part.get("url"))] = value.get("code")
                elif key.startswith("value"):
                    record[str(part.get("url"))] = value.get("value") if isinstance(value, dict) else value
        return record
