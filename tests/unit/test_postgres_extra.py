"""Without the ``postgres`` extra, a PostgreSQL ``database.url`` is one clear error, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The console script, in a process where psycopg cannot be imported (as when the extra is not installed).
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from vtdui.cli import main; sys.argv[0] = 'vtdui'; main()"


@pytest.mark.parametrize("command", [["db", "status"], ["db", "migrate"], ["outbox", "list"], ["status"]])
def test_postgres_url_without_the_driver(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "vtdui.toml"
    config.write_text('[database]\nurl = "postgresql://vtdui:pw-not-shown@127.0.0.1:9/vtdui"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", WITHOUT_PSYCOPG, *command, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'viatrajectoire-dui[postgres]'" in done.stderr
    assert "pw-not-shown" not in done.stdout + done.stderr
