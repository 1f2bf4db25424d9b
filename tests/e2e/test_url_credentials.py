"""Passwords written in the HAPI and ViaTrajectoire base URLs show nowhere, and never replace the bearer token.

Real components: the simulator over mTLS + OAuth2, the session's HAPI server, the ``vtdui`` executable as an
operator runs it (sync, status, config check, run with /health and /metrics). First with a reachable HAPI
(a real sync, so the exchange log fills), then with an unreachable one (so errors quote the HAPI URL).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vtdui.simulator.server import RunningSimulator, start_simulator

pytestmark = pytest.mark.integration

VTDUI = str(Path(sys.executable).with_name("vtdui"))
HAPI_PASSWORD = "hapi-Pw-" + secrets.token_hex(6)
VT_PASSWORD = "vt-Pw-" + secrets.token_hex(6)


def _with_password(url: str, user: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}:{password}@{rest}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, hapi: Any) -> Iterator[RunningSimulator]:
    running = start_simulator(tmp_path_factory.mktemp("vt-creds"), seed=secrets.randbelow(10**6), n_decisions=3,
                              port=0, admin_port=0, hapi_base_url=hapi.base_url)
    yield running
    running.stop()


def _setup(sim: RunningSimulator, tmp_path: Path, hapi_url: str) -> tuple[Path, dict[str, str], int]:
    port = _free_port()
    config = tmp_path / "vtdui.toml"
    config.write_text(sim.config_path.read_text(encoding="utf-8") + (
        f'\n[receiver]\nhost = "127.0.0.1"\nport = {port}\nsecret = "{secrets.token_urlsafe(24)}"\n'
        # the first reconciliation pass only sets its cursor; the second, a second later, reads HAPI
        '\n[outbox]\nreconcile_seconds = 1\n\n[logging]\nlevel = "DEBUG"\n'), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VTDUI_", "FHIR_BASE_URL"))}
    env.update({"FHIR_BASE_URL": _with_password(hapi_url, "admin", HAPI_PASSWORD),
                "VTDUI_VT_BASE_URL": _with_password(sim.fhir_base_url, "vt", VT_PASSWORD),
                "VTDUI_VT_TOKEN_URL": _with_password(sim.token_url, "vt", VT_PASSWORD),
                "VTDUI_STATE_DIR": str(tmp_path / "state"),
                "COLUMNS": "300"})  # tables wide enough to print whole URLs (a narrow one would cut them)
    return config, env, port


def _vtdui(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([VTDUI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    return f"$ vtdui {' '.join(args)} -> {done.returncode}\n{output}"


def _assert_clean(where: str, text: str) -> None:
    for password in (HAPI_PASSWORD, VT_PASSWORD):
        assert password not in text, f"a password from a base URL is in {where}:\n{text[:3000]}"


def test_passwords_in_both_base_urls_show_nowhere(sim: RunningSimulator, hapi: Any, tmp_path: Path) -> None:
    config, env, _ = _setup(sim, tmp_path, hapi.base_url)
    checked = _vtdui(env, tmp_path, "config", "check", "--config", str(config))
    assert "-> 0" in checked and "warning: viatrajectoire.base_url" in checked, checked
    synced = _vtdui(env, tmp_path, "sync", "--config", str(config))
    # exit 0: the simulator accepted every FHIR call, so they carried the bearer token (not Basic auth)
    assert "-> 0" in synced, synced
    outputs = [checked, synced,
               _vtdui(env, tmp_path, "sync", "--json", "--config", str(config)),
               _vtdui(env, tmp_path, "status", "--config", str(config)),
               _vtdui(env, tmp_path, "status", "--json", "--config", str(config)),
               _vtdui(env, tmp_path, "config", "check", "--json", "--config", str(config))]
    for output in outputs:
        _assert_clean(output.splitlines()[0], output)
    with sqlite3.connect(tmp_path / "state" / "exchanges.sqlite3") as db:
        rows = db.execute("SELECT kind, url, status, request_headers, response_headers, error, request_body, "
                          "response_body FROM exchanges").fetchall()
    assert any(kind == "fhir" for kind, *_ in rows) and any(kind == "token" for kind, *_ in rows), rows
    _assert_clean("the exchange log", json.dumps(rows))
    for kind, url, status, *_ in rows:
        assert "@" not in url.partition("://")[2].partition("/")[0], url
        # the simulator answers 401 to any FHIR call whose Authorization is not 'Bearer <token>'
        assert status is not None and status < 400, (kind, url, status)
    fhir_calls = sim.context.state.received_since(0)
    assert fhir_calls and all(call.status != 401 for call in fhir_calls)


def test_errors_quoting_the_hapi_url_show_no_password(sim: RunningSimulator, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{_free_port()}/fhir"  # HAPI down: every error names its URL
    config, env, port = _setup(sim, tmp_path, closed)
    outputs = [_vtdui(env, tmp_path, "sync", "--config", str(config)),
               _vtdui(env, tmp_path, "sync", "--json", "--config", str(config)),
               _vtdui(env, tmp_path, "status", "--config", str(config)),
               _vtdui(env, tmp_path, "outbox", "list", "--config", str(config))]
    assert f"{closed.partition('//')[2].partition('/')[0]}" in outputs[0], outputs[0]  # the table names the URL
    log = tmp_path / "run.log"
    with log.open("wb") as handle:
        process = subprocess.Popen([VTDUI, "run", "--config", str(config)], env=env, cwd=tmp_path,
                                   stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        health: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while not health.get("last_errors", {}).get("reconcile"):  # the reconciliation reads HAPI at start
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.5)
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
            except httpx.HTTPError:
                continue
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert "127.0.0.1" in json.dumps(health), health  # the error names where, without the password
    _assert_clean("/health", json.dumps(health))
    _assert_clean("/metrics", metrics)
    run_log = log.read_text(encoding="utf-8", errors="replace")
    _assert_clean("the log of vtdui run", run_log)
    for output in outputs:
        _assert_clean(output.splitlines()[0], output)
