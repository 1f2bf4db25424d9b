"""Build, start, watch and stop the local HAPI FHIR server (``docker/hapi-launcher``) without Docker.

The launcher is a small Spring Boot application of ours around the HAPI FHIR JPA server libraries. Its jar
is built once per version of its sources by Maven and cached under ``~/.cache/vtdui/hapi/<hash>/``, so a
second :func:`ensure_built` costs a hash of a few files. :func:`start` runs the jar as a detached JVM and
records it in a small JSON state file, so that :func:`status` and :func:`stop` work from another process
(``vtdui hapi start`` / ``vtdui hapi stop``).

The database is H2 (in memory, or on file in a data directory) unless :func:`start` gets a PostgreSQL URL
(``postgresql://user[:password]@host:port/db`` or ``jdbc:postgresql://host:port/db``): the JVM then gets the
JDBC URL and the user on its command line and the password in its environment (``SPRING_DATASOURCE_PASSWORD``),
never on the command line; the state file records the URL without the password.

Environment:

=============================  ==============================================================
``VTDUI_HAPI_LAUNCHER_DIR``    the Maven project to build (default: the repository's own)
``VTDUI_HAPI_JAR``             a jar to run as is (no build)
``VTDUI_HAPI_STATE_DIR``       where the state file and the log go (default: XDG state dir)
``XDG_CACHE_HOME``             root of the jar cache (default ``~/.cache``)
``VTDUI_HAPI_DATABASE_URL``    PostgreSQL URL for ``vtdui hapi start`` (``--database-url``)
``PGPASSWORD``                 PostgreSQL password when the database URL has none
=============================  ==============================================================
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from vtdui.bundled import bundled_path
from vtdui.errors import ConfigError, HapiError

__all__ = [
    "DEFAULT_PORT",
    "ENV_DATABASE_URL",
    "ENV_JAR",
    "ENV_LAUNCHER_DIR",
    "ENV_STATE_DIR",
    "PASSWORD_ENV",
    "PGPASSWORD_ENV",
    "PostgresDatabase",
    "ServerInfo",
    "cache_root",
    "default_state_dir",
    "ensure_built",
    "free_port",
    "jvm_command",
    "jvm_environment",
    "launcher_dir",
    "log_tail",
    "parse_database_url",
    "port_in_use",
    "source_hash",
    "start",
    "status",
    "stop",
]

DEFAULT_PORT: Final = 8080
ENV_LAUNCHER_DIR: Final = "VTDUI_HAPI_LAUNCHER_DIR"
ENV_JAR: Final = "VTDUI_HAPI_JAR"
ENV_STATE_DIR: Final = "VTDUI_HAPI_STATE_DIR"
#: Read by ``vtdui hapi start`` when ``--database-url`` is not given.
ENV_DATABASE_URL: Final = "VTDUI_HAPI_DATABASE_URL"

#: The launcher reads the database password from this variable (Spring Boot's own), never from its arguments.
PASSWORD_ENV: Final = "SPRING_DATASOURCE_PASSWORD"  # noqa: S105 - a variable name, not a password
#: Fallback password of a PostgreSQL URL that has none, as libpq does.
PGPASSWORD_ENV: Final = "PGPASSWORD"
_JAR_NAME: Final = "hapi-launcher.jar"
_DB_FAILURE_MARK: Final = "cannot connect to the database"
_STATE_FILE: Final = "hapi-server.json"
_LOG_FILE: Final = "hapi-server.log"
_MEMORY_RE: Final = re.compile(r"^[1-9][0-9]*[mMgG]$")
# Sized for a 2-core machine: serial GC (no parallel GC threads), C1 only (start-up dominates in tests and
# demos, peak throughput does not), bounded metaspace and code cache so the RSS stays predictable.
_JVM_FLAGS: Final = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:MaxMetaspaceSize=512m",
    "-XX:ReservedCodeCacheSize=128m",
    "-Xss512k",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PostgresDatabase:
    """A PostgreSQL database for the launcher, read by :func:`parse_database_url`.

    Attributes:
        jdbc_url: ``jdbc:postgresql://host:port/db`` plus the URL's other parameters (``sslmode``...), without
            user or password.
        user: the user name, ``None`` for the driver's default.
        password: the password, ``None`` when there is none; never shown by ``repr`` nor written anywhere.
        hosts: ``host:port`` (or several, comma-separated, as JDBC allows).
        name: the database name.
    """

    jdbc_url: str
    user: str | None
    password: str | None = field(repr=False)
    hosts: str
    name: str

    @property
    def redacted_url(self) -> str:
        """``postgresql://user@host:port/db``: what the state file and messages show (no password)."""
        user = f"{urllib.parse.quote(self.user, safe='')}@" if self.user else ""
        return f"postgresql://{user}{self.hosts}/{self.name}"


