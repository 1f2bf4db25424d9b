"""The launcher's life cycle (vtdui.hapi_server and ``vtdui hapi``): build cache, start, status, stop, errors.

The tests that start a JVM use the real launcher jar (built once, cached); the others need no server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from vtdui import hapi_server
from vtdui.commands.hapi import hapi as hapi_cli
from vtdui.errors import ConfigError, HapiError


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A private state directory; whatever a test started there is stopped afterwards."""
    directory = tmp_path / "state"
    try:
        yield directory
    finally:
        hapi_server.stop(state_dir=directory, grace=10.0)


# ------------------------------------------------------------------------------- no server needed


def test_source_hash_follows_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "launcher"
    shutil.copytree(hapi_server.launcher_dir(), copy, ignore=shutil.ignore_patterns("target"))
    monkeypatch.setenv(hapi_server.ENV_LAUNCHER_DIR, str(copy))
    assert hapi_server.launcher_dir() == copy
    before = hapi_server.source_hash()
    assert before == hapi_server.source_hash(hapi_server.launcher_dir())
    config = copy / "src" / "main" / "resources" / "application.yaml"
    config.write_text(config.read_text() + "\n# changed\n")
    assert hapi_server.source_hash() != before


def test_missing_launcher_sources_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hapi_server.ENV_LAUNCHER_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(HapiError, match="launcher sources not found"):
        hapi_server.ensure_built()


def test_explicit_jar_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hapi_server.ENV_JAR, str(tmp_path / "missing.jar"))
    with pytest.raises(HapiError, match="does not exist"):
        hapi_server.ensure_built()


@pytest.mark.parametrize("memory", ["", "1", "1gb", "-1g", "0g", "1 g"])
def test_bad_memory_is_refused(memory: str) -> None:
    with pytest.raises(ConfigError, match="memory"):
        hapi_server.jvm_command(Path("x.jar"), 8080, memory=memory)


def test_jvm_command_selects_the_database() -> None:
    in_memory = hapi_server.jvm_command(Path("x.jar"), 18080)
    assert "--server.port=18080" in in_memory
    assert not any(arg.startswith("--vtdui.data-dir") for arg in in_memory)
    on_file = hapi_server.jvm_command(Path("x.jar"), 18080, data_dir=Path("/srv/h"), memory="768m")
    assert "--vtdui.data-dir=/srv/h" in on_file
    assert "-Xmx768m" in on_file
    with pytest.raises(ConfigError, match="port"):
        hapi_server.jvm_command(Path("x.jar"), 70000)


def test_stale_state_file_is_cleared(state_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state_dir.mkdir(parents=True)
    stale = hapi_server.ServerInfo(pid=dead.pid, port=1, base_url="http://127.0.0.1:1/fhir", data_dir=None,
                                   log_file=state_dir / "x.log", jar=Path("/x.jar"), started_at=0.0)
    (state_dir / "hapi-server.json").write_text(json.dumps(stale.to_json()))
    assert hapi_server.status(state_dir=state_dir) is None
    assert not (state_dir / "hapi-server.json").exists()
    assert hapi_server.stop(state_dir=state_dir) is None


def test_corrupt_state_file_is_not_a_server(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "hapi-server.json").write_text("{not json")
    assert hapi_server.status(state_dir=state_dir) is None


def test_cli_status_without_server_exits_1(state_dir: Path) -> None:
    result = CliRunner().invoke(hapi_cli, ["status", "--state-dir", str(state_dir)])
    assert result.exit_code == 1
    assert "not running" in result.output


def test_cli_rejects_in_memory_with_data_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(hapi_cli, ["start", "--in-memory", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "exclude each other" in result.output


# ----------------------------------------------------------------------------------- real JVMs


@pytest.mark.integration
def test_port_in_use_is_reported(state_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HapiError, match=f"port {port}"):
            hapi_server.start(port=port, state_dir=state_dir)
    assert hapi_server.status(state_dir=state_dir) is None


@pytest.mark.integration
def test_a_jvm_that_dies_is_reported_with_its_log(state_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.jar"
    broken.write_bytes(b"this is not a jar")
    monkeypatch.setenv(hapi_server.ENV_JAR, str(broken))
    with pytest.raises(HapiError) as caught:
        hapi_server.start(port=hapi_server.free_port(), state_dir=state_dir, timeout=60)
    message = str(caught.value)
    assert "exited with code" in message
    assert "jarfile" in message.lower()  # the JVM's own words, from the log tail
    assert hapi_server.status(state_dir=state_dir) is None


@pytest.mark.integration
def test_file_database_survives_a_restart(state_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = hapi_server.free_port()
    info = hapi_server.start(port=port, data_dir=data_dir, state_dir=state_dir, owner_pid=os.getpid())
    assert info.base_url == f"http://127.0.0.1:{port}/fhir"
    assert hapi_server.status(state_dir=state_dir) == info
    # a second start on the same port returns the running server instead of a second JVM
    assert hapi_server.start(port=port, data_dir=data_dir, state_dir=state_dir) == info
    with pytest.raises(HapiError, match="already running"):
        hapi_server.start(port=hapi_server.free_port(), data_dir=data_dir, state_dir=state_dir)
    with pytest.raises(HapiError, match="already running"):
        hapi_server.start(port=port, data_dir=None, state_dir=state_dir)

    task = {"resourceType": "Task", "id": "persisted-1", "status": "requested", "intent": "plan"}
    put = httpx.put(f"{info.base_url}/Task/persisted-1", json=task,
                    headers={"Content-Type": "application/fhir+json"}, timeout=60)
    assert put.status_code == 201, put.text

    stopped = hapi_server.stop(state_dir=state_dir)
    assert stopped is not None and stopped.pid == info.pid
    assert hapi_server.status(state_dir=state_dir) is None
    assert not info.is_ready(timeout=2.0)
    assert list((data_dir / "h2").glob("hapi*.db")), "the H2 database file is in the data directory"

    again = hapi_server.start(port=port, data_dir=data_dir, state_dir=state_dir, owner_pid=os.getpid())
    read = httpx.get(f"{again.base_url}/Task/persisted-1", timeout=60)
    assert read.status_code == 200
    assert read.json()["status"] == "requested"


def test_cached_jar_is_reused_and_old_builds_are_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(hapi_server.ENV_JAR, raising=False)
    root = hapi_server.cache_root()
    for age, name in enumerate(["old1", "old2", "old3", "old4"]):
        (root / name).mkdir(parents=True)
        jar = root / name / "hapi-launcher.jar"
        jar.write_bytes(b"old")
        os.utime(jar, (1_000_000 + age, 1_000_000 + age))
    current = root / hapi_server.source_hash()
    current.mkdir()
    (current / "hapi-launcher.jar").write_bytes(b"current")
    # the jar of the current sources is there: no Maven run, the same path comes back
    assert hapi_server.ensure_built() == current / "hapi-launcher.jar"
    assert sorted(d.name for d in root.iterdir() if d.is_dir()) == sorted([current.name, "old4", "old3"])
    assert (current / "hapi-launcher.jar").read_bytes() == b"current"
