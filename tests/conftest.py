"""Session-wide fixtures: a real HAPI FHIR server, and generic helpers.

``hapi`` (and its short form ``hapi_base_url``) finds a server in this order:

1. ``$FHIR_BASE_URL`` when set (it must answer ``GET /metadata``);
2. ``docker/compose.yaml`` through pytest-docker, when a Docker engine answers ``docker info``;
3. our own launcher (``docker/hapi-launcher``), built if needed and started on a free port with an in-memory
   database, stopped at the end of the session.

With ``VTDUI_TEST_HAPI_DATABASE=postgresql`` the launcher runs on PostgreSQL instead (origin
``launcher-postgresql``): the ``postgres`` fixture's server, in a database ``hapi`` created for the session.
Docker is not tried then (its compose file runs H2), and ``FHIR_BASE_URL`` may not be set with it.

When none works the tests that use it FAIL with the reason: they are never skipped, so a missing server can
not pass for a green run. Fixtures of one test area belong in ``tests/<area>/conftest.py``.

The official IG resources (the ANS's publication, not part of the repository) come from an explicit setting:
``--ig-package PATH`` or ``$VTDUI_IG_PACKAGE`` (the package ``.tgz`` or a folder of its resources), read by the
``official_ig`` fixture; the transcription of the NOS terminology the snapshot in ``profiles/terminology`` is
written from comes from ``--terminology-source FILE`` or ``$VTDUI_TERMINOLOGY_SOURCE`` (``terminology_source``
fixture). Without them, exactly the tests that need them are skipped, with that reason; ``.ci/run`` sets both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from vtdui import hapi_server, pg_server
from vtdui.errors import ConfigError
from vtdui.ig_package import IgPackage, load_ig_package

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker" / "compose.yaml"
#: The official IG package (``.tgz``) or a folder of its resources.
ENV_IG_PACKAGE = "VTDUI_IG_PACKAGE"
#: The transcription of the NOS terminology that ``profiles/build_terminology.py`` reads.
TERMINOLOGY_SOURCE_ENV = "VTDUI_TERMINOLOGY_SOURCE"

_START_TIMEOUT = float(os.environ.get("VTDUI_HAPI_START_TIMEOUT", "300"))
#: ``postgresql``: the session's HAPI launcher runs on PostgreSQL; empty or ``h2``: on H2 in memory (default).
HAPI_DATABASE_ENV = "VTDUI_TEST_HAPI_DATABASE"
_PEAK_RSS_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--ig-package`` and ``--terminology-source``: where the official resources the project does not ship are."""
    group = parser.getgroup("vtdui")
    group.addoption("--ig-package", default=None, metavar="PATH",
                    help=f"official IG package ans.fhir.fr.sdo 4.0.7 (.tgz or folder); default ${ENV_IG_PACKAGE}")
    group.addoption("--terminology-source", default=None, metavar="FILE",
                    help=f"terminology transcription read by profiles/build_terminology.py; default "
                         f"${TERMINOLOGY_SOURCE_ENV}")


def _setting(config: pytest.Config, option: str, env: str) -> str | None:
    value = config.getoption(option) or os.environ.get(env, "").strip()
    return str(value) if value else None


@pytest.fixture(scope="session")
def official_ig(pytestconfig: pytest.Config) -> IgPackage:
    """The official IG package named by ``--ig-package`` / ``$VTDUI_IG_PACKAGE``; the test is skipped without it.

    A setting that names something else than the official package fails the test (a wrong path must not pass
    for a skip).
    """
    value = _setting(pytestconfig, "--ig-package", ENV_IG_PACKAGE)
    if value is None:
        pytest.skip(f"official IG resources not configured: set {ENV_IG_PACKAGE} or --ig-package to the package "
                    "ans.fhir.fr.sdo 4.0.7 (.tgz or folder); they are the ANS's, not in the repository")
    try:
        return load_ig_package(Path(value))
    except ConfigError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def terminology_source(pytestconfig: pytest.Config) -> Path:
    """The terminology transcription (``--terminology-source`` / ``$VTDUI_TERMINOLOGY_SOURCE``); skip without it."""
    value = _setting(pytestconfig, "--terminology-source", TERMINOLOGY_SOURCE_ENV)
    if value is None:
        pytest.skip(f"terminology transcription not configured: set {TERMINOLOGY_SOURCE_ENV} or "
                    "--terminology-source (the file profiles/build_terminology.py reads; not in the repository)")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"terminology transcription {path} not found ({TERMINOLOGY_SOURCE_ENV} / --terminology-source)")
    return path


