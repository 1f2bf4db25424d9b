"""A vendor plugin in a distribution of its own passes its tests in a clean virtualenv, vtdui from its wheel.

``hooks/examples/vendor_package`` (``acme-vtdui``, entry point ``acme_worklist``) is tested only with the
installed testing kit. Both wheels are built here (``pip wheel --no-deps``), installed in a new virtualenv
without the repository on its path, and the vendor's tests run there, from a copy outside the source tree,
against the session's HAPI server.

Installs are offline (``--no-index --find-links``) from a wheelhouse kept between runs
(``$VTDUI_TEST_WHEELHOUSE``, default ``~/.cache/vtdui/test-wheelhouse``): the first run, or one after a new
dependency, fills it from the package index with ``pip download``. The clean virtualenv gets no pip of its own
(this interpreter's pip installs into it with ``--python``) and no byte-compilation, which keeps the test near
a minute. Until the wheel carries ``profiles/``, the virtualenv reads the repository's through
``VTDUI_PROFILES_DIR``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.simulator]

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "hooks" / "examples" / "vendor_package"


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    return done


def _forget_own_wheels(house: Path) -> None:
    """Keep only third-party wheels in the wheelhouse.

    ``pip download`` copies the wheels it is given (vtdui's, the vendor's) into the wheelhouse too, and a later
    ``pip download`` of a rebuilt wheel of the same name and version reuses that stale copy (its dependencies
    included), so a dependency added since would never be fetched.
    """
    for stale in [*house.glob("viatrajectoire_dui-*.whl"), *house.glob("acme_vtdui-*.whl")]:
        stale.unlink()


def test_the_vendor_package_passes_its_tests_in_a_clean_virtualenv(tmp_path: Path, hapi: Any) -> None:
    house = Path(os.environ.get("VTDUI_TEST_WHEELHOUSE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vtdui" / "test-wheelhouse")
    house.mkdir(parents=True, exist_ok=True)
    _forget_own_wheels(house)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    offline = ["--no-index", "--find-links", str(house)]
    if not list(house.glob("setuptools-*.whl")):  # the build backend of both projects, for isolated builds
        _run(*pip, "download", "-q", "-d", house, "setuptools>=77", "wheel", cwd=tmp_path)
    wheels = tmp_path / "wheels"
    _run(*pip, "wheel", "--no-deps", "-q", *offline, "-w", wheels, ROOT, VENDOR, cwd=tmp_path)
    built = sorted(wheels.glob("*.whl"))
    assert [re.sub(r"-.*", "", path.name) for path in built] == ["acme_vtdui", "viatrajectoire_dui"], built

    clean = tmp_path / "clean"
    venv.create(clean, with_pip=False, system_site_packages=False)
    python = clean / "bin" / "python"
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "VTDUI_PLUGINS", "VTDUI_CONFIG", "VTDUI_HOOKS_DIR")}
    env["PATH"] = f"{clean / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    install = [*pip, "--python", python, "install", "-q", "--no-compile", *offline, "--find-links", wheels,
               *built, "pytest>=8"]
    first = subprocess.run([str(a) for a in install], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                           check=False)
    if first.returncode != 0:  # a dependency the wheelhouse lacks yet: fetch them all once, then offline again
        _run(*pip, "download", "-q", "-d", house, *built, "pytest>=8", cwd=tmp_path)
        _forget_own_wheels(house)
        _run(*install, cwd=tmp_path)

    where = _run(python, "-c", "import vtdui, acme_vtdui; print(vtdui.__file__); print(acme_vtdui.__file__)",
                 cwd=tmp_path, env=env).stdout.split()
    assert all(path.startswith(str(clean)) for path in where), where  # the wheels, not the source tree

    shutil.copytree(VENDOR / "tests", tmp_path / "run" / "tests")
    shutil.copy(VENDOR / "pyproject.toml", tmp_path / "run")  # its pytest settings only; acme_vtdui is installed
    env.update({"FHIR_BASE_URL": hapi.base_url, "VTDUI_PROFILES_DIR": str(ROOT / "profiles")})
    done = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", cwd=tmp_path / "run", env=env)
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout[-3000:]
    assert "skipped" not in done.stdout
