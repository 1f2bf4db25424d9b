"""The wheel stands on its own: it carries profiles/ and the HAPI launcher's sources, and vtdui finds them there.

The wheel is built from this checkout (``pip wheel --no-build-isolation``: the test environment has
setuptools >= 77, no download), installed with ``pip install --target`` into an empty directory, and imported
from a working directory with nothing of the repository in it. ``.ci/run`` goes further: a fresh virtualenv,
``vtdui demo`` and ``vtdui validate`` from the installed wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vtdui import hapi_server
from vtdui.profiles import profiles_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("viatrajectoire_dui-*.whl")
    return built


def test_wheel_carries_profiles_launcher_license_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    repo_profiles = {p.relative_to(REPO / "profiles").as_posix() for p in (REPO / "profiles").rglob("*.json")}
    assert repo_profiles and {f"vtdui/_bundled/profiles/{n}" for n in repo_profiles} <= names
    launcher = hapi_server.launcher_dir()
    sources = {p.relative_to(launcher).as_posix() for p in launcher.rglob("*")
               if p.is_file() and "target" not in p.relative_to(launcher).parts}
    assert "pom.xml" in sources
    assert {f"vtdui/_bundled/hapi-launcher/{n}" for n in sources} == {
        n for n in names if n.startswith("vtdui/_bundled/hapi-launcher/")}
    assert any(n.startswith("vtdui/migrations/postgres/") and n.endswith(".sql") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any("build_terminology" in n or n.startswith("tests/") for n in names)
    metadata = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in metadata
    requires = {line.split(":", 1)[1].strip().split(">")[0].split(";")[0].split("[")[0]
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert not requires & {"fhirpy", "requests"}  # one HTTP stack; see README "Libraries"
    for requirement in ("httpx", "lxml", "pluggy", "click", "starlette", "uvicorn",
                        "cryptography", "rich", "fhir.resources"):
        assert f"Requires-Dist: {requirement}" in metadata
    assert "Requires-Dist: psycopg[binary]>=3.2; extra == \"postgres\"" in metadata


def test_installed_wheel_finds_its_own_data_away_from_the_repository(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    probe = ("import json; from vtdui import hapi_server, profiles; "
             "print(json.dumps({'profiles': str(profiles.profiles_dir()), 'launcher': str(hapi_server.launcher_dir()),"
             " 'hash': hapi_server.source_hash(), 'terminology': len(profiles.terminology_resources())}))")
    env = {k: v for k, v in os.environ.items() if k not in ("VTDUI_PROFILES_DIR", "VTDUI_HAPI_LAUNCHER_DIR")}
    # -I: isolated mode, so neither the editable install's path hook nor the working directory is on sys.path
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
                          capture_output=True, text=True, timeout=120, check=False, cwd=empty, env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["profiles"] == str(target / "vtdui" / "_bundled" / "profiles")
    assert found["launcher"] == str(target / "vtdui" / "_bundled" / "hapi-launcher")
    # same sources, same hash: the installed wheel reuses a jar built from the checkout (and vice versa)
    assert found["hash"] == hapi_server.source_hash()
    assert found["terminology"] == len(list((profiles_dir() / "terminology").glob("*.json")))
