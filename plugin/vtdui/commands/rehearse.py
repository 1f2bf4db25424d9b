"""``vtdui rehearse``: the ViaTrajectoire scenarios of the referencing on the embedded default, with evidence.

Starts a local HAPI server (the launcher, as ``vtdui demo``) and the ViaTrajectoire simulator, runs vtdui's
receiver with its Subscriptions in HAPI, plays the scenarios as a DUI does and writes the evidence in
``--dir``. With ``--config F`` it plays against the configured HAPI and ViaTrajectoire test environment
instead (the vendor's certificate and OAuth2 client, as ``vtdui run``): the decisions are the ones that
environment notified, the checks come from vtdui's exchange log, and the scenarios that need an action
outside the DUI (MDPH, another establishment, mode reprise) are skipped with what to do. Exit 1 when a
scenario fails, naming the step and the rule broken; 0 when every scenario played passed (skips included).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vtdui import hapi_server
from vtdui.config import load_config
from vtdui.errors import VtduiError
from vtdui.logs import setup_logging

if TYPE_CHECKING:
    from vtdui.rehearsal.runner import ScenarioResult
    from vtdui.rehearsal.scenarios import Scenario
    from vtdui.store import HapiStore

__all__ = ["rehearse"]


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("vtdui-rehearsal"),
              show_default=True, help="Where the evidence (report.html, payloads/, traces/) and the run data go.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Play against the HAPI and ViaTrajectoire test environment of this configuration.")
@click.option("--only", "only", multiple=True, metavar="NAME", help="Play only this scenario (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option("--memory", default="1g", show_default=True, help="HAPI maximum Java heap.")
def rehearse(directory: Path, config_path: Path | None, only: tuple[str, ...], list_only: bool, memory: str) -> None:
    """Play the ViaTrajectoire referencing scenarios as a DUI does and write the evidence to hand in."""
    from vtdui.rehearsal.scenarios import NOT_ON_EMBEDDED, SCENARIOS, by_name

    if list_only:
        for scenario in SCENARIOS:
            click.echo(f"{scenario.name:20} {scenario.title}")
        for name, reason in NOT_ON_EMBEDDED.items():
            click.echo(f"{name:20} not run: {reason}")
        return
    try:
        scenarios = by_name(list(only))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    not_run = {n: r for n, r in NOT_ON_EMBEDDED.items() if not only or n in only}
    setup_logging("WARNING", "text")
    directory = directory.resolve()
    run_dir = directory / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    results = (_run_configured(config_path, scenarios) if config_path is not None
               else _run_embedded(run_dir, scenarios, memory))

    from vtdui.rehearsal.report import write_evidence

    report = write_evidence(results, not_run, directory)
    click.echo(f"report: {report}")
    failed = [r for r in results if r.verdict == "fail"]
    skipped = [r for r in results if r.verdict == "skipped"]
    passed = len(results) - len(failed) - len(skipped)
    click.echo(f"{passed} passed, {len(failed)} failed, " + (f"{len(skipped)} skipped, " if skipped else "") +
               f"{len(not_run)} not run")
    for result in skipped:
        click.echo(f"skipped {result.name}: {result.reason}")
    if failed:
        lines = []
        for result in failed:
            step = result.failing
            lines.append(f"{result.name}: step '{step.label if step else '?'}': "
                         f"{step.failure if step else 'failed'}" +
                         (f" [rule {step.rule}]" if step and step.rule else ""))
        raise click.ClickException("scenario(s) failed:\n  " + "\n  ".join(lines))


def _run_configured(config_path: Path, scenarios: list[Scenario]) -> list[ScenarioResult]:
    """Play ``scenarios`` on the configured HAPI and ViaTrajectoire, vtdui's receiver running in-process."""
    from rich.console import Console

    from vtdui.commands.demo import _receiver
    from vtdui.rehearsal.runner import Rehearsal
    from vtdui.runtime import Runtime

    try:
        config = load_config(config_path)
    except VtduiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"against the configured environment: HAPI {config.hapi.base_url}, "
               f"ViaTrajectoire {config.viatrajectoire.base_url}")
    # the receiver runs here on a loopback port: vtdui's Subscriptions (the ids `vtdui setup` installs) point at
    # it during the run; at the end they point again where `vtdui setup` had left them, or stay off
    with Runtime(config) as runtime:
        previous = _active_endpoint(runtime.store)
        try:
            with _receiver(runtime, Console()):
                try:
                    rehearsal = Rehearsal(runtime, None, progress=click.echo)
                except ValueError as exc:
                    raise click.ClickException(str(exc)) from exc
                try:
                    return rehearsal.run(scenarios)
                finally:
                    rehearsal.close()
        finally:
            _restore_subscriptions(runtime.store, previous, config.receiver.secret)


def _active_endpoint(store: HapiStore) -> str | None:
    """The endpoint vtdui's Subscriptions deliver to before the rehearsal, when they are on."""
    from vtdui.receiver import subscription_templates

    for template in subscription_templates():
        current = store.read("Subscription", str(template["id"]))
        endpoint = ((current or {}).get("channel") or {}).get("endpoint")
        if current is not None and current.get("status") in ("active", "requested") and isinstance(endpoint, str):
            return endpoint
    return None


def _restore_subscriptions(store: HapiStore, endpoint: str | None, secret: str | None) -> None:
    """Point vtdui's Subscriptions back at ``endpoint`` (as `vtdui setup` installed them), or say they are off."""
    from vtdui.receiver import install_subscriptions

    if endpoint is None or not secret:
        click.echo("vtdui's Subscriptions in HAPI are now off: run `vtdui setup` again before `vtdui run`")
        return
    try:
        install_subscriptions(store, endpoint, secret)
    except VtduiError as exc:
        click.echo(f"vtdui's Subscriptions could not be pointed back at {endpoint} ({exc}): run `vtdui setup` "
                   "again before `vtdui run`")
        return
    click.echo(f"vtdui's Subscriptions in HAPI point again at {endpoint}, as `vtdui setup` had left them")


def _run_embedded(run_dir: Path, scenarios: list[Scenario], memory: str) -> list[ScenarioResult]:
    """Start HAPI and the simulator in ``run_dir``, run vtdui's receiver, play ``scenarios``, stop both."""
    from vtdui.commands.demo import _receiver
    from vtdui.rehearsal.runner import Rehearsal
    from vtdui.runtime import Runtime
    from vtdui.simulator.server import start_simulator

    hapi_run = run_dir / "hapi-run"
    port = hapi_server.free_port()
    click.echo("starting the local HAPI FHIR server (about a minute)")
    try:
        info = hapi_server.start(port, data_dir=run_dir / "hapi-db", memory=memory, state_dir=hapi_run)
    except VtduiError as exc:
        raise click.ClickException(str(exc)) from exc
    sim = None
    try:
        sim = start_simulator(run_dir / "simulator", seed=1, n_decisions=1, port=0, admin_port=0,
                              hapi_base_url=info.base_url)
        env = {"FHIR_BASE_URL": info.base_url}
        if os.environ.get("VTDUI_HOOKS_DIR"):
            env["VTDUI_HOOKS_DIR"] = os.environ["VTDUI_HOOKS_DIR"]
        config = load_config(sim.config_path, env=env)
        from rich.console import Console

        with Runtime(config) as runtime, _receiver(runtime, Console()):
            rehearsal = Rehearsal(runtime, sim.admin_url, progress=click.echo)
            try:
                return rehearsal.run(scenarios)
            finally:
                rehearsal.close()
    finally:
        if sim is not None:
            sim.stop()
        hapi_server.stop(state_dir=hapi_run)
