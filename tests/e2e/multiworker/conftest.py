"""Fixtures of the multi-worker end-to-end test: one simulator, one PostgreSQL database, one DUI configuration.

Everything is real: the session's HAPI server (REST-hook Subscriptions of this module's own ids), the
ViaTrajectoire simulator (mTLS + OAuth2, faults), a fresh database of the session's PostgreSQL server migrated
by `vtdui db migrate`, and `vtdui sync` / `vtdui setup` / `vtdui run` as subprocesses. The decisions of every
test are created and put in the work list (one `vtdui sync`) before the Subscriptions are installed, so the
tests start from idle work-list items (status 39, the plugin's own write, never emitted).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from multiworker_helpers import (
    CHILD_ENV,
    DECISIONS_PER_TEST,
    WORKER_COUNTS,
    MultiEnv,
    OutboundEnv,
    ServiceProcess,
    config_text,
    free_port,
    own_profiles,
    wait_for,
    wind_down,
)

from vtdui.simulator.server import start_simulator


@pytest.fixture(scope="module")
def multi(hapi: Any, postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiEnv]:
    """Simulator, database, decisions in the work list, Subscriptions installed; wound down at the end."""
    tmp = tmp_path_factory.mktemp("multiworker-e2e")
    seed = random.SystemRandom().randrange(1, 10**9)
    CHILD_ENV["VTDUI_PROFILES_DIR"] = str(own_profiles(tmp / "profiles", f"-mw{seed}"))
    sim = start_simulator(tmp / "simulator", seed=seed, n_decisions=1, port=0, admin_port=0,
                          hapi_base_url=hapi.base_url)
    installed = False
    try:
        info = sim.info
        other = info["legal_entities"][0]["establishments"][1]["finess_eg"]
        port = free_port(hapi.bind_host)
        secret = secrets.token_urlsafe(24)
        database_url = postgres.fresh_database("mw")
        config_path = tmp / "vtdui.toml"
        config_path.write_text(config_text(sim, tmp / "dui-state", hapi.bind_host, port,
                                           f"http://{hapi.callback_host}:{port}", secret, database_url),
                               encoding="utf-8")
        config_path.chmod(0o600)
        outbound = OutboundEnv(sim=sim, config_path=config_path, state_dir=tmp / "dui-state",
                               hapi_base_url=hapi.base_url, secret=secret, client_secret=info["client_secret"],
                               esat="", esat_units=[], other_eg=other, tmp=tmp)
        outbound.cli("db", "migrate")
        decisions = {n: [outbound.new_decision(other) for _ in range(DECISIONS_PER_TEST)] for n in WORKER_COUNTS}
        outbound.cli("sync", "--establishment", other, timeout=600)
        tasks = {d["id_nat_decision"]: wait_for(lambda d=d: outbound.worklist_task(d["id_nat_decision"], other),
                                                "a work-list item", timeout=120)
                 for ds in decisions.values() for d in ds}
        outbound.cli("setup", "--json")
        installed = True
        yield MultiEnv(outbound, database_url, hapi.bind_host, port, decisions, tasks)
        # Subscriptions off while a receiver answers (HAPI 8.8 channel reuse), as the outbound module does
        wind_down(outbound, ServiceProcess(config_path, _mkdir(tmp / "wind-down"), port, hapi.bind_host))
    finally:
        try:
            if installed:
                outbound.cli("setup", "--off", check=False)
        finally:
            sim.stop()
            CHILD_ENV.pop("VTDUI_PROFILES_DIR", None)


def _mkdir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path
