"""Our HAPI launcher on PostgreSQL: FHIR behaviour, data really in PostgreSQL, restart on the same database.

Always runs (not only under ``VTDUI_TEST_HAPI_DATABASE=postgresql``): the module starts its own launcher on a
fresh database of the session's PostgreSQL server (fixture ``postgres``: ``$VTDUI_TEST_DATABASE_URL`` or a local
Debian cluster). Nothing is skipped: without Java, Maven or PostgreSQL binaries the tests fail with the reason.
The tests of the module share that server and run in file order; the restart test comes last.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from vtdui import hapi_server
from vtdui.commands.hapi import hapi as hapi_cli
from vtdui.errors import ConfigError, HapiError

pytestmark = pytest.mark.integration

SYSTEM = "urn:vtdui:test:pg"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
#: Put in the URL the launcher gets; must never show in its command line, log or state file.
SECRET = f"pw-{uuid.uuid4().hex}"


class PostgresServer(Protocol):
    """What this module uses of the session fixture ``postgres`` (``PostgresTarget`` of tests/conftest.py)."""

    @property
    def origin(self) -> str:
        """``env`` or ``local``."""
        ...

    def fresh_database(self, prefix: str = "t") -> str:
        """Create an empty database and return its URL."""
        ...


@dataclass
class PgHapi:
    """The module's launcher on PostgreSQL (``info`` changes when a test restarts it)."""

    info: hapi_server.ServerInfo
    state_dir: Path
    database_url: str  #: with the password (the launcher's argument)
    libpq_url: str  #: for psycopg
    secret: str

    @property
    def base_url(self) -> str:
        """FHIR base URL of the running server."""
        return self.info.base_url

    def client(self) -> httpx.Client:
        """A FHIR JSON client on the server."""
        return httpx.Client(base_url=self.base_url + "/", headers=FHIR_JSON, timeout=60.0)

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a query on the HAPI database, read directly with psycopg."""
        with psycopg.connect(self.libpq_url) as conn:
            return conn.execute(query, params).fetchall()


def _with_password(url: str) -> tuple[str, str]:
    """``url`` with a password (ours when it has none, which a trust-auth cluster ignores) and that password."""
    db = hapi_server.parse_database_url(url)
    if db.password:
        return url, db.password
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.quote(db.user or "postgres", safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{SECRET}@{db.hosts}")), SECRET


@pytest.fixture(scope="module")
def pg_hapi(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgHapi]:
    """Our launcher on a fresh PostgreSQL database, for this module; stopped at the end."""
    libpq_url = postgres.fresh_database("hapi_it")
    database_url, secret = _with_password(libpq_url)
    state_dir = tmp_path_factory.mktemp("hapi-pg-state")
    try:
        info = hapi_server.start(port=hapi_server.free_port(), memory="1g", state_dir=state_dir,
                                 owner_pid=os.getpid(), database_url=database_url, timeout=300.0)
    except Exception as exc:
        pytest.fail(f"the HAPI launcher did not start on PostgreSQL ({postgres.origin}): {exc}")
    try:
        yield PgHapi(info=info, state_dir=state_dir, database_url=database_url, libpq_url=libpq_url,
                     secret=secret)
    finally:
        hapi_server.stop(state_dir=state_dir, grace=20.0)


def _count(pg: PgHapi, resource_type: str | None = None) -> int:
    if resource_type is None:
        return int(pg.sql("SELECT count(*) FROM hfj_resource")[0][0])
    return int(pg.sql("SELECT count(*) FROM hfj_resource WHERE res_type = %s", resource_type)[0][0])


def _patient(key: str, family: str = "Martin") -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": key}],
            "name": [{"family": family, "given": ["Lou"]}], "birthDate": "1950-02-03"}


# ------------------------------------------------------------------------------- no server needed


def test_database_urls_are_read_and_the_password_kept_apart() -> None:
    db = hapi_server.parse_database_url("postgresql://hapi:p%40ss@db.example:6543/fhir?sslmode=require")
    assert db.jdbc_url == "jdbc:postgresql://db.example:6543/fhir?sslmode=require"
    assert (db.user, db.password, db.hosts, db.name) == ("hapi", "p@ss", "db.example:6543", "fhir")
    assert db.redacted_url == "postgresql://hapi@db.example:6543/fhir"
    assert "p@ss" not in repr(db)
    jdbc = hapi_server.parse_database_url("jdbc:postgresql://h/fhir?user=u&password=secret&ssl=true")
    assert (jdbc.jdbc_url, jdbc.user, jdbc.password) == ("jdbc:postgresql://h:5432/fhir?ssl=true", "u", "secret")
    for bad in ("mysql://h/db", "jdbc:h2:mem:x", "postgresql://h:5432/"):
        with pytest.raises(ConfigError):
            hapi_server.parse_database_url(bad)


def test_password_goes_to_the_environment_never_the_command_line() -> None:
    db = hapi_server.parse_database_url("postgresql://hapi:topsecret@127.0.0.1:5432/fhir")
    cmd = hapi_server.jvm_command(Path("x.jar"), 18080, database=db)
    assert "--spring.datasource.url=jdbc:postgresql://127.0.0.1:5432/fhir" in cmd
    assert "--spring.datasource.username=hapi" in cmd
    assert not any("topsecret" in arg for arg in cmd)
    assert not any(arg.startswith("--vtdui.data-dir") for arg in cmd)
    env = hapi_server.jvm_environment(db, base={"PATH": "/bin", hapi_server.PASSWORD_ENV: "stray"})
    assert env[hapi_server.PASSWORD_ENV] == "topsecret"
    # H2 never inherits a stray password; a URL without password falls back to $PGPASSWORD.
    assert hapi_server.PASSWORD_ENV not in hapi_server.jvm_environment(None, base={hapi_server.PASSWORD_ENV: "x"})
    bare = hapi_server.parse_database_url("postgresql://hapi@127.0.0.1/fhir")
    assert hapi_server.jvm_environment(bare, base={"PGPASSWORD": "pg"})[hapi_server.PASSWORD_ENV] == "pg"
    with pytest.raises(ConfigError, match="exclude"):
        hapi_server.jvm_command(Path("x.jar"), 18080, data_dir=Path("/srv/h"), database=db)


def test_cli_refuses_postgres_with_h2_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(hapi_cli, ["start", "--in-memory", "--database-url", "postgresql://h/db",
                                           "--state-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "excludes --in-memory and --data-dir" in result.output


# ------------------------------------------------------------------------------- on PostgreSQL


def test_server_runs_on_postgres_and_hides_the_password(pg_hapi: PgHapi) -> None:
    info = pg_hapi.info
    db = hapi_server.parse_database_url(pg_hapi.database_url)
    assert info.database == db.redacted_url
    assert info.database_kind == f"postgresql {db.hosts}/{db.name}"
    state_text = (pg_hapi.state_dir / "hapi-server.json").read_text()
    assert json.loads(state_text)["database"] == db.redacted_url
    assert pg_hapi.secret not in state_text
    assert pg_hapi.secret not in info.log_file.read_text(errors="replace")
    cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
    assert pg_hapi.secret.encode() not in cmdline
    assert b"--spring.datasource.url=jdbc:postgresql://" in cmdline
    # The launcher says which database it uses, without parameters.
    assert "database POSTGRESQL (jdbc:postgresql://" in info.log_file.read_text(errors="replace")
    # HAPI created its schema in PostgreSQL.
    tables = {row[0] for row in pg_hapi.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"hfj_resource", "hfj_res_ver", "hfj_spidx_string", "hfj_res_tag"} <= tables
    result = CliRunner().invoke(hapi_cli, ["status", "--state-dir", str(pg_hapi.state_dir)])
    assert result.exit_code == 0, result.output
    assert f"database postgresql {db.hosts}/{db.name}" in result.output
    assert pg_hapi.secret not in result.output


def test_create_read_search_update_history(pg_hapi: PgHapi) -> None:
    key = uuid.uuid4().hex[:12]
    before = _count(pg_hapi, "Patient")
    with pg_hapi.client() as fhir:
        created = fhir.post("Patient", json=_patient(key, family=f"Fam{key}"))
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        assert fhir.get(f"Patient/{pid}").json()["name"][0]["family"] == f"Fam{key}"
        found = fhir.get("Patient", params={"family": f"Fam{key}"}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [pid]
        by_identifier = fhir.get("Patient", params={"identifier": f"{SYSTEM}|{key}"}).json()
        assert by_identifier["total"] == 1
        changed = _patient(key, family=f"Fam{key}") | {"id": pid, "birthDate": "1951-03-04"}
        updated = fhir.put(f"Patient/{pid}", json=changed)
        assert updated.status_code == 200, updated.text
        assert updated.json()["meta"]["versionId"] == "2"
        history = fhir.get(f"Patient/{pid}/_history").json()
        assert sorted(e["resource"]["meta"]["versionId"] for e in history["entry"]) == ["1", "2"]
        v1 = fhir.get(f"Patient/{pid}/_history/1").json()
        assert v1["birthDate"] == "1950-02-03"
        # Client-assigned id (PUT create), as vtdui does.
        client_id = f"pg-{key}"
        assert fhir.put(f"Patient/{client_id}", json=_patient(f"{key}-b") | {"id": client_id}).status_code == 201
    assert _count(pg_hapi, "Patient") == before + 2
    rows = pg_hapi.sql("SELECT res_type, res_ver FROM hfj_resource WHERE fhir_id = %s", pid)
    assert rows == [("Patient", 2)]
    versions = pg_hapi.sql(
        "SELECT v.res_ver FROM hfj_res_ver v JOIN hfj_resource r ON r.res_id = v.res_id WHERE r.fhir_id = %s "
        "ORDER BY v.res_ver", pid)
    assert [row[0] for row in versions] == [1, 2]


def test_task_tags_are_stored_and_searchable(pg_hapi: PgHapi) -> None:
    key = uuid.uuid4().hex[:12]
    with pg_hapi.client() as fhir:
        patient = fhir.post("Patient", json=_patient(key)).json()
        task = {
            "resourceType": "Task", "status": "requested", "intent": "order",
            "identifier": [{"system": SYSTEM, "value": f"task-{key}"}],
            "for": {"reference": f"Patient/{patient['id']}"},
            "meta": {"tag": [{"system": f"{SYSTEM}:tag", "code": f"t-{key}"},
                             {"system": f"{SYSTEM}:flow", "code": "outbound"}]},
        }
        created = fhir.post("Task", json=task)
        assert created.status_code == 201, created.text
        tid = created.json()["id"]
        tagged = fhir.get("Task", params={"_tag": f"{SYSTEM}:tag|t-{key}"}).json()
        assert [e["resource"]["id"] for e in tagged.get("entry", [])] == [tid]
        for_patient = fhir.get("Task", params={"patient": f"Patient/{patient['id']}", "status": "requested"}).json()
        assert [e["resource"]["id"] for e in for_patient.get("entry", [])] == [tid]
        codes = {t["code"] for t in fhir.get(f"Task/{tid}").json()["meta"]["tag"]}
        assert codes == {f"t-{key}", "outbound"}
    stored = pg_hapi.sql(
        "SELECT d.tag_code FROM hfj_res_tag t JOIN hfj_tag_def d ON d.tag_id = t.tag_id "
        "JOIN hfj_resource r ON r.res_id = t.res_id WHERE r.fhir_id = %s ORDER BY d.tag_code", tid)
    assert [row[0] for row in stored] == sorted([f"t-{key}", "outbound"])


def test_transaction_bundle_and_conditional_create(pg_hapi: PgHapi) -> None:
    key = uuid.uuid4().hex[:12]
    before = _count(pg_hapi)
    patient_ref = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": patient_ref, "resource": _patient(key),
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={SYSTEM}|{key}"}},
            {"resource": {"resourceType": "Task", "status": "requested", "intent": "order",
                          "identifier": [{"system": SYSTEM, "value": f"task-{key}"}],
                          "for": {"reference": patient_ref}},
             "request": {"method": "PUT", "url": f"Task?identifier={SYSTEM}|task-{key}"}},
        ],
    }
    with pg_hapi.client() as fhir:
        response = fhir.post("", json=bundle)
        assert response.status_code == 200, response.text
        statuses = [e["response"]["status"] for e in response.json()["entry"]]
        assert [s.split()[0] for s in statuses] == ["201", "201"]
        pid = response.json()["entry"][0]["response"]["location"].split("/")[1]
        task = fhir.get("Task", params={"identifier": f"{SYSTEM}|task-{key}"}).json()["entry"][0]["resource"]
        assert task["for"]["reference"] == f"Patient/{pid}"
        # Again: the conditional create finds the patient, the conditional update makes version 2 of the task.
        again = fhir.post("", json=bundle).json()
        assert [e["response"]["status"].split()[0] for e in again["entry"]] == ["200", "200"]
        assert again["entry"][0]["response"]["location"].split("/")[1] == pid
        # Plain conditional create (If-None-Exist), as vtdui's idempotent upserts do.
        other = f"{key}-c"
        first = fhir.post("Patient", json=_patient(other), headers={"If-None-Exist": f"identifier={SYSTEM}|{other}"})
        second = fhir.post("Patient", json=_patient(other),
                           headers={"If-None-Exist": f"identifier={SYSTEM}|{other}"})
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        type_history = fhir.get("Task/_history", params={"_count": 500}).json()
        assert any(e["resource"]["id"] == task["id"] for e in type_history.get("entry", []))
    assert _count(pg_hapi) == before + 3  # two patients and one task, nothing duplicated


def test_unreachable_postgres_is_reported_with_what_to_check(tmp_path: Path) -> None:
    port = hapi_server.free_port()  # nothing listens there
    with pytest.raises(HapiError) as caught:
        hapi_server.start(port=hapi_server.free_port(), state_dir=tmp_path / "state", timeout=120.0,
                          database_url=f"postgresql://vtdui:{SECRET}@127.0.0.1:{port}/nowhere")
    message = str(caught.value)
    assert "cannot connect to the database jdbc:postgresql://127.0.0.1:" in message
    assert f"accepts TCP connections on 127.0.0.1:{port}" in message
    assert "refused" in message  # the driver's reason, from the log tail
    assert SECRET not in message
    assert hapi_server.status(state_dir=tmp_path / "state") is None


def test_restart_on_the_same_database_keeps_the_data(pg_hapi: PgHapi) -> None:
    """Last test of the module: stops the shared server and starts a new JVM on the same database."""
    key = uuid.uuid4().hex[:12]
    with pg_hapi.client() as fhir:
        pid = fhir.post("Patient", json=_patient(key, family=f"Keep{key}")).json()["id"]
        task = {"resourceType": "Task", "status": "requested", "intent": "order",
                "for": {"reference": f"Patient/{pid}"}, "meta": {"tag": [{"system": SYSTEM, "code": key}]}}
        tid = fhir.post("Task", json=task).json()["id"]
    rows_before = _count(pg_hapi)
    port = pg_hapi.info.port
    assert hapi_server.stop(state_dir=pg_hapi.state_dir, grace=20.0) is not None
    assert hapi_server.status(state_dir=pg_hapi.state_dir) is None
    pg_hapi.info = hapi_server.start(port=port, memory="1g", state_dir=pg_hapi.state_dir, owner_pid=os.getpid(),
                                     database_url=pg_hapi.database_url, timeout=300.0)
    assert _count(pg_hapi) == rows_before
    with pg_hapi.client() as fhir:
        assert fhir.get(f"Patient/{pid}").json()["name"][0]["family"] == f"Keep{key}"
        found = fhir.get("Patient", params={"family": f"Keep{key}"}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [pid]
        tagged = fhir.get("Task", params={"_tag": f"{SYSTEM}|{key}"}).json()
        assert [e["resource"]["id"] for e in tagged.get("entry", [])] == [tid]
        # Still writable after the restart (the schema update found nothing to change).
        assert fhir.put(f"Patient/{pid}", json=_patient(key, family=f"Keep{key}") | {"id": pid}).status_code == 200
    assert _count(pg_hapi) == rows_before
