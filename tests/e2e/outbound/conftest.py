"""Fixtures of the outbound end-to-end tests: one simulator, one DUI configuration, one `vtdui run` process.

The simulator's seed is random so its FINESS numbers and decision ids never collide with what other tests
left in the session's HAPI server. The decisions the tests use are created first, so that the initial inbound
cycle of `vtdui run` puts them in the work list (status 39, written by the plugin, never emitted); each test
then plays the DUI user by PUTting work-list Tasks and Consents into HAPI.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from outbound_e2e_helpers import CHILD_ENV, OutboundEnv, ServiceProcess, free_port, own_profiles, wait_for, wind_down

from vtdui.simulator.server import start_simulator

#: Suffix of this module's Subscription ids (see ``own_profiles``).
SUFFIX = "-e2e"

#: Decisions created before the first inbound cycle, by name (the establishment is chosen in ``env``).
DECISIONS = ("trial", "admission", "refusal", "blocked", "other", "faults", "timeout", "consent",
             "kill-a", "kill-b", "reconcile", "dry-run")


def _config_text(sim: Any, state_dir: Path, host: str, port: int, public_url: str, secret: str,
                 reconcile_seconds: float) -> str:
    from vtdui.simulator.config_writer import render_dui_config

    lines = render_dui_config(sim.context).splitlines()
    out: list[str] = []
    for line in lines:
        if line.startswith("state_dir"):
            line = f'state_dir = "{state_dir}"'
        out.append(line)
        if line == "[viatrajectoire]":
            out.append("timeout = 4.0")
    out += [
        "", "[retry]", "attempts = 2", "base_delay = 0.3", "max_delay = 2.0", "max_age_seconds = 900",
        "", "[receiver]", f'host = "{host}"', f"port = {port}", f'public_url = "{public_url}"', f'secret = "{secret}"',
        "", "[outbox]", "poll_seconds = 0.5", f"reconcile_seconds = {reconcile_seconds}", "lease_seconds = 120",
        "", "[sync]", "interval_seconds = 3600",
        "", "[logging]", 'level = "INFO"', 'format = "json"',
    ]
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def reconcile_seconds() -> float:
    """``outbox.reconcile_seconds`` of the module's `vtdui run`.

    3 s here: the tests of ``test_outbound_e2e.py`` check what happens to a change (order, faults, kills),
    whichever path brought it. A module that proves the Subscription path alone overrides it with an hour,
    so that the reconciliation can never be what makes it pass.
    """
    return 3


@pytest.fixture(scope="module")
def env(hapi: Any, tmp_path_factory: pytest.TempPathFactory,
        reconcile_seconds: float) -> Iterator[tuple[OutboundEnv, dict[str, dict[str, Any]]]]:
    """The simulator, the decisions of the tests, the configuration, and `vtdui setup` done."""
    tmp = tmp_path_factory.mktemp("outbound-e2e")
    seed = random.SystemRandom().randrange(1, 10**9)
    CHILD_ENV["VTDUI_PROFILES_DIR"] = str(own_profiles(tmp / "profiles", f"{SUFFIX}{seed}"))
    sim = start_simulator(tmp / "simulator", seed=seed, n_decisions=1, port=0, admin_port=0,
                          hapi_base_url=hapi.base_url)
    try:
        info = sim.info
        first = info["legal_entities"][0]
        esat = first["establishments"][0]
        assert esat["is_esat"] and esat["units"], "the simulator's first establishment is an ESAT with ROR units"
        other = first["establishments"][1]["finess_eg"]
        port = free_port(hapi.bind_host)
        secret = secrets.token_urlsafe(24)
        state_dir = tmp / "dui-state"
        config_path = tmp / "vtdui.toml"
        config_path.write_text(_config_text(sim, state_dir, hapi.bind_host, port,
                                            f"http://{hapi.callback_host}:{port}", secret, reconcile_seconds),
                               encoding="utf-8")
        config_path.chmod(0o600)
        outbound = OutboundEnv(sim=sim, config_path=config_path, state_dir=state_dir, hapi_base_url=hapi.base_url,
                               secret=secret, client_secret=info["client_secret"], esat=esat["finess_eg"],
                               esat_units=esat["units"], other_eg=other, tmp=tmp)
        decisions = {name: outbound.new_decision(esat["finess_eg"] if name in ("trial", "admission") else other)
                     for name in DECISIONS}
        outbound.cli("setup", "--json")
        yield outbound, decisions
        # an active Subscription would keep calling a receiver that is gone (normally already off: see wind_down)
        outbound.cli("setup", "--off")
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def service(env: tuple[OutboundEnv, dict[str, dict[str, Any]]], hapi: Any) -> Iterator[ServiceProcess]:
    """`vtdui run` for the module (tests may stop, kill and restart it; it is running when each test starts)."""
    outbound, decisions = env
    config_port = int(next(line.split("=")[1] for line in outbound.config_path.read_text().splitlines()
                           if line.startswith("port =")))
    proc = ServiceProcess(outbound.config_path, outbound.tmp, config_port, hapi.bind_host)
    proc.start()
    # the initial inbound cycle puts every decision of the tests in the work list
    for name, decision in decisions.items():
        eg = outbound.esat if name in ("trial", "admission") else outbound.other_eg
        wait_for(lambda d=decision, e=eg: outbound.worklist_task(d["id_nat_decision"], e),
                 f"the work-list item of decision {name!r}", timeout=120)
    yield proc
    wind_down(outbound, proc)


@pytest.fixture
def running(service: ServiceProcess, env: tuple[OutboundEnv, dict[str, dict[str, Any]]]) -> Iterator[ServiceProcess]:
    """The service, started again if a previous test left it stopped; faults cleared after the test."""
    if not service.running():
        service.start()
    yield service
    env[0].clear_faults()