def parse_database_url(url: str) -> PostgresDatabase:
    """Read a PostgreSQL URL: ``postgresql://user[:password]@host[:port]/db[?param=...]`` or a JDBC one.

    ``postgres://`` is accepted too. In a ``jdbc:postgresql://host:port/db?user=u&password=p`` URL the ``user``
    and ``password`` parameters are taken out of the JDBC URL. Other parameters (``sslmode``...) are kept.

    Raises:
        ConfigError: not a PostgreSQL URL, or no database name.
    """
    text = url.strip()
    jdbc = text.lower().startswith("jdbc:")
    rest = text[5:] if jdbc else text
    parts = urllib.parse.urlsplit(rest)
    if parts.scheme.lower() not in (("postgresql",) if jdbc else ("postgresql", "postgres")):
        raise ConfigError("the HAPI database URL must look like postgresql://user[:password]@host:port/db or "
                          f"jdbc:postgresql://host:port/db, got {_redact(text)!r}")
    userinfo, _, hostpart = parts.netloc.rpartition("@")
    user_part, has_password, password_part = userinfo.partition(":")
    user = urllib.parse.unquote(user_part) or None
    password = urllib.parse.unquote(password_part) if has_password else None
    params: list[tuple[str, str]] = []
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key == "user":
            user = user or value
        elif key == "password":
            password = password if password is not None else value
        else:
            params.append((key, value))
    hosts = hostpart or "localhost"
    if all(":" not in h.rpartition("]")[2] for h in hosts.split(",")):
        hosts = ",".join(f"{h}:5432" for h in hosts.split(","))
    name = urllib.parse.unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigError(f"the HAPI database URL names no database: {_redact(text)!r} (expected .../dbname)")
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    jdbc_url = f"jdbc:postgresql://{hosts}/{urllib.parse.quote(name, safe='')}{query}"
    return PostgresDatabase(jdbc_url=jdbc_url, user=user, password=password, hosts=hosts, name=name)


def _redact(url: str) -> str:
    """The URL without password: ``user:secret@`` becomes ``user@`` and a ``password=`` parameter goes."""
    url = re.sub(r"(//[^/@:]*):[^/@]*@", r"\1@", url)
    return re.sub(r"([?&;])password=[^&;]*&?", r"\1", url, flags=re.IGNORECASE)