@dataclass(frozen=True)
class HapiTarget:
    """The HAPI FHIR server of this test session.

    Attributes:
        base_url: FHIR base, without a trailing slash.
        origin: ``env``, ``docker``, ``launcher`` (H2 in memory) or ``launcher-postgresql``.
        callback_host: host name under which the server reaches a receiver run by a test (REST hooks).
        bind_host: address such a receiver listens on.
        log_file: the server's log, when we started it.
    """

    base_url: str
    origin: str
    callback_host: str = "127.0.0.1"
    bind_host: str = "127.0.0.1"
    log_file: Path | None = None


#: HAPI's codes for a REST-hook delivery that failed: the answer could not be parsed (1359, 1838) or the
#: delivery channel was closed (2659).
DELIVERY_FAILURE_CODES = ("HAPI-1359", "HAPI-1838", "HAPI-2659")


class HapiLog:
    """The session's HAPI log, read from a point on (the launcher's, or ``$VTDUI_TEST_HAPI_LOG``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size

    def lines(self) -> list[str]:
        """The lines written since this object was made."""
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            return handle.read().decode("utf-8", errors="replace").splitlines()

    def delivery_failures(self) -> list[str]:
        """The lines since then that report a failed REST-hook delivery."""
        return [line for line in self.lines() if any(code in line for code in DELIVERY_FAILURE_CODES)]


@pytest.fixture
def hapi_log(hapi: HapiTarget) -> HapiLog:
    """The session's HAPI log from the start of the test on; fails when the server's log cannot be read."""
    path = hapi.log_file or (Path(os.environ["VTDUI_TEST_HAPI_LOG"]) if os.environ.get("VTDUI_TEST_HAPI_LOG")
                             else None)
    if path is None or not path.is_file():
        pytest.fail(f"this test reads HAPI's log, which a server of origin {hapi.origin!r} does not give: set "
                    "VTDUI_TEST_HAPI_LOG to the server's log file")
    return HapiLog(path)


def metadata_ok(base_url: str, timeout: float = 10.0) -> bool:
    """Return whether ``GET {base_url}/metadata`` answers 200."""
    try:
        return httpx.get(f"{base_url}/metadata", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _docker_answers() -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "no docker client"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker info failed: {exc}"
    if done.returncode != 0:
        return False, "docker info failed (no Docker engine)"
    return True, ""


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    """pytest-docker: our compose file (only read when a Docker engine answers)."""
    return str(COMPOSE_FILE)


def _from_docker(request: pytest.FixtureRequest) -> HapiTarget:
    # The compose file publishes ${HAPI_PORT:-8080}: take a free port so a developer's server is left alone.
    os.environ.setdefault("HAPI_PORT", str(hapi_server.free_port()))
    services = request.getfixturevalue("docker_services")
    ip = request.getfixturevalue("docker_ip")
    port = services.port_for("hapi", 8080)
    base = f"http://{ip}:{port}/fhir"
    services.wait_until_responsive(check=lambda: metadata_ok(base, 5.0), timeout=_START_TIMEOUT, pause=2.0)
    # From inside the container the host is host.docker.internal (extra_hosts: host-gateway), which is not
    # the loopback interface: the receiver has to listen on every interface of this (Docker) machine.
    return HapiTarget(base_url=base, origin="docker", callback_host="host.docker.internal",
                      bind_host="0.0.0.0")  # only where a Docker engine runs


@pytest.fixture(scope="session")
def hapi(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HapiTarget]:
    """A running HAPI FHIR server for the session (see the module docstring for where it comes from)."""
    callback = os.environ.get("VTDUI_TEST_CALLBACK_HOST")
    env_url = os.environ.get("FHIR_BASE_URL")
    database = os.environ.get(HAPI_DATABASE_ENV, "").strip().lower()
    if database not in ("", "h2", "postgresql"):
        pytest.fail(f"{HAPI_DATABASE_ENV}={database!r}: expected postgresql, h2 or nothing")
    if database == "postgresql":
        if env_url:
            pytest.fail(f"{HAPI_DATABASE_ENV}=postgresql asks for our launcher on PostgreSQL, but FHIR_BASE_URL "
                        f"is set too ({env_url}): unset one of them")
        yield from _launcher_on_postgres(request, tmp_path_factory, callback)
        return
    if env_url:
        base = env_url.rstrip("/")
        if not metadata_ok(base):
            pytest.fail(f"FHIR_BASE_URL={base} is set but GET {base}/metadata does not answer 200")
        yield HapiTarget(base_url=base, origin="env", callback_host=callback or "127.0.0.1")
        return

    docker_ok, docker_reason = _docker_answers()
    if docker_ok:
        try:
            yield _from_docker(request)
        except Exception as exc:  # pytest-docker raises a bare Exception when compose fails
            pytest.fail(f"a Docker engine answers but docker/compose.yaml did not give a HAPI server: {exc}")
        return

    state_dir = tmp_path_factory.mktemp("hapi-state")
    try:
        info = hapi_server.start(port=hapi_server.free_port(), data_dir=None, memory="1g",
                                 timeout=_START_TIMEOUT, state_dir=state_dir, owner_pid=os.getpid())
    except Exception as exc:
        pytest.fail(f"no HAPI FHIR server: FHIR_BASE_URL is not set, {docker_reason}, and the local "
                    f"launcher did not start: {exc}")
    try:
        yield HapiTarget(base_url=info.base_url, origin="launcher", callback_host=callback or "127.0.0.1",
                         log_file=info.log_file)
    finally:
        request.config.stash[_PEAK_RSS_KEY] = _peak_rss(info.pid)
        hapi_server.stop(state_dir=state_dir)


@pytest.fixture(scope="session")
def vtdui_hapi(hapi: HapiTarget) -> str:
    """The testing kit's HAPI fixture (``vtdui.testing``) is this session's server: one JVM per run."""
    return hapi.base_url


def _launcher_on_postgres(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                          callback: str | None) -> Iterator[HapiTarget]:
    """The launcher on a database ``hapi`` of the session's PostgreSQL server (fixture ``postgres``)."""
    target: PostgresTarget = request.getfixturevalue("postgres")
    try:
        if target.server is not None:
            url = pg_server.create_database(target.server, "hapi")
        else:  # a shared server ($VTDUI_TEST_DATABASE_URL): a database of our own
            url = target.fresh_database("hapi")
    except Exception as exc:
        pytest.fail(f"{HAPI_DATABASE_ENV}=postgresql: could not create the database for HAPI: {exc}")
    state_dir = tmp_path_factory.mktemp("hapi-state")
    try:
        info = hapi_server.start(port=hapi_server.free_port(), memory="1g", timeout=_START_TIMEOUT,
                                 state_dir=state_dir, owner_pid=os.getpid(), database_url=url)
    except Exception as exc:
        pytest.fail(f"{HAPI_DATABASE_ENV}=postgresql: the local launcher did not start on {url}: {exc}")
    try:
        yield HapiTarget(base_url=info.base_url, origin="launcher-postgresql",
                         callback_host=callback or "127.0.0.1", log_file=info.log_file)
    finally:
        request.config.stash[_PEAK_RSS_KEY] = _peak_rss(info.pid)
        hapi_server.stop(state_dir=state_dir)


