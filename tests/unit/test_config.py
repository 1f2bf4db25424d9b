"""Configuration: defaults, overrides, secrets, and a clear message for each kind of mistake."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from vtdui.config import load_config
from vtdui.errors import ConfigError
from vtdui.identifiers import finess_key
from vtdui.logs import redact
from vtdui.urls import redact_userinfo

EJ = "35000001" + finess_key("35000001")
EG = "35000002" + finess_key("35000002")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vtdui.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _valid(tmp_path: Path, extra: str = "") -> str:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    return f"""
[viatrajectoire]
client_id = "dui"
client_secret = "env:VT_SECRET"

[[legal_entities]]
finess_ej = "{EJ}"
name = "Association"
cert_file = "c.pem"
key_file = "k.pem"

[[legal_entities.establishments]]
finess_eg = "{EG}"
name = "ESAT Les Ateliers"
is_esat = true

[[legal_entities.establishments.units]]
id_unite = "U1"
nom_unite = "Atelier"
categorie_organisation = "01"
mode_prise_charge = "47"
temporalite_accueil = "02"
{extra}
"""


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={})
    assert config.hapi.base_url == "http://127.0.0.1:8080/fhir"
    assert config.legal_entities == ()


def test_fhir_base_url_env_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[hapi]\nbase_url = "http://file:1/fhir"\n')
    assert load_config(path, env={}).hapi.base_url == "http://file:1/fhir"
    assert load_config(path, env={"FHIR_BASE_URL": "http://env:2/fhir/"}).hapi.base_url == "http://env:2/fhir"


def test_valid_file_with_secret_from_env(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _valid(tmp_path)), env={"VT_SECRET": "s3cret"})
    assert config.viatrajectoire.client_secret == "s3cret"
    ej, eg = config.establishment("1" + EG)
    assert ej.finess_ej == EJ and eg.is_esat and eg.units[0].mode_prise_charge == "47"
    assert eg.id_nat_struct == "1" + EG
    assert "s3cret" not in repr(config)


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("from-file\n")
    text = _valid(tmp_path).replace('"env:VT_SECRET"', f'"file:{tmp_path / "secret.txt"}"')
    assert load_config(_write(tmp_path, text), env={}).viatrajectoire.client_secret == "from-file"


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*--config"):
        load_config(tmp_path / "nope.toml", env={})


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[hapi\n"), env={})


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hapi\.base_ulr: unknown key; did you mean 'base_url'"):
        load_config(_write(tmp_path, '[hapi]\nbase_ulr = "http://x/fhir"\n'), env={})


def test_bad_finess_is_named_with_its_location(tmp_path: Path) -> None:
    text = _valid(tmp_path).replace(f'finess_eg = "{EG}"', 'finess_eg = "350000029"')
    if EG == "350000029":
        pytest.fail("fixture FINESS collides with the bad one")
    with pytest.raises(ConfigError, match=r"legal_entities\[0\]\.establishments\[0\]\.finess_eg.*not a valid FINESS"):
        load_config(_write(tmp_path, text), env={"VT_SECRET": "x"})


def test_unreadable_certificate_and_missing_secret_reported_together(tmp_path: Path) -> None:
    text = _valid(tmp_path).replace('cert_file = "c.pem"', 'cert_file = "missing.pem"')
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), env={})
    message = str(info.value)
    assert "legal_entities[0].cert_file: cannot read" in message
    assert "VT_SECRET is not set" in message


def test_unit_codes_checked_against_value_sets(tmp_path: Path) -> None:
    text = _valid(tmp_path).replace('mode_prise_charge = "47"', 'mode_prise_charge = "99"')
    with pytest.raises(ConfigError, match="not in JDV_J264"):
        load_config(_write(tmp_path, text), env={"VT_SECRET": "x"})


def test_poll_interval_must_respect_daily_polling(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least daily"):
        load_config(_write(tmp_path, "[sync]\ninterval_seconds = 90000\n"), env={})


def test_unknown_establishment_lookup(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _valid(tmp_path)), env={"VT_SECRET": "x"})
    with pytest.raises(ConfigError, match="not configured"):
        config.establishment("999999999")


def test_database_url_from_file_env_or_secret_and_mistakes_named(tmp_path: Path) -> None:
    config = tmp_path / "vtdui.toml"
    config.write_text('[database]\nurl = "env:PG_URL"\npool_size = 3\n')
    loaded = load_config(config, env={"PG_URL": "postgresql://vtdui:pw@db:5432/vtdui"})
    assert loaded.database.is_postgres and loaded.database.pool_size == 3
    assert "pw" not in repr(loaded.database)  # the URL (and its password) is kept out of reprs
    assert load_config(config, env={"PG_URL": "x", "VTDUI_DATABASE_URL": "postgresql://h/d"}).database.url \
        == "postgresql://h/d"
    config.write_text("[sync]\ninterval_seconds = 3600\n")
    assert load_config(config, env={}).database.url is None  # no [database]: SQLite in state_dir
    config.write_text('[database]\nurl = "mysql://db/vtdui"\npool_size = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    message = str(caught.value)
    assert "database.url" in message and "postgresql://" in message
    assert "database.pool_size" in message


def test_polling_concurrency_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "vtdui.toml"
    config.write_text("[sync]\nmax_concurrent = 0\nmax_concurrent_per_entity = 0\nlease_seconds = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    message = str(caught.value)
    for key in ("sync.max_concurrent", "sync.max_concurrent_per_entity", "sync.lease_seconds"):
        assert key in message


def test_issue_12_settings_defaults_and_validation(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _valid(tmp_path)), env={"VT_SECRET": "x"})
    assert (config.viatrajectoire.token_auth, config.viatrajectoire.token_scope) == ("basic", None)
    assert config.viatrajectoire.max_response_bytes == 16 * 1024 * 1024
    sync = config.sync
    assert (sync.mdph_struct_level, sync.setid_rule, sync.reprise) == ("both", "strict", True)
    assert (sync.quarantine_backoff_seconds, sync.quarantine_max_backoff_seconds) == (300.0, 86400.0)
    bad = ('[sync]\nmdph_struct_level = "ej+eg"\nsetid_rule = "loose"\nquarantine_backoff_seconds = 10\n'
           'quarantine_max_backoff_seconds = 5\n')
    text = _valid(tmp_path).replace('client_secret = "env:VT_SECRET"',
                                    'client_secret = "env:VT_SECRET"\ntoken_auth = "digest"\nmax_response_bytes = 10')
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text + bad), env={"VT_SECRET": "x"})
    for key in ("viatrajectoire.token_auth", "viatrajectoire.max_response_bytes", "sync.mdph_struct_level",
                "sync.setid_rule", "sync.quarantine_backoff_seconds"):
        assert key in str(info.value)
def test_credentials_in_the_hapi_url_become_its_basic_authorization(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""), env={"FHIR_BASE_URL": "http://ad%40min:p%3Aw@hapi:8080/fhir/"})
    assert config.hapi.base_url == "http://hapi:8080/fhir"  # what every log, table and error shows
    assert config.hapi.authorization == "Basic " + base64.b64encode(b"ad@min:p:w").decode()
    explicit = load_config(_write(tmp_path, '[hapi]\nauthorization = "Bearer abc"\n'),
                           env={"FHIR_BASE_URL": "http://u:pw@hapi/fhir"})
    assert explicit.hapi.authorization == "Bearer abc" and explicit.hapi.base_url == "http://hapi/fhir"
    assert any("hapi.base_url" in w for w in explicit.warnings)


def test_viatrajectoire_http_only_for_a_declared_sandbox(tmp_path: Path) -> None:
    text = '[viatrajectoire]\nbase_url = "http://127.0.0.1:8443/fhir"\ntoken_url = "http://127.0.0.1:8443/token"\n'
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text), env={})
    assert "viatrajectoire.base_url" in str(error.value) and "viatrajectoire.token_url" in str(error.value)
    sandbox = load_config(_write(tmp_path, text + "allow_insecure_http = true\n"), env={})
    assert sandbox.viatrajectoire.base_url.startswith("http://") and sandbox.viatrajectoire.allow_insecure_http


def test_redaction_of_url_credentials_in_any_text() -> None:
    assert redact_userinfo("at http://u:pw@h:1/x and https://tok@h/y, 'ftp://a:b@c'") == \
        "at http://u:***@h:1/x and https://***@h/y, 'ftp://a:***@c'"
    assert redact("GET http://admin:hunter2@hapi/fhir failed") == "GET http://admin:***@hapi/fhir failed"
    assert redact_userinfo("no url here, user@example.org") == "no url here, user@example.org"
