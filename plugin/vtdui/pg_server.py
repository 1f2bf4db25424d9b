"""A throw-away local PostgreSQL cluster from the distribution's binaries (Debian ``postgresql``).

Used by the tests, the benchmarks and ``vtdui db local``: production points ``database.url`` at a managed
server instead. The cluster lives in one directory (``initdb`` on first start), listens on 127.0.0.1 only,
trusts local connections (it is reachable from this machine only) and is stopped with ``pg_ctl stop``.

PostgreSQL refuses to run as root: when the caller is root, the cluster directory is given to the
``postgres`` system user (created by the Debian package) and the server runs under it through ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vtdui.errors import VtduiError

__all__ = ["LocalPostgres", "PostgresUnavailableError", "find_bin_dir", "start", "stop"]

#: Superuser and database created in a new cluster.
USER = "vtdui"
DATABASE = "vtdui"


class PostgresUnavailableError(VtduiError):
    """No PostgreSQL server binaries here, or the cluster did not start."""


@dataclass(frozen=True)
class LocalPostgres:
    """A running local cluster.

    Attributes:
        data_dir: the cluster directory.
        port: TCP port on 127.0.0.1.
        url: connection URL of the ``vtdui`` database (``postgresql://vtdui@127.0.0.1:PORT/vtdui``).
        log_file: the server log.
    """

    data_dir: Path
    port: int
    url: str
    log_file: Path

    def database_url(self, name: str) -> str:
        """URL of another database of the same cluster (see :func:`create_database`)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def jdbc_url(self, name: str = DATABASE) -> str:
        """JDBC URL of a database of the cluster (for HAPI's launcher)."""
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{name}"


def find_bin_dir() -> Path:
    """Directory of ``initdb``/``pg_ctl``: ``$VTDUI_PG_BIN``, then ``PATH``, then ``/usr/lib/postgresql/*/bin``.

    Raises:
        PostgresUnavailableError: none found (install Debian's ``postgresql`` package).
    """
    env = os.environ.get("VTDUI_PG_BIN")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1].parent
    raise PostgresUnavailableError("PostgreSQL server binaries not found: install the `postgresql` package "
                              "(apt-get install postgresql) or set VTDUI_PG_BIN")


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def start(data_dir: Path, port: int, *, timeout: float = 60.0, max_connections: int = 200,
          durable: bool = True) -> LocalPostgres:
    """Initialise ``data_dir`` if needed and start the cluster on ``127.0.0.1:port``.

    Args:
        data_dir: the cluster directory (created with ``initdb`` when empty).
        port: TCP port on 127.0.0.1.
        timeout: seconds to wait for the server to accept connections.
        max_connections: PostgreSQL's ``max_connections``.
        durable: ``False`` turns ``fsync`` and ``synchronous_commit`` off, for throw-away test clusters
            only (a crash of the *server* may then lose data; a crash of a vtdui worker loses nothing).

    Raises:
        PostgresUnavailableError: no binaries, or the server did not accept connections within ``timeout``.
    """
    bin_dir = find_bin_dir()
    data_dir = Path(data_dir).resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_file = data_dir.parent / f"{data_dir.name}.log"
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        _give_to_server_user(data_dir)
        result = subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", USER, "--auth=trust",
                             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
            capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailableError(f"initdb failed: {result.stderr.strip()[-2000:]}")
    log_file.touch()
    _give_to_server_user(log_file)
    socket_dir = data_dir  # keep the Unix socket private to the cluster
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={socket_dir} "
               f"-c max_connections={max_connections} -c shared_buffers=128MB "
               f"-c fsync={'on' if durable else 'off'} -c synchronous_commit={'on' if durable else 'off'} "
               f"-c full_page_writes={'on' if durable else 'off'} -c log_min_messages=warning")
    result = subprocess.run(
        _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-o", options,
                         "-w", "-t", str(int(timeout)), "start"]),
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise PostgresUnavailableError(f"PostgreSQL did not start on port {port}: {result.stderr.strip()} {tail}")
    url = f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
    _wait_accepting(bin_dir, port, timeout)
    _ensure_database(bin_dir, port, DATABASE)
    return LocalPostgres(data_dir=data_dir, port=port, url=url, log_file=log_file)


def _wait_accepting(bin_dir: Path, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                               check=False)
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise PostgresUnavailableError(f"PostgreSQL on port {port} does not accept connections")
        time.sleep(0.2)


def _ensure_database(bin_dir: Path, port: int, name: str) -> None:
    create = subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, name],
                            capture_output=True, text=True, check=False)
    if create.returncode != 0 and "already exists" not in create.stderr:
        raise PostgresUnavailableError(f"createdb {name} failed: {create.stderr.strip()}")


def create_database(server: LocalPostgres, name: str) -> str:
    """Create database ``name`` in the cluster if missing; return its URL."""
    _ensure_database(find_bin_dir(), server.port, name)
    return server.database_url(name)


def stop(data_dir: Path, *, mode: str = "fast") -> None:
    """Stop the cluster of ``data_dir`` (no error when it is not running)."""
    if not (Path(data_dir) / "postmaster.pid").exists():
        return
    subprocess.run(_as_server_user([str(find_bin_dir() / "pg_ctl"), "-D", str(data_dir), "-m", mode, "-w",
                                    "stop"]), capture_output=True, check=False)
