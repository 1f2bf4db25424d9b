"""Build step of the wheel: copy ``profiles/`` and the HAPI launcher's sources into the package.

Everything else is declared in ``pyproject.toml``. The repository keeps these folders at its top level; the wheel
carries them as ``vtdui/_bundled/profiles`` and ``vtdui/_bundled/hapi-launcher`` (read by :mod:`vtdui.bundled`).
An editable install skips the copy: it runs from the checkout, whose own folders are used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: name inside vtdui/_bundled -> folder of the repository (what the build ignores in it)
SHIPPED = {
    "profiles": (ROOT / "profiles", ("*.py", "__pycache__")),
    "hapi-launcher": (ROOT / "docker" / "hapi-launcher", ("target", "*.iml", ".idea")),
}


class BuildPyWithData(build_py):
    """``build_py`` that also copies the shipped folders into the built package."""

    def run(self) -> None:
        """Build the package, then add the shipped folders (not for an editable install)."""
        super().run()
        if getattr(self, "editable_mode", False):
            return
        bundled = Path(self.build_lib) / "vtdui" / "_bundled"
        for name, (source, ignored) in SHIPPED.items():
            if not source.is_dir():
                raise SystemExit(f"cannot build vtdui: {source} is missing from the source tree")
            target = bundled / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignored))


setup(cmdclass={"build_py": BuildPyWithData})
