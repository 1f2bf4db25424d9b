"""hooks/README.md's examples run as written, and the ``vtdui plugins`` output it shows is the real one.

Each ``<!-- example: FILE -->`` marker is followed by a Python block; the blocks of one FILE are joined into a
test file that a separate pytest process runs with the installed testing kit's fixtures, against the
session's HAPI server (``FHIR_BASE_URL``) and an in-process simulator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "hooks" / "README.md"


def _examples() -> dict[str, str]:
    files: dict[str, list[str]] = defaultdict(list)
    text = README.read_text(encoding="utf-8")
    for match in re.finditer(r"<!-- example: (?P<file>\S+) -->\n```python\n(?P<code>.*?)```", text, re.S):
        files[match["file"]].append(match["code"])
    return {name: "\n\n".join(blocks) for name, blocks in files.items()}


def test_the_documented_examples_are_found() -> None:
    assert sorted(_examples()) == ["test_doc_acme.py", "test_doc_outbound.py", "test_doc_quarantine.py"]


@pytest.mark.integration
@pytest.mark.simulator
def test_the_documented_examples_pass(tmp_path: Path, hapi: Any) -> None:
    for name, code in _examples().items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    env = {**os.environ, "FHIR_BASE_URL": hapi.base_url}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "."],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert re.search(r"\b4 passed\b", done.stdout), done.stdout[-2000:]
    assert "skipped" not in done.stdout


def test_the_documented_plugins_output_is_the_real_one(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- output: vtdui plugins -->\n```\n\$ VTDUI_HOOKS_DIR=hooks vtdui plugins\n(?P<out>.*?)```",
                      text, re.S)
    assert block is not None
    (tmp_path / "hooks").mkdir()
    shutil.copy(ROOT / "hooks" / "examples" / "vendor_worklist.py", tmp_path / "hooks")
    env = {k: v for k, v in os.environ.items() if k not in ("VTDUI_PLUGINS", "VTDUI_CONFIG")}
    env["VTDUI_HOOKS_DIR"] = "hooks"
    done = subprocess.run([sys.executable, "-c", "from vtdui.cli import main; main()", "plugins"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    documented, real = block["out"].splitlines(), done.stdout.splitlines()
    assert len(real) == len(documented), done.stdout
    for want, got in zip(documented, real, strict=True):
        if want.startswith("    file:  …/"):
            assert got.startswith("    file:  ") and got.endswith(want.removeprefix("    file:  …")), (want, got)
        else:
            assert got == want