@dataclass(frozen=True)
class ServerInfo:
    """A launcher JVM started by :func:`start`.

    Attributes:
        pid: process id of the JVM.
        port: TCP port on 127.0.0.1.
        base_url: FHIR base, e.g. ``http://127.0.0.1:8080/fhir``.
        data_dir: where the H2 database lives; ``None`` for an in-memory database or PostgreSQL.
        log_file: the JVM's standard output and error.
        jar: the jar that runs.
        started_at: start time, seconds since the epoch.
        database: the PostgreSQL database as ``postgresql://user@host:port/db`` (never with its password);
            ``None`` for H2.
    """

    pid: int
    port: int
    base_url: str
    data_dir: Path | None
    log_file: Path
    jar: Path
    started_at: float
    database: str | None = None

    @property
    def database_kind(self) -> str:
        """``h2-memory``, ``h2-file`` or ``postgresql host:port/db``."""
        if self.database:
            where = self.database.partition("://")[2].rpartition("@")[2]
            return f"postgresql {where}"
        return "h2-memory" if self.data_dir is None else "h2-file"

    @property
    def storage(self) -> str:
        """The database in words, e.g. ``in memory``, ``in /srv/hapi`` or ``postgresql://hapi@db:5432/hapi``."""
        if self.database:
            return self.database
        return "in memory" if self.data_dir is None else f"in {self.data_dir}"

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form written to the state file."""
        data = asdict(self)
        data["data_dir"] = str(self.data_dir) if self.data_dir else None
        data["log_file"] = str(self.log_file)
        data["jar"] = str(self.jar)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerInfo:
        """Read the state file's JSON form back."""
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            base_url=str(data["base_url"]),
            data_dir=Path(data["data_dir"]) if data.get("data_dir") else None,
            log_file=Path(data["log_file"]),
            jar=Path(data["jar"]),
            started_at=float(data["started_at"]),
            database=str(data["database"]) if data.get("database") else None,
        )

    def is_ready(self, timeout: float = 5.0) -> bool:
        """Return whether ``GET {base_url}/metadata`` answers 200 now."""
        return _metadata_ok(self.base_url, timeout)


# ----------------------------------------------------------------------------------------------- build


def launcher_dir() -> Path:
    """Return the launcher's Maven project: ``$VTDUI_HAPI_LAUNCHER_DIR``, else the sources shipped with vtdui.

    Raises:
        HapiError: the directory has no ``pom.xml``.
    """
    env = os.environ.get(ENV_LAUNCHER_DIR)
    # shipped in the wheel (vtdui/_bundled/hapi-launcher), or the checkout's docker/hapi-launcher when editable
    path = Path(env) if env else bundled_path("hapi-launcher")
    if path is None or not (path / "pom.xml").is_file():
        where = f"${ENV_LAUNCHER_DIR}={env}" if env else "this installation (vtdui/_bundled/hapi-launcher)"
        raise HapiError(f"HAPI launcher sources not found in {where}: set {ENV_LAUNCHER_DIR} to the "
                        "docker/hapi-launcher directory of a vtdui checkout, or reinstall vtdui")
    return path


def _source_files(root: Path) -> list[Path]:
    files = [root / "pom.xml"]
    src = root / "src"
    if src.is_dir():
        files += sorted(p for p in src.rglob("*") if p.is_file())
    return files