@pytest.fixture(scope="session")
def hapi_base_url(hapi: HapiTarget) -> str:
    """FHIR base URL of the session's HAPI server, e.g. ``http://127.0.0.1:41234/fhir``."""
    return hapi.base_url


@pytest.fixture
def fhir(hapi_base_url: str) -> Iterator[httpx.Client]:
    """An httpx client on the HAPI base URL that speaks FHIR JSON."""
    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=hapi_base_url + "/", headers=headers, timeout=60.0) as client:
        yield client


@dataclass(frozen=True)
class PostgresTarget:
    """The PostgreSQL server of this test session.

    Attributes:
        url: URL of a database the tests may use to create others (``CREATE DATABASE``).
        origin: ``env`` ($VTDUI_TEST_DATABASE_URL) or ``local`` (a cluster started by the session).
        server: the local cluster, when the session started one.
    """

    url: str
    origin: str
    server: pg_server.LocalPostgres | None = None

    def fresh_database(self, prefix: str = "t") -> str:
        """Create an empty database with a unique name and return its URL."""
        import psycopg
        from psycopg import sql

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresTarget]:
    """A PostgreSQL server for the session: ``$VTDUI_TEST_DATABASE_URL``, else a local Debian cluster.

    The local cluster is created in a fresh directory under the system temporary folder (readable by the
    ``postgres`` user when the tests run as root) and stopped at the end. Never skipped: without a server the
    tests that need one fail with the reason.
    """
    env_url = os.environ.get("VTDUI_TEST_DATABASE_URL")
    if env_url:
        yield PostgresTarget(url=env_url, origin="env")
        return
    root = Path(tempfile.mkdtemp(prefix="vtdui-pg-"))
    root.chmod(0o755)
    try:
        server = pg_server.start(root / "data", hapi_server.free_port(), durable=False)
    except pg_server.PostgresUnavailableError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"no PostgreSQL server: VTDUI_TEST_DATABASE_URL is not set and {exc}")
    try:
        yield PostgresTarget(url=server.url, origin="local", server=server)
    finally:
        pg_server.stop(server.data_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: PostgresTarget) -> str:
    """URL of a new, empty PostgreSQL database for one test."""
    return postgres.fresh_database()


def _peak_rss(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Report the peak memory of the HAPI launcher this session started."""
    peak = config.stash.get(_PEAK_RSS_KEY, None)
    if peak is not None:
        terminalreporter.write_line(f"HAPI launcher peak RSS (VmHWM): {peak}")
