"""Benchmark figures: JSON files in ``tests/benchmarks/results/`` and one markdown table per session.

Every benchmark calls :func:`record` once at its end with its rows (benchmark | figure | baseline measured in
the same run | ratio) and its detailed figures: the figures go to ``results/<name>.json`` at once, the rows to
the session's table. This module is also a pytest plugin (registered by :func:`register`, from
``tests/benchmarks/conftest.py`` and from ``tests/e2e/outbound/bench_outbound.py``): at the end of a session
that recorded rows, its ``pytest_terminal_summary`` prints the table under a line describing the machine, and
writes the same to ``results/table.md``. A session without benchmark rows prints and writes nothing.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TABLE = RESULTS_DIR / "table.md"
PLUGIN_NAME = "vtdui-benchmark-report"


@dataclass(frozen=True)
class Row:
    """One line of the table; ``baseline`` and ``ratio`` are ``None`` where the benchmark has no baseline."""

    benchmark: str
    figure: str
    baseline: str | None = None
    ratio: str | None = None


#: Rows recorded by the benchmarks of this session, in order.
ROWS: list[Row] = []
#: What the benchmarks ran against: ``hapi`` (version, database), ``postgresql`` (vtdui's database, version).
SERVERS: dict[str, str] = {}


def ratio(value: float, digits: int = 2) -> str:
    """A ratio as printed in the table: ``×1.23``."""
    return f"×{value:.{digits}f}"


def record(name: str, rows: list[Row], figures: dict[str, Any]) -> Path:
    """Add ``rows`` to the session's table and write ``figures`` (with the rows) to ``results/<name>.json``."""
    ROWS.extend(rows)
    return write_results(name, {**figures, "table_rows": [asdict(row) for row in rows]})


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` with the machine's description to ``results/<name>.json``; return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "memory_gib": _memory_gib(),
                    "platform": platform.platform(), "python": platform.python_version(), **SERVERS},
        **figures,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# -- what the benchmarks ran against ------------------------------------------------------------------------

_HAPI_DATABASES = {"launcher": "H2 in memory", "launcher-postgresql": "PostgreSQL", "docker": "H2 (docker compose)",
                   "env": "database unknown ($FHIR_BASE_URL)"}


def note_hapi(target: Any) -> None:
    """Remember the session's HAPI server (``tests/conftest.py``'s ``hapi`` fixture): version and database."""
    if "hapi" in SERVERS:
        return
    import httpx

    try:
        body = httpx.get(f"{target.base_url}/metadata", headers={"Accept": "application/fhir+json"},
                         timeout=30).json()
        version = str(body.get("software", {}).get("version") or "version unknown")
    except (httpx.HTTPError, ValueError):
        version = "version unknown"
    SERVERS["hapi"] = f"HAPI FHIR {version} on {_HAPI_DATABASES.get(target.origin, target.origin)}"


def note_postgres(url: str) -> None:
    """Remember the PostgreSQL server vtdui's own database ran on (outbox-workers benchmark)."""
    if "postgresql" in SERVERS:
        return
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        SERVERS["postgresql"] = f"PostgreSQL {row[0] if row else '?'}".split(" (")[0]
    except psycopg.Error:
        SERVERS["postgresql"] = "PostgreSQL"


# -- the machine ---------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))}, Linux {platform.release()}"
    except OSError:
        pass
    return platform.platform()


def machine_line() -> str:
    """One line: CPUs, memory, OS, Python, servers, date (UTC)."""
    memory = _memory_gib()
    vtdui_db = "vtdui state: SQLite"
    if "postgresql" in SERVERS:
        vtdui_db += f", {SERVERS['postgresql']} for the outbox-workers rows"
    parts = [f"{os.cpu_count()} CPUs ({_cpu_model()})", f"{memory} GiB RAM" if memory else "memory unknown",
             _os_name(), f"Python {platform.python_version()}", SERVERS.get("hapi", "HAPI FHIR (not used)"),
             vtdui_db, "run ended " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")]
    return "Machine: " + "; ".join(parts)


def table(rows: list[Row]) -> str:
    """The markdown table of ``rows``, under the machine line."""
    lines = [machine_line(), "", "| benchmark | figure | baseline (same run) | ratio |", "|---|---|---|---|"]
    for row in rows:
        cells = (row.benchmark, row.figure, row.baseline or "—", row.ratio or "—")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


# -- the pytest plugin ---------------------------------------------------------------------------------------

def register(config: pytest.Config) -> None:
    """Register this module as a pytest plugin once per session (idempotent)."""
    import sys

    module = sys.modules[__name__]
    if not config.pluginmanager.has_plugin(PLUGIN_NAME) and not config.pluginmanager.is_registered(module):
        config.pluginmanager.register(module, PLUGIN_NAME)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the session's benchmark table and write it to ``results/table.md`` (only when rows were recorded)."""
    if not ROWS:
        return
    text = table(ROWS)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text, encoding="utf-8")
    terminalreporter.write_sep("=", "benchmark results")
    for line in text.splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also written to {TABLE})")