def source_hash(root: Path | None = None) -> str:
    """Return a short hash of the launcher's sources (``pom.xml`` and ``src/``), the key of the jar cache."""
    root = root if root is not None else launcher_dir()
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Return ``$XDG_CACHE_HOME/vtdui/hapi`` (``~/.cache/vtdui/hapi`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vtdui" / "hapi"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: two processes never build the same jar at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(progress: Progress | None = None) -> Path:
    """Return the launcher jar, building it with Maven when its sources have no cached build yet.

    Args:
        progress: called with each line of Maven's output (the CLI prints them); when ``None`` Maven runs
            quietly and its output is only shown if the build fails.

    Returns:
        The path of the runnable jar.

    Raises:
        HapiError: Java or Maven is missing, or the build failed (the message ends with Maven's output).
    """
    env_jar = os.environ.get(ENV_JAR)
    if env_jar:
        jar = Path(env_jar)
        if not jar.is_file():
            raise HapiError(f"${ENV_JAR} points to {jar}, which does not exist")
        return jar
    root = launcher_dir()
    target_dir = cache_root() / source_hash(root)
    jar = target_dir / _JAR_NAME
    if not jar.is_file():
        with _locked(cache_root() / f"{target_dir.name}.lock"):
            if not jar.is_file():  # another process may have built it while we waited for the lock
                _build(root, target_dir, progress)
    _prune_cache(keep=3, current=target_dir)
    return jar


def _prune_cache(keep: int, current: Path) -> None:
    """Keep the current build and the ``keep - 1`` most recent others (a jar weighs about 300 MB)."""
    builds = sorted((d for d in cache_root().iterdir()
                     if d.is_dir() and d != current and (d / _JAR_NAME).is_file()),
                    key=lambda d: (d / _JAR_NAME).stat().st_mtime, reverse=True)
    for old in builds[keep - 1:]:
        shutil.rmtree(old, ignore_errors=True)
        (cache_root() / f"{old.name}.lock").unlink(missing_ok=True)


def _build(root: Path, target_dir: Path, progress: Progress | None) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise HapiError("Maven (mvn) is needed to build the HAPI launcher: install it (e.g. apt-get install "
                        "maven) or set VTDUI_HAPI_JAR to a built jar")
    if shutil.which("java") is None:
        raise HapiError("Java 17+ (java) is needed to run the HAPI launcher: install a JDK 17")
    target_dir.mkdir(parents=True, exist_ok=True)
    # Build from a copy so that the source tree stays clean and concurrent checkouts never share target/.
    with tempfile.TemporaryDirectory(prefix="build-", dir=target_dir) as tmp:
        work = Path(tmp) / "hapi-launcher"
        work.mkdir()
        shutil.copy2(root / "pom.xml", work / "pom.xml")
        if (root / "src").is_dir():
            shutil.copytree(root / "src", work / "src")
        cmd = [mvn, "-B", "-DskipTests", "-f", str(work / "pom.xml"), "package"]
        if progress is None:
            cmd.insert(1, "-q")
        if progress is not None:
            progress(f"Building the HAPI launcher (first run downloads its Maven dependencies): {' '.join(cmd)}")
        log_lines: list[str] = []
        with subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, errors="replace") as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                log_lines.append(line)
                if progress is not None:
                    progress(line)
            code = proc.wait()
        built = work / "target" / _JAR_NAME
        if code != 0 or not built.is_file():
            tail = "\n".join(log_lines[-40:])
            raise HapiError(f"building the HAPI launcher failed (mvn exit {code}) in {root}:\n{tail}")
        # Atomic: a reader sees either no jar or the whole jar.
        os.replace(built, target_dir / _JAR_NAME)


# ----------------------------------------------------------------------------------------------- run


def default_state_dir() -> Path:
    """Return where the state file and log go: ``$VTDUI_HAPI_STATE_DIR`` or ``~/.local/state/vtdui/hapi``."""
    env = os.environ.get(ENV_STATE_DIR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vtdui" / "hapi"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Return whether something listens on ``port`` of 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself does: connections of a server stopped moments ago (TIME_WAIT) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def jvm_command(jar: Path, port: int, *, data_dir: Path | None = None, memory: str = "1g",
                owner_pid: int | None = None, database: PostgresDatabase | None = None) -> list[str]:
    """Return the command line that runs the launcher.

    Args:
        jar: the launcher jar.
        port: TCP port to listen on (127.0.0.1 only).
        data_dir: keep the database in ``data_dir/h2``; ``None`` for an in-memory database.
        memory: maximum Java heap, e.g. ``"1g"`` or ``"768m"``.
        owner_pid: the server exits when this process ends (used by test sessions).
        database: run on this PostgreSQL database instead of H2; its password is not part of the command
            (see :func:`jvm_environment`).

    Raises:
        ConfigError: ``memory`` or ``port`` is not valid, or both ``data_dir`` and ``database`` are given.
    """
    if not _MEMORY_RE.match(memory):
        raise ConfigError(f"memory must look like 1g or 768m, got {memory!r}")
    if not 1 <= port <= 65535:
        raise ConfigError(f"port must be between 1 and 65535, got {port}")
    java = shutil.which("java") or "java"
    cmd = [java, f"-Xmx{memory}", "-Xms256m", *_JVM_FLAGS, "-jar", str(jar),
           f"--server.port={port}", "--server.address=127.0.0.1"]
    if data_dir is not None and database is not None:
        raise ConfigError("a data directory (H2 on file) and a PostgreSQL database exclude each other")
    if data_dir is not None:
        cmd.append(f"--vtdui.data-dir={data_dir}")
    if database is not None:
        cmd.append(f"--spring.datasource.url={database.jdbc_url}")
        if database.user:
            cmd.append(f"--spring.datasource.username={database.user}")
    if owner_pid is not None:
        cmd.append(f"--vtdui.exit-with-pid={owner_pid}")
    return cmd


def jvm_environment(database: PostgresDatabase | None = None,
                    base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the launcher's JVM: ``base`` (default ``os.environ``) plus the password.

    The password of ``database`` (else ``$PGPASSWORD``) goes into ``SPRING_DATASOURCE_PASSWORD``; a value of that
    variable inherited from ``base`` is dropped, so that an H2 database never gets a stray password.
    """
    env = dict(os.environ if base is None else base)
    env.pop(PASSWORD_ENV, None)
    if database is not None:
        password = database.password if database.password is not None else env.get(PGPASSWORD_ENV)
        if password is not None:
            env[PASSWORD_ENV] = password
    return env


# Popen objects of the servers this process started: kept so that they are reaped (no zombie) on stop.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def start(port: int = DEFAULT_PORT, data_dir: Path | None = None, memory: str = "1g", wait: bool = True,
          timeout: float = 300.0, *, state_dir: Path | None = None, owner_pid: int | None = None,
          progress: Progress | None = None, database_url: str | None = None) -> ServerInfo:
    """Start the launcher as a detached JVM and, by default, wait until it answers.

    If the state directory already records a live server with the same port and database, that server is
    returned; a different one is an error.

    Args:
        port: TCP port on 127.0.0.1.
        data_dir: keep the database there (demo); ``None`` for an in-memory database (tests).
        memory: maximum Java heap (``-Xmx``), e.g. ``"1g"``.
        wait: wait until ``GET /fhir/metadata`` answers 200.
        timeout: seconds to wait for that.
        state_dir: where the state file and the log go; see :func:`default_state_dir`.
        owner_pid: the server stops by itself when this process ends.
        progress: receives build and start-up messages (see :func:`ensure_built`).
        database_url: run on this PostgreSQL database instead of H2 (see :func:`parse_database_url`); the
            database must exist, HAPI creates or updates its tables in it.

    Returns:
        What was started, with its base URL.

    Raises:
        HapiError: the build failed, the port is taken, another server is recorded, or the JVM died or did
            not answer in time (the message ends with the tail of its log).
        ConfigError: a bad ``memory``, ``port`` or ``database_url``, or both ``data_dir`` and ``database_url``.
    """
    state_dir = state_dir if state_dir is not None else default_state_dir()
    database = parse_database_url(database_url) if database_url else None
    if data_dir is not None and database is not None:
        raise ConfigError("a data directory (H2 on file) and a PostgreSQL database URL exclude each other")
    if data_dir is not None:
        data_dir = data_dir.resolve()
    redacted = database.redacted_url if database is not None else None
    current = status(state_dir=state_dir)
    if current is not None:
        if current.port != port or current.data_dir != data_dir or current.database != redacted:
            raise HapiError(f"a HAPI server is already running at {current.base_url} (pid {current.pid}, "
                            f"database {current.storage}); stop it first (vtdui hapi stop)")
        if wait:
            _wait_ready(current, None, timeout)
        return current
    jar = ensure_built(progress)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    cmd = jvm_command(jar, port, data_dir=data_dir, memory=memory, owner_pid=owner_pid, database=database)
    if port_in_use(port):
        raise HapiError(f"port {port} on 127.0.0.1 is already in use: choose another one with --port")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = (data_dir if data_dir is not None else state_dir) / _LOG_FILE
    if progress is not None:
        on = f" on {redacted}" if redacted else ""
        progress(f"Starting HAPI FHIR on port {port}{on} (log: {log_file})")
    with log_file.open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=state_dir, start_new_session=True, close_fds=True,
                                env=jvm_environment(database))
    _CHILDREN[proc.pid] = proc
    info = ServerInfo(pid=proc.pid, port=port, base_url=f"http://127.0.0.1:{port}/fhir", data_dir=data_dir,
                      log_file=log_file, jar=jar, started_at=time.time(), database=redacted)
    _write_state(state_dir, info)
    if wait:
        try:
            _wait_ready(info, proc, timeout)
        except HapiError:
            stop(state_dir=state_dir, grace=10.0)
            raise
    return info


def _wait_ready(info: ServerInfo, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if _metadata_ok(info.base_url, 5.0):
            return
        exited = proc.poll() if proc is not None else (None if _alive(info.pid) else -1)
        if exited is not None:
            tail = log_tail(info.log_file)
            raise HapiError(f"the HAPI server (pid {info.pid}) exited with code {exited} before answering "
                            f"on {info.base_url}{_database_hint(info, tail)}; end of {info.log_file}:\n{tail}")
        if time.monotonic() >= deadline:
            raise HapiError(f"the HAPI server (pid {info.pid}) did not answer on {info.base_url}/metadata "
                            f"within {timeout:.0f} s; end of {info.log_file}:\n{log_tail(info.log_file)}")
        time.sleep(0.5)


def _database_hint(info: ServerInfo, tail: str) -> str:
    """What to check when the launcher's log says it could not reach its database."""
    lines = [line for line in tail.splitlines() if _DB_FAILURE_MARK in line]
    if not lines:
        return ""
    reason = lines[-1][lines[-1].index(_DB_FAILURE_MARK):]
    if info.database is None:
        return f": {reason}"
    where = info.database_kind.partition(" ")[2]
    host, _, name = where.rpartition("/")
    user = info.database.partition("://")[2].rpartition("@")[0] or "(driver default)"
    return (f": {reason}\nCheck that PostgreSQL runs and accepts TCP connections on {host}, that the database "
            f"{name!r} exists (HAPI creates its tables, not the database), and that user {user!r} may connect "
            f"with the password of the URL or ${PGPASSWORD_ENV}")


def _metadata_ok(base_url: str, timeout: float) -> bool:
    try:
        response = httpx.get(f"{base_url}/metadata", timeout=timeout,
                             headers={"Accept": "application/fhir+json"})
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file that are not stack-trace frames."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unavailable: {exc})"
    kept = [line for line in text.splitlines() if not line.startswith(("\tat ", " java.base@"))]
    return "\n".join(kept[-lines:])


def _alive(pid: int) -> bool:
    """Return whether ``pid`` runs (a zombie, i.e. exited but not reaped, counts as dead)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_launcher(info: ServerInfo) -> bool:
    """Guard against pid reuse: the process must still be our jar."""
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(info.pid)  # no /proc (not Linux): trust the pid
    return str(info.jar).encode() in cmdline


def _write_state(state_dir: Path, info: ServerInfo) -> None:
    path = state_dir / _STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _read_state(state_dir: Path) -> ServerInfo | None:
    path = state_dir / _STATE_FILE
    try:
        return ServerInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)  # unreadable: a half-written or foreign file, not a server
        return None


def status(*, state_dir: Path | None = None) -> ServerInfo | None:
    """Return the server recorded in the state directory if its JVM still runs, else ``None``.

    A state file left by a server that died is removed.
    """
    state_dir = state_dir if state_dir is not None else default_state_dir()
    info = _read_state(state_dir)
    if info is None:
        return None
    if _alive(info.pid) and _is_launcher(info):
        return info
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    _CHILDREN.pop(info.pid, None)
    return None


def stop(*, state_dir: Path | None = None, grace: float = 30.0) -> ServerInfo | None:
    """Stop the recorded server: SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

    Returns:
        What was stopped, or ``None`` if no server was running.
    """
    state_dir = state_dir if state_dir is not None else default_state_dir()
    info = status(state_dir=state_dir)
    if info is None:
        return None
    _signal(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(info.pid):
        _signal(info.pid, signal.SIGKILL)
        kill_deadline = time.monotonic() + 10.0
        while _alive(info.pid) and time.monotonic() < kill_deadline:
            time.sleep(0.1)
    child = _CHILDREN.pop(info.pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    return info


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
