"""Hostile or careless configuration values, each through the real ``vtdui`` executable (no CliRunner).

Every value is either refused by ``vtdui config check`` with a message naming the key and the fix (exit 1,
no traceback), or shown to be harmless (exit 0, a warning naming the key). A subset is also given to the
other commands that load the configuration: same refusal, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_helpers import EG, EJ

from vtdui.simulator.pki import Pki

VTDUI = str(Path(sys.executable).with_name("vtdui"))
PASSWORD = "Pw-in-the-url-4242"  # a test value that must never be printed


@dataclass(frozen=True)
class Case:
    """One hostile value: where it goes, and the key the message must name (``None``: harmless)."""

    name: str
    changes: dict[str, str] = field(default_factory=dict)  # "section.key" -> TOML literal
    key: str | None = None
    fix: str = ""  # a word of the fix the message must give
    env: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # the whole file, for the cases that break the file itself
    warning: str | None = None  # harmless cases: the key of the expected warning


NUL, ESC, RLO, ZWSP = "\\u0000", "\\u001b", "\\u202e", "\\u200b"

CASES: tuple[Case, ...] = (
    # inbound windows and schedule
    Case("overlap-negative", {"sync.overlap_seconds": "-3600"}, "sync.overlap_seconds", "at least 0"),
    Case("first-lookback-negative", {"sync.first_lookback_days": "-3650"}, "sync.first_lookback_days", "at least 1"),
    Case("first-lookback-huge", {"sync.first_lookback_days": "100000"}, "sync.first_lookback_days", "at most 366"),
    Case("max-lookback-negative", {"sync.max_lookback_days": "-1"}, "sync.max_lookback_days", "at least 1"),
    Case("max-lookback-float", {"sync.max_lookback_days": "30.5"}, "sync.max_lookback_days", "expected int"),
    Case("interval-zero", {"sync.interval_seconds": "0"}, "sync.interval_seconds", "at least 1"),
    Case("interval-negative", {"sync.interval_seconds": "-5"}, "sync.interval_seconds", "at least 1"),
    Case("interval-nan", {"sync.interval_seconds": "nan"}, "sync.interval_seconds", "at most 86400"),
    Case("interval-inf", {"sync.interval_seconds": "inf"}, "sync.interval_seconds", "at most 86400"),
    Case("interval-over-a-day", {"sync.interval_seconds": "90000"}, "sync.interval_seconds", "daily"),
    Case("interval-boolean", {"sync.interval_seconds": "true"}, "sync.interval_seconds", "expected float"),
    Case("interval-string", {"sync.interval_seconds": '"3600"'}, "sync.interval_seconds", "expected float"),
    Case("concurrency-zero", {"sync.max_concurrent": "0"}, "sync.max_concurrent", "at least 1"),
    Case("concurrency-huge", {"sync.max_concurrent": "100000"}, "sync.max_concurrent", "at most 64"),
    Case("per-entity-negative", {"sync.max_concurrent_per_entity": "-2"}, "sync.max_concurrent_per_entity",
         "at least 1"),
    Case("backoff-negative", {"sync.failure_backoff_seconds": "-1"}, "sync.failure_backoff_seconds", "more than 0"),
    Case("poll-lease-inf", {"sync.lease_seconds": "inf"}, "sync.lease_seconds", "at most"),
    Case("sync-unknown-key", {"sync.intervall_seconds": "60"}, "sync.intervall_seconds", "interval_seconds"),
    # outbound worker
    Case("outbox-poll-inf", {"outbox.poll_seconds": "inf"}, "outbox.poll_seconds", "at most 3600"),
    Case("outbox-poll-tiny", {"outbox.poll_seconds": "1e-300"}, "outbox.poll_seconds", "at least 0.1"),
    Case("outbox-poll-negative", {"outbox.poll_seconds": "-1"}, "outbox.poll_seconds", "at least 0.1"),
    Case("outbox-reconcile-zero", {"outbox.reconcile_seconds": "0"}, "outbox.reconcile_seconds", "at least 1"),
    Case("outbox-lease-nan", {"outbox.lease_seconds": "nan"}, "outbox.lease_seconds", "at least 1"),
    # timeouts and retries
    Case("hapi-timeout-negative", {"hapi.timeout": "-1"}, "hapi.timeout", "more than 0"),
    Case("vt-timeout-zero", {"viatrajectoire.timeout": "0"}, "viatrajectoire.timeout", "more than 0"),
    Case("vt-timeout-huge", {"viatrajectoire.timeout": "1e9"}, "viatrajectoire.timeout", "at most 600"),
    Case("page-size-zero", {"viatrajectoire.page_size": "0"}, "viatrajectoire.page_size", "at least 1"),
    Case("renew-margin-negative", {"viatrajectoire.token_renew_margin": "-10"},
         "viatrajectoire.token_renew_margin", "at least 0"),
    Case("retry-attempts-negative", {"retry.attempts": "-1"}, "retry.attempts", "at least 1"),
    Case("retry-attempts-zero", {"retry.attempts": "0"}, "retry.attempts", "at least 1"),
    Case("retry-base-delay-negative", {"retry.base_delay": "-1"}, "retry.base_delay", "at least 0"),
    Case("retry-max-below-base", {"retry.base_delay": "10", "retry.max_delay": "1"}, "retry.max_delay",
         "raise max_delay"),
    Case("retry-max-age-zero", {"retry.max_age_seconds": "0"}, "retry.max_age_seconds", "more than 0"),
    # receiver
    Case("port-too-high", {"receiver.port": "99999"}, "receiver.port", "at most 65535"),
    Case("port-negative", {"receiver.port": "-1"}, "receiver.port", "at least 1"),
    Case("port-zero", {"receiver.port": "0"}, "receiver.port", "at least 1"),
    Case("port-string", {"receiver.port": '"8765"'}, "receiver.port", "expected int"),
    Case("receiver-secret-one-char", {"receiver.secret": '"x"'}, "receiver.secret", "at least 16"),
    Case("receiver-host-empty", {"receiver.host": '""'}, "receiver.host", "e.g. 127.0.0.1"),
    Case("receiver-public-url-not-url", {"receiver.public_url": '"not a url"'}, "receiver.public_url", "URL"),
    # database
    Case("pool-size-huge", {"database.pool_size": "100000000"}, "database.pool_size", "at most 100"),
    Case("pool-size-zero", {"database.pool_size": "0"}, "database.pool_size", "at least 1"),
    Case("database-url-mysql", {"database.url": '"mysql://db/x"'}, "database.url", "postgresql://"),
    # URLs
    Case("vt-http", {"viatrajectoire.base_url": '"http://127.0.0.1:9/fhir"'}, "viatrajectoire.base_url",
         "allow_insecure_http"),
    Case("vt-token-http", {"viatrajectoire.token_url": '"http://127.0.0.1:9/token"'}, "viatrajectoire.token_url",
         "https://"),
    Case("vt-http-env", {}, "viatrajectoire.base_url", "allow_insecure_http",
         env={"VTDUI_VT_BASE_URL": "http://127.0.0.1:9/fhir"}),
    Case("vt-no-host", {"viatrajectoire.base_url": '"https://"'}, "viatrajectoire.base_url", "no host"),
    Case("vt-ftp", {"viatrajectoire.base_url": '"ftp://127.0.0.1/fhir"'}, "viatrajectoire.base_url", "http(s)"),
    Case("vt-bad-port", {"viatrajectoire.base_url": '"https://127.0.0.1:99999/fhir"'}, "viatrajectoire.base_url",
         "e.g. https://"),
    Case("vt-space", {"viatrajectoire.base_url": '"https://vt .example/fhir"'}, "viatrajectoire.base_url",
         "the URL alone"),
    Case("hapi-no-scheme", {"hapi.base_url": '"localhost:8080/fhir"'}, "hapi.base_url", "http(s)"),
    Case("hapi-no-host", {"hapi.base_url": '"http:///fhir"'}, "hapi.base_url", "no host"),
    Case("hapi-bad-port-env", {}, "hapi.base_url", "e.g. https://",
         env={"FHIR_BASE_URL": f"http://admin:{PASSWORD}@127.0.0.1:notaport/fhir"}),
    # names sent to ViaTrajectoire and shown to people
    Case("eg-name-nul", {"eg.name": f'"ESAT{NUL}Nord"'}, "establishments[0].name", "printable"),
    Case("eg-name-escape", {"eg.name": f'"ESAT{ESC}[31mNord"'}, "establishments[0].name", "printable"),
    Case("eg-name-bidi", {"eg.name": f'"ESAT {RLO}droN"'}, "establishments[0].name", "printable"),
    Case("ej-name-zero-width", {"ej.name": f'"Asso{ZWSP}ciation"'}, "legal_entities[0].name", "printable"),
    Case("client-id-escape", {"viatrajectoire.client_id": f'"gen{ESC}eric"'}, "viatrajectoire.client_id",
         "printable"),
    Case("eg-name-huge", {"eg.name": '"' + "E" * 5000 + '"'}, "establishments[0].name", "at most 200"),
    Case("eg-finess-bad", {"eg.finess_eg": '"123"'}, "establishments[0].finess_eg", "Luhn"),
    Case("p12-file-number", {"ej.p12_file": "5"}, "legal_entities[0].p12_file", "expected str"),
    Case("state-dir-nul", {"state_dir": f'"state{NUL}x"'}, "state_dir", "plain directory"),
    # secrets
    Case("secret-dev-zero", {"viatrajectoire.client_secret": '"file:/dev/zero"'}, "viatrajectoire.client_secret",
         "regular file"),
    Case("secret-fifo", {"viatrajectoire.client_secret": '"file:{tmp}/fifo"'}, "viatrajectoire.client_secret",
         "regular file"),
    Case("secret-directory", {"viatrajectoire.client_secret": '"file:{tmp}"'}, "viatrajectoire.client_secret",
         "regular file"),
    Case("secret-huge-file", {"viatrajectoire.client_secret": '"file:{tmp}/huge"'},
         "viatrajectoire.client_secret", "at most 65536"),
    Case("secret-not-utf8", {"viatrajectoire.client_secret": '"file:{tmp}/latin1"'},
         "viatrajectoire.client_secret", "UTF-8"),
    Case("secret-env-unset", {"viatrajectoire.client_secret": '"env:VTDUI_TEST_UNSET_SECRET"'},
         "viatrajectoire.client_secret", "VTDUI_TEST_UNSET_SECRET"),
    Case("p12-password-wrong", {"ej.p12_password": '"not-the-password"'}, str(EJ), "p12"),
    Case("logging-level", {"logging.level": '"LOUD"'}, "logging.level", "DEBUG"),
    # the file itself
    Case("toml-deep-nesting", raw=b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", key="nests", fix="right one"),
    Case("toml-invalid-utf8", raw=b'state_dir = "caf\xe9"\n', key="UTF-8", fix="save it as UTF-8"),
    Case("toml-broken", raw=b"[sync\ninterval_seconds = 1\n", key="not valid TOML", fix="line"),
    # harmless: accepted with a warning, the credentials taken out of the URLs
    Case("vt-credentials-in-url", {"viatrajectoire.base_url": f'"https://u:{PASSWORD}@127.0.0.1:9/fhir"'},
         warning="viatrajectoire.base_url"),
    Case("token-on-another-host", {"viatrajectoire.token_url": '"https://auth.example/token"'},
         warning="viatrajectoire.token_url"),
    Case("hapi-credentials-in-url", {}, env={"FHIR_BASE_URL": f"http://admin:{PASSWORD}@127.0.0.1:1/fhir"}),
    Case("vt-http-sandbox", {"viatrajectoire.base_url": '"http://127.0.0.1:9/fhir"',
                             "viatrajectoire.token_url": '"http://127.0.0.1:9/token"',
                             "viatrajectoire.allow_insecure_http": "true"}),
)

#: refused cases also given to the other commands that load the configuration
OTHER_COMMANDS_CASES = ("outbox-poll-inf", "secret-dev-zero", "toml-deep-nesting", "vt-http")
#: cases also checked with ``--json`` (all of them would double the run time for little more)
JSON_CASES = {c.name for i, c in enumerate(CASES) if c.key is None or i % 4 == 0}
OTHER_COMMANDS = (["status"], ["sync"], ["run", "--once"], ["outbox", "list"], ["outbox", "show", "1"],
                  ["evidence", "{tmp}/evidence"], ["plugins"])


def _render(tmp: Path, pki: Pki, case: Case) -> bytes:
    if case.raw is not None:
        return case.raw
    creds = pki.clients[EJ]
    sections: dict[str, dict[str, str]] = {
        "": {"state_dir": f'"{tmp}/state"'},
        "viatrajectoire": {"base_url": '"https://127.0.0.1:9/fhir"', "token_url": '"https://127.0.0.1:9/token"',
                           "client_id": '"generic"', "client_secret": '"a-client-secret"',
                           "ca_file": f'"{pki.ca_cert}"'},
        "ej": {"finess_ej": f'"{EJ}"', "name": '"Association Exemple"', "p12_file": f'"{creds.p12}"',
               "p12_password": f'"{creds.p12_password}"'},
        "eg": {"finess_eg": f'"{EG}"', "name": '"ESAT Les Ateliers"'},
    }
    for path, literal in case.changes.items():
        section, _, key = path.rpartition(".")
        sections.setdefault(section, {})[key] = literal.replace("{tmp}", str(tmp))
    headers = {"ej": "[[legal_entities]]", "eg": "[[legal_entities.establishments]]"}
    lines: list[str] = []
    for section in ("", *sorted(set(sections) - {"", "ej", "eg"}), "ej", "eg"):
        if section:
            lines.append(headers.get(section, f"[{section}]"))
        lines += [f"{key} = {value}" for key, value in sections[section].items()]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # stdin closed and a timeout: a value that makes a command hang fails the test instead
    return subprocess.run([VTDUI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, object]]:
    """Run every case (and the other commands for a subset) in parallel; map case name to its results."""
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("VTDUI_", "FHIR_BASE_URL")) and k != "PGPASSWORD"}
    jobs: dict[str, tuple[list[str], Path, dict[str, str]]] = {}
    for case in CASES:
        tmp = tmp_path_factory.mktemp(case.name)
        os.mkfifo(tmp / "fifo")
        (tmp / "huge").write_bytes(b"s" * 100_000)
        (tmp / "latin1").write_bytes(b"caf\xe9")
        config = tmp / "vtdui.toml"
        config.write_bytes(_render(tmp, pki, case))
        env = {**base_env, **case.env}
        jobs[case.name] = (["config", "check", "--config", str(config)], tmp, env)
        if case.name in JSON_CASES:
            jobs[f"{case.name}/json"] = (["config", "check", "--config", str(config), "--json"], tmp, env)
        if case.name in OTHER_COMMANDS_CASES:
            for command in OTHER_COMMANDS:
                args = [a.replace("{tmp}", str(tmp)) for a in command]
                jobs[f"{case.name}/{' '.join(command[:2])}"] = ([*args, "--config", str(config)], tmp, env)
        if case.name == "p12-password-wrong":  # `run` opens the certificates before working, as config check
            jobs[f"{case.name}/run"] = (["run", "--once", "--config", str(config)], tmp, env)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
        yield {name: future.result() for name, future in futures.items()}
    for case in CASES:
        shutil.rmtree(tmp_path_factory.getbasetemp() / case.name, ignore_errors=True)


def test_at_least_fifty_hostile_values() -> None:
    assert len([c for c in CASES if c.key is not None]) >= 50
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_config_check_refuses_or_shows_harmless(case: Case, outcomes: dict[str, subprocess.CompletedProcess[str]]
                                                ) -> None:
    done = outcomes[case.name]
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert PASSWORD not in output
    as_json = json.loads(outcomes[f"{case.name}/json"].stdout) if case.name in JSON_CASES else None
    if case.key is None:
        assert as_json is not None
        assert done.returncode == 0, output
        assert "configuration OK" in done.stdout and as_json["ok"] is True
        if case.warning:
            assert f"warning: {case.warning}" in done.stderr
            assert any(w.startswith(case.warning) for w in as_json["warnings"])
        else:
            assert "warning" not in done.stderr
        assert PASSWORD not in json.dumps(as_json)
        return
    assert done.returncode == 1, output
    assert done.stderr.startswith("Error: ") and case.key in done.stderr and case.fix in done.stderr, done.stderr
    if as_json is not None:
        assert outcomes[f"{case.name}/json"].returncode == 1 and as_json["ok"] is False
        assert any(case.key in error and case.fix in error for error in as_json["errors"]), as_json


@pytest.mark.parametrize("case", OTHER_COMMANDS_CASES)
@pytest.mark.parametrize("command", [" ".join(c[:2]) for c in OTHER_COMMANDS])
def test_other_commands_refuse_the_same_values_without_traceback(
        case: str, command: str, outcomes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done = outcomes[f"{case}/{command}"]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    expected = next(c for c in CASES if c.name == case)
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected.key is not None and expected.key in done.stderr, done.stderr


def test_run_refuses_a_wrong_certificate_password_before_polling(
        outcomes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done = outcomes["p12-password-wrong/run"]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "client certificate cannot be used" in done.stderr and EJ in done.stderr
