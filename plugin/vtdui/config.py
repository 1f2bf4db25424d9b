"""One place for configuration: a TOML file, environment overrides, secrets from files or the environment.

The file is validated when it is loaded; every mistake is reported with where it is and how to fix it,
all at once, as a :class:`~vtdui.errors.ConfigError`.

Lookup order for the file: the ``path`` argument, then ``$VTDUI_CONFIG``, then ``./vtdui.toml``; with
none of them, the embedded defaults (local HAPI on port 8080, no ViaTrajectoire establishment).

Environment overrides (they win over the file):

===============================  ===========================================
``FHIR_BASE_URL``                ``hapi.base_url``
``VTDUI_STATE_DIR``              ``state_dir``
``VTDUI_HOOKS_DIR``              ``hooks_dir``
``VTDUI_VT_BASE_URL``            ``viatrajectoire.base_url``
``VTDUI_VT_TOKEN_URL``           ``viatrajectoire.token_url``
``VTDUI_CLIENT_SECRET``          ``viatrajectoire.client_secret``
``VTDUI_RECEIVER_HOST``          ``receiver.host``
``VTDUI_RECEIVER_PUBLIC_URL``    ``receiver.public_url``
===============================  ===========================================

A secret value may be written literally, as ``"env:NAME"`` (read from the environment) or as
``"file:/path"`` (read from a regular file of at most 64 KiB, trailing newline removed).

Hostile or careless values are refused with the key and the fix: numbers out of their range (negative,
zero, ``nan``, ``inf``), URLs without a host, ``http://`` towards ViaTrajectoire (unless
``viatrajectoire.allow_insecure_http`` is set for a local sandbox), control or bidirectional characters in
names, a receiver secret shorter than 16 characters, a configuration file that is not UTF-8 TOML.
Credentials written in ``hapi.base_url`` (``http://user:password@host/fhir``) become its Basic
``authorization`` and are removed from the URL; credentials in the ViaTrajectoire URLs are dropped with a
warning (ViaTrajectoire authenticates with the client certificate and ``client_id``/``client_secret``).
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vtdui.errors import ConfigError
from vtdui.identifiers import is_valid_finess
from vtdui.safe_io import read_bounded
from vtdui.urls import redact_userinfo, split_credentials

__all__ = [
    "Config",
    "ConfigProblemsError",
    "DatabaseSettings",
    "Establishment",
    "HapiSettings",
    "LegalEntity",
    "OutboxSettings",
    "ReceiverSettings",
    "RetrySettings",
    "RorUnit",
    "SyncSettings",
    "ViaTrajectoireSettings",
    "load_config",
    "resolve_secret",
]

DEFAULT_HAPI_URL = "http://127.0.0.1:8080/fhir"
#: largest secret file read (a certificate password or client secret is a few dozen bytes)
MAX_SECRET_FILE_BYTES = 64 * 1024
#: largest configuration file read
MAX_CONFIG_FILE_BYTES = 1024 * 1024
#: shortest accepted receiver secret (HAPI sends it in a header; anyone who guesses it can feed statuses)
MIN_RECEIVER_SECRET = 16


@dataclass(frozen=True)
class HapiSettings:
    """The local HAPI FHIR server used as the DUI's repository."""

    base_url: str = DEFAULT_HAPI_URL
    authorization: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class ViaTrajectoireSettings:
    """Where and how to reach ViaTrajectoire (or the simulator)."""

    base_url: str = "https://127.0.0.1:8443/fhir"
    token_url: str = "https://127.0.0.1:8443/oauth/token"  # noqa: S105 - a URL, not a secret
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    ca_file: Path | None = None
    timeout: float = 30.0
    page_size: int | None = None
    token_renew_margin: float = 60.0
    #: how the client id/secret go in the token request: "basic" (HTTP Basic) or "form" (in the form body)
    token_auth: str = "basic"  # noqa: S105 - a method name, not a secret
    #: ``scope`` of the token request, when ViaTrajectoire wants one
    token_scope: str | None = None
    #: largest answer read from ViaTrajectoire (decoded bytes); a bigger one is refused while streaming
    max_response_bytes: int = 16 * 1024 * 1024
    #: accept ``http://`` URLs (a local sandbox only: the client secret and health data then go in clear)
    allow_insecure_http: bool = False


@dataclass(frozen=True)
class RorUnit:
    """An operational unit of an establishment, as declared in the ROR."""

    id_unite: str
    nom_unite: str
    categorie_organisation: str
    mode_prise_charge: str
    temporalite_accueil: str | None = None
    accueil_sequentiel: bool | None = None


@dataclass(frozen=True)
class Establishment:
    """A geographic establishment (FINESS EG) for which the DUI talks to ViaTrajectoire."""

    finess_eg: str
    name: str
    is_esat: bool = False
    units: tuple[RorUnit, ...] = ()

    @property
    def id_nat_struct(self) -> str:
        """``"1" + FINESS EG``: the ``struct_idnat`` header and ``idNat_Struct`` input."""
        return "1" + self.finess_eg


@dataclass(frozen=True)
class LegalEntity:
    """A legal entity (FINESS EJ): one client certificate, one token, several establishments."""

    finess_ej: str
    name: str
    establishments: tuple[Establishment, ...]
    cert_file: Path | None = None
    key_file: Path | None = None
    p12_file: Path | None = None
    p12_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SyncSettings:
    """Inbound polling: windows and schedule."""

    interval_seconds: float = 3600.0
    first_lookback_days: int = 30
    max_lookback_days: int = 30
    overlap_seconds: float = 300.0
    fetch_evaluations: bool = True
    #: establishments polled at once by one process (all legal entities together)
    max_concurrent: int = 4
    #: establishments of one legal entity polled at once (they share one token and one certificate)
    max_concurrent_per_entity: int = 2
    #: an establishment whose poll failed is tried again after this long (doubling, capped at the interval)
    failure_backoff_seconds: float = 300.0
    #: a poll lease (another worker takes the establishment over when a worker dies mid-poll)
    lease_seconds: float = 1800.0
    #: a quarantined item is tried again after this, doubling at each failed try up to
    #: ``quarantine_max_backoff_seconds``, for as long as it stays quarantined
    quarantine_backoff_seconds: float = 300.0
    quarantine_max_backoff_seconds: float = 86400.0
    #: idNat_Struct levels accepted on MDPH events (46, 49, 54): "eg", "ej" or "both" (IG: EJ or EG, undetermined)
    mdph_struct_level: str = "both"
    #: CDA setId vs the DocumentReference's official identifier: "strict" (must be equal) or "lenient"
    #: (a short setId such as "01", the 2024 samples' convention, is accepted; the official identifier wins)
    setid_rule: str = "strict"
    #: "mode reprise": a decision whose study began in ViaTrajectoire before the interoperability, with
    #: this establishment's own statuses already entered there, lands with the latest of them (not 39)
    reprise: bool = True


@dataclass(frozen=True)
class RetrySettings:
    """Retry policy for calls to ViaTrajectoire and outbox deliveries."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 300.0
    max_age_seconds: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class ReceiverSettings:
    """The webhook receiver that HAPI's REST-hook subscriptions call."""

    host: str = "127.0.0.1"
    port: int = 8765
    public_url: str | None = None
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class OutboxSettings:
    """The outbound side of ``vtdui run``: delivery worker and reconciliation schedule."""

    poll_seconds: float = 5.0
    reconcile_seconds: float = 300.0
    lease_seconds: float = 300.0


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the plugin keeps its state (cursors, outbox, quarantine, exchange log).

    ``url`` unset: SQLite files in ``state_dir`` (one process). ``postgresql://…``: a PostgreSQL database
    shared by several ``vtdui run`` workers; its schema is created by ``vtdui db migrate``.
    """

    url: str | None = field(default=None, repr=False)
    pool_size: int = 5

    @property
    def is_postgres(self) -> bool:
        """Whether the state lives in PostgreSQL."""
        return self.url is not None and self.url.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    path: Path | None = None
    state_dir: Path = Path(".vtdui")
    #: local hook modules (``hooks_dir`` or ``$VTDUI_HOOKS_DIR``); none unless configured
    hooks_dir: Path | None = None
    hapi: HapiSettings = HapiSettings()
    viatrajectoire: ViaTrajectoireSettings = ViaTrajectoireSettings()
    legal_entities: tuple[LegalEntity, ...] = ()
    sync: SyncSettings = SyncSettings()
    retry: RetrySettings = RetrySettings()
    receiver: ReceiverSettings = ReceiverSettings()
    outbox: OutboxSettings = OutboxSettings()
    database: DatabaseSettings = DatabaseSettings()
    log_level: str = "INFO"
    log_format: str = "json"
    #: accepted but doubtful settings (shown by ``vtdui config check`` and logged by ``vtdui run``)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def establishments(self) -> list[tuple[LegalEntity, Establishment]]:
        """Every configured establishment with its legal entity, in file order."""
        return [(ej, eg) for ej in self.legal_entities for eg in ej.establishments]

    def establishment(self, finess_eg: str) -> tuple[LegalEntity, Establishment]:
        """Find an establishment by FINESS EG (or idNat_Struct); raise ConfigError when unknown."""
        wanted = finess_eg[1:] if len(finess_eg) == 10 else finess_eg
        for ej, eg in self.establishments():
            if eg.finess_eg == wanted:
                return ej, eg
        raise ConfigError(f"establishment {finess_eg!r} is not configured; add it under [[legal_entities]]")


def resolve_secret(value: str, where: str, env: Mapping[str, str] | None = None) -> str:
    """Resolve ``env:NAME`` and ``file:/path`` secret references; return literals unchanged."""
    env = os.environ if env is None else env
    if value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} is not set (referenced as {value!r})")
        return env[name]
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            raw = read_bounded(path, MAX_SECRET_FILE_BYTES)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror or exc}; point it at a "
                              f"regular file of at most {MAX_SECRET_FILE_BYTES} bytes") from exc
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: secret file {path} is not UTF-8 text; write the secret as text") from None
    return value


# ---------------------------------------------------------------------------------------------------
# Validation


class ConfigProblemsError(ConfigError):
    """An invalid configuration file; :attr:`problems` lists each mistake as ``"key: what to fix"``."""

    def __init__(self, message: str, problems: tuple[str, ...]) -> None:
        super().__init__(message)
        self.problems = problems


class _Errors:
    """Collects every mistake so the user fixes them in one go."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        # messages of resolve_secret already start with where they come from
        self.items.append(message if message.startswith(f"{where}: ") else f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            raise ConfigProblemsError(f"invalid configuration in {self.source}:\n{lines}", tuple(self.items))


_SCHEMA: dict[str, set[str]] = {
    "": {"state_dir", "hooks_dir", "hapi", "viatrajectoire", "legal_entities", "sync", "retry", "receiver",
         "outbox", "logging", "database"},
    "hapi": {"base_url", "authorization", "timeout"},
    "viatrajectoire": {"base_url", "token_url", "client_id", "client_secret", "ca_file", "timeout", "page_size",
                       "token_renew_margin", "token_auth", "token_scope", "max_response_bytes",
                       "allow_insecure_http"},
    "legal_entities": {"finess_ej", "name", "establishments", "cert_file", "key_file", "p12_file",
                       "p12_password"},
    "establishments": {"finess_eg", "name", "is_esat", "units"},
    "units": {"id_unite", "nom_unite", "categorie_organisation", "mode_prise_charge", "temporalite_accueil",
              "accueil_sequentiel"},
    "sync": {"interval_seconds", "first_lookback_days", "max_lookback_days", "overlap_seconds",
             "fetch_evaluations", "max_concurrent", "max_concurrent_per_entity", "failure_backoff_seconds",
             "lease_seconds", "quarantine_backoff_seconds", "quarantine_max_backoff_seconds", "mdph_struct_level",
             "setid_rule", "reprise"},
    "retry": {"attempts", "base_delay", "max_delay", "max_age_seconds"},
    "receiver": {"host", "port", "public_url", "secret"},
    "outbox": {"poll_seconds", "reconcile_seconds", "lease_seconds"},
    "logging": {"level", "format"},
    "database": {"url", "pool_size"},
}


def _check_keys(table: Mapping[str, Any], schema: str, where: str, errors: _Errors) -> None:
    allowed = _SCHEMA[schema]
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed keys: {', '.join(sorted(allowed))}"
            errors.add(f"{where}{'.' if where else ''}{key}", f"unknown key{hint}")


def _table(data: Mapping[str, Any], key: str, where: str, errors: _Errors) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        errors.add(f"{where}{key}", f"expected a table [{key}], got {type(value).__name__}")
        return {}
    return value


def _typed(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
           errors: _Errors, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        errors.add(f"{where}.{key}", f"expected {names}, got {value!r}")
        return default
    return value


def _number(table: Mapping[str, Any], key: str, where: str, errors: _Errors, default: Any, *,
            low: float, high: float, integer: bool = False, above: bool = False, unit: str = "") -> Any:
    """A number of ``table`` in ``[low, high]`` (``(low, high]`` with ``above``): finite, never a boolean."""
    if key not in table:
        return default
    raw = table[key]
    if isinstance(raw, bool) or not isinstance(raw, int if integer else (int, float)):
        return _typed(table, key, int if integer else float, where, errors, default)  # reports the type
    value = raw if integer else float(raw)
    if not math.isfinite(value) or value > high or (value <= low if above else value < low):
        errors.add(f"{where}.{key}", f"{raw!r} is out of range: must be {'more than' if above else 'at least'} "
                                     f"{low:g} and at most {high:g}{unit}")
        return default
    return value


def _text(value: str, where: str, errors: _Errors, *, max_length: int = 200) -> str:
    """A name shown to people and sent to ViaTrajectoire: no control or invisible formatting character."""
    bad = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co"}})
    if bad:
        errors.add(where, f"contains control or formatting characters ({', '.join(bad)}); "
                          "write the name with printable characters only")
    elif len(value) > max_length:
        errors.add(where, f"is {len(value)} characters long; at most {max_length}")
    return value


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _url(value: str, where: str, errors: _Errors) -> tuple[str, str | None]:
    """Check an http(s) URL; return it without trailing slash and without credentials, and the credentials."""
    shown = redact_userinfo(value)
    if any(unicodedata.category(c) in {"Cc", "Cf", "Zs", "Zl", "Zp"} for c in value):
        errors.add(where, f"{shown!r} contains spaces or control characters; write the URL alone")
        return value, None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number in 0..65535
        stripped, credentials = split_credentials(value)
    except ValueError as exc:
        errors.add(where, f"{shown!r} is not a valid URL ({exc}); e.g. https://host:443/fhir")
        return value, None
    if parts.scheme not in {"http", "https"}:
        errors.add(where, f"expected an http(s) URL, got {shown!r}")
    elif not parts.hostname:
        errors.add(where, f"{shown!r} has no host; e.g. https://host:443/fhir")
    return stripped.rstrip("/"), credentials


def _units(raw: Any, where: str, errors: _Errors) -> tuple[RorUnit, ...]:
    if not isinstance(raw, list):
        errors.add(where, "expected an array of tables [[...units]]")
        return ()
    units: list[RorUnit] = []
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(item, dict):
            errors.add(w, "expected a table")
            continue
        _check_keys(item, "units", w, errors)
        missing = [k for k in ("id_unite", "nom_unite", "categorie_organisation", "mode_prise_charge")
                   if k not in item]
        if missing:
            errors.add(w, f"missing {', '.join(missing)} (a ROR unit needs its id, name, category and care mode)")
            continue
        mode = str(item["mode_prise_charge"])
        if mode not in {"46", "47", "48", "238"}:
            errors.add(f"{w}.mode_prise_charge", f"{mode!r} is not in JDV_J264 (46, 47, 48 or 238)")
        temporalite = item.get("temporalite_accueil")
        if temporalite is not None and str(temporalite) not in {"01", "02"}:
            errors.add(f"{w}.temporalite_accueil", f"{temporalite!r} is not in JDV_J30 ('01' or '02')")
        units.append(RorUnit(
            id_unite=_text(str(item["id_unite"]), f"{w}.id_unite", errors, max_length=64),
            nom_unite=_text(str(item["nom_unite"]), f"{w}.nom_unite", errors),
            categorie_organisation=str(item["categorie_organisation"]), mode_prise_charge=mode,
            temporalite_accueil=None if temporalite is None else str(temporalite),
            accueil_sequentiel=_typed(item, "accueil_sequentiel", bool, w, errors, None),
        ))
    return tuple(units)


def _legal_entities(raw: Any, base: Path, errors: _Errors, env: Mapping[str, str]) -> tuple[LegalEntity, ...]:
    if not isinstance(raw, list):
        errors.add("legal_entities", "expected an array of tables [[legal_entities]]")
        return ()
    entities: list[LegalEntity] = []
    seen_eg: set[str] = set()
    for i, item in enumerate(raw):
        where = f"legal_entities[{i}]"
        if not isinstance(item, dict):
            errors.add(where, "expected a table")
            continue
        _check_keys(item, "legal_entities", where, errors)
        finess_ej = str(item.get("finess_ej", ""))
        if not finess_ej:
            errors.add(f"{where}.finess_ej", "missing: the FINESS of the legal entity (9 characters)")
        elif not is_valid_finess(finess_ej):
            errors.add(f"{where}.finess_ej", f"{finess_ej!r} is not a valid FINESS (9 characters, Luhn key)")
        establishments: list[Establishment] = []
        raw_egs = item.get("establishments", [])
        if not isinstance(raw_egs, list):
            errors.add(f"{where}.establishments", "expected an array of tables [[legal_entities.establishments]]")
            raw_egs = []
        for j, eg in enumerate(raw_egs):
            w = f"{where}.establishments[{j}]"
            if not isinstance(eg, dict):
                errors.add(w, "expected a table")
                continue
            _check_keys(eg, "establishments", w, errors)
            finess_eg = str(eg.get("finess_eg", ""))
            if not is_valid_finess(finess_eg):
                errors.add(f"{w}.finess_eg", f"{finess_eg!r} is not a valid FINESS EG (9 characters, Luhn key)")
            elif finess_eg in seen_eg:
                errors.add(f"{w}.finess_eg", f"{finess_eg} is configured twice")
            seen_eg.add(finess_eg)
            if not eg.get("name"):
                errors.add(f"{w}.name", "missing: the establishment's name (sent as nomESMS)")
            establishments.append(Establishment(
                finess_eg=finess_eg, name=_text(str(eg.get("name", "")), f"{w}.name", errors),
                is_esat=_typed(eg, "is_esat", bool, w, errors, False),
                units=_units(eg.get("units", []), f"{w}.units", errors),
            ))
        if not establishments:
            errors.add(f"{where}.establishments", "at least one establishment (FINESS EG) is required")
        cert = _path(base, _typed(item, "cert_file", str, where, errors, None))
        key = _path(base, _typed(item, "key_file", str, where, errors, None))
        p12 = _path(base, _typed(item, "p12_file", str, where, errors, None))
        password = item.get("p12_password")
        if password is not None:
            try:
                password = resolve_secret(str(password), f"{where}.p12_password", env)
            except ConfigError as exc:
                errors.add(f"{where}.p12_password", str(exc))
        if p12 is None and (cert is None or key is None):
            errors.add(where, "a client certificate is required: set p12_file (+ p12_password) "
                              "or cert_file and key_file")
        for name, path in (("cert_file", cert), ("key_file", key), ("p12_file", p12)):
            if path is not None and not path.is_file():
                errors.add(f"{where}.{name}", f"cannot read {path}: no such file")
        entities.append(LegalEntity(finess_ej=finess_ej,
                                    name=_text(str(item.get("name", finess_ej)), f"{where}.name", errors),
                                    establishments=tuple(establishments), cert_file=cert, key_file=key,
                                    p12_file=p12, p12_password=password))
    return tuple(entities)


def _find_file(path: Path | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        return path
    if env.get("VTDUI_CONFIG"):
        return Path(env["VTDUI_CONFIG"])
    default = Path("vtdui.toml")
    return default if default.is_file() else None


def load_config(path: Path | str | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load, override and validate the configuration.

    Args:
        path: the TOML file; ``None`` looks at ``$VTDUI_CONFIG`` then ``./vtdui.toml``.
        env: environment used for overrides and ``env:`` secrets (default: ``os.environ``).

    Raises:
        ConfigError: listing every mistake, each with its location and how to fix it.

    """
    env = os.environ if env is None else env
    file = _find_file(Path(path) if path is not None else None, env)
    data: dict[str, Any] = {}
    base = Path.cwd()
    if file is not None:
        try:
            raw = read_bounded(file, MAX_CONFIG_FILE_BYTES)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {file} does not exist; create it or pass --config "
                              "with the right path (the simulator writes one in its data directory)") from None
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {file}: {exc.strerror or exc}; "
                              "pass a regular TOML file") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file} is not UTF-8 text (invalid byte at offset {exc.start}); "
                              "save it as UTF-8") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        except RecursionError:
            raise ConfigError(f"{file} nests arrays or tables too deeply to be a vtdui configuration; "
                              "check the file is the right one") from None
        base = file.resolve().parent
    errors = _Errors(str(file) if file else "the defaults")
    warnings: list[str] = []
    _check_keys(data, "", "", errors)
    seconds, days = " (seconds)", " (days)"

    hapi_t = _table(data, "hapi", "", errors)
    _check_keys(hapi_t, "hapi", "hapi", errors)
    hapi_url = env.get("FHIR_BASE_URL") or _typed(hapi_t, "base_url", str, "hapi", errors, DEFAULT_HAPI_URL)
    hapi_url, hapi_credentials = _url(hapi_url, "hapi.base_url", errors)
    hapi_auth = _typed(hapi_t, "authorization", str, "hapi", errors, None)
    if hapi_auth is not None:
        try:
            hapi_auth = resolve_secret(hapi_auth, "hapi.authorization", env)
        except ConfigError as exc:
            errors.add("hapi.authorization", str(exc))
        if any(unicodedata.category(c) == "Cc" for c in hapi_auth):
            errors.add("hapi.authorization", "contains control characters; write the header value alone")
    if hapi_credentials is not None:
        if hapi_auth is not None:
            warnings.append("hapi.base_url: the user:password in the URL is ignored (hapi.authorization is set)")
        hapi_auth = hapi_auth or hapi_credentials
    hapi = HapiSettings(base_url=hapi_url, authorization=hapi_auth,
                        timeout=_number(hapi_t, "timeout", "hapi", errors, 60.0, low=0, high=3600, above=True,
                                        unit=seconds))

    vt_t = _table(data, "viatrajectoire", "", errors)
    _check_keys(vt_t, "viatrajectoire", "viatrajectoire", errors)
    secret = env.get("VTDUI_CLIENT_SECRET") or _typed(vt_t, "client_secret", str, "viatrajectoire", errors, "")
    try:
        secret = resolve_secret(secret, "viatrajectoire.client_secret", env)
    except ConfigError as exc:
        errors.add("viatrajectoire.client_secret", str(exc))
    ca_file = _path(base, _typed(vt_t, "ca_file", str, "viatrajectoire", errors, None))
    if ca_file is not None and not ca_file.is_file():
        errors.add("viatrajectoire.ca_file", f"cannot read {ca_file}: no such file")
    defaults = ViaTrajectoireSettings()
    allow_http = _typed(vt_t, "allow_insecure_http", bool, "viatrajectoire", errors, False)
    vt_urls: dict[str, str] = {}
    for key, env_name in (("base_url", "VTDUI_VT_BASE_URL"), ("token_url", "VTDUI_VT_TOKEN_URL")):
        raw_url = env.get(env_name) or _typed(vt_t, key, str, "viatrajectoire", errors, getattr(defaults, key))
        vt_urls[key], credentials = _url(raw_url, f"viatrajectoire.{key}", errors)
        if credentials is not None:
            warnings.append(f"viatrajectoire.{key}: the user:password in the URL is ignored (ViaTrajectoire "
                            "authenticates with the client certificate and client_id/client_secret); remove it")
        if vt_urls[key].startswith("http://") and not allow_http:
            errors.add(f"viatrajectoire.{key}", "http:// would send the client secret and health data in clear; "
                       "use https://, or set viatrajectoire.allow_insecure_http = true for a local sandbox")
    base_host, token_host = (urlsplit(vt_urls[k]).hostname for k in ("base_url", "token_url"))
    if base_host and token_host and base_host != token_host:
        warnings.append(f"viatrajectoire.token_url: its host {token_host} differs from base_url's {base_host}; "
                        "the client secret is sent there: check it is ViaTrajectoire's token endpoint")
    client_id = _text(_typed(vt_t, "client_id", str, "viatrajectoire", errors, ""), "viatrajectoire.client_id",
                      errors)
    vt = ViaTrajectoireSettings(
        base_url=vt_urls["base_url"], token_url=vt_urls["token_url"], client_id=client_id,
        client_secret=secret,
        ca_file=ca_file,
        timeout=_number(vt_t, "timeout", "viatrajectoire", errors, defaults.timeout, low=0, high=600, above=True,
                        unit=seconds),
        page_size=_number(vt_t, "page_size", "viatrajectoire", errors, None, low=1, high=1000, integer=True),
        token_renew_margin=_number(vt_t, "token_renew_margin", "viatrajectoire", errors,
                                   defaults.token_renew_margin, low=0, high=3600, unit=seconds),
        allow_insecure_http=allow_http,
        token_auth=_typed(vt_t, "token_auth", str, "viatrajectoire", errors, defaults.token_auth),
        token_scope=_typed(vt_t, "token_scope", str, "viatrajectoire", errors, None) or None,
        max_response_bytes=_number(vt_t, "max_response_bytes", "viatrajectoire", errors,
                                   defaults.max_response_bytes, low=0, high=1 << 31, integer=True),
    )
    if vt.token_auth not in ("basic", "form"):
        errors.add("viatrajectoire.token_auth", "must be \"basic\" (HTTP Basic) or \"form\" (credentials in the body)")
    if vt.max_response_bytes < 1024 * 1024:
        errors.add("viatrajectoire.max_response_bytes", "must be at least 1048576 (1 MiB)")
    entities = _legal_entities(data.get("legal_entities", []), base, errors, env)
    if entities and not vt.client_id:
        errors.add("viatrajectoire.client_id", "missing: the OAuth2 client id given by ViaTrajectoire")

    sync_t = _table(data, "sync", "", errors)
    _check_keys(sync_t, "sync", "sync", errors)
    sd = SyncSettings()
    sync = SyncSettings(
        # at most daily: the IG requires polling at least daily (J-1)
        interval_seconds=_number(sync_t, "interval_seconds", "sync", errors, sd.interval_seconds, low=1,
                                 high=86400, unit=seconds + ": the IG requires polling at least daily"),
        # a window starting beyond J-366 is refused by ViaTrajectoire and would fail every poll
        first_lookback_days=_number(sync_t, "first_lookback_days", "sync", errors, sd.first_lookback_days, low=1,
                                    high=366, integer=True, unit=days),
        max_lookback_days=_number(sync_t, "max_lookback_days", "sync", errors, sd.max_lookback_days, low=1,
                                  high=366, integer=True, unit=days),
        overlap_seconds=_number(sync_t, "overlap_seconds", "sync", errors, sd.overlap_seconds, low=0, high=86400,
                                unit=seconds + "; a negative overlap would skip what changed between two polls"),
        fetch_evaluations=_typed(sync_t, "fetch_evaluations", bool, "sync", errors, sd.fetch_evaluations),
        max_concurrent=_number(sync_t, "max_concurrent", "sync", errors, sd.max_concurrent, low=1, high=64,
                               integer=True),
        max_concurrent_per_entity=_number(sync_t, "max_concurrent_per_entity", "sync", errors,
                                          sd.max_concurrent_per_entity, low=1, high=64, integer=True),
        failure_backoff_seconds=_number(sync_t, "failure_backoff_seconds", "sync", errors,
                                        sd.failure_backoff_seconds, low=0, high=86400, above=True, unit=seconds),
        lease_seconds=_number(sync_t, "lease_seconds", "sync", errors, sd.lease_seconds, low=0, high=86400,
                              above=True, unit=seconds),
        quarantine_backoff_seconds=_number(sync_t, "quarantine_backoff_seconds", "sync", errors,
                                           sd.quarantine_backoff_seconds, low=0, high=7 * 86400, unit=seconds),
        quarantine_max_backoff_seconds=_number(sync_t, "quarantine_max_backoff_seconds", "sync", errors,
                                               sd.quarantine_max_backoff_seconds, low=0, high=30 * 86400,
                                               unit=seconds),
        mdph_struct_level=_typed(sync_t, "mdph_struct_level", str, "sync", errors, sd.mdph_struct_level),
        setid_rule=_typed(sync_t, "setid_rule", str, "sync", errors, sd.setid_rule),
        reprise=_typed(sync_t, "reprise", bool, "sync", errors, sd.reprise),
    )
    if sync.mdph_struct_level not in ("eg", "ej", "both"):
        errors.add("sync.mdph_struct_level", "must be \"eg\", \"ej\" or \"both\"")
    if sync.setid_rule not in ("strict", "lenient"):
        errors.add("sync.setid_rule", "must be \"strict\" or \"lenient\"")
    if sync.quarantine_backoff_seconds < 0 or sync.quarantine_max_backoff_seconds < sync.quarantine_backoff_seconds:
        errors.add("sync.quarantine_backoff_seconds", "must be >= 0 and at most sync.quarantine_max_backoff_seconds")

    retry_t = _table(data, "retry", "", errors)
    _check_keys(retry_t, "retry", "retry", errors)
    rd = RetrySettings()
    retry = RetrySettings(
        attempts=_number(retry_t, "attempts", "retry", errors, rd.attempts, low=1, high=100, integer=True),
        base_delay=_number(retry_t, "base_delay", "retry", errors, rd.base_delay, low=0, high=3600, unit=seconds),
        max_delay=_number(retry_t, "max_delay", "retry", errors, rd.max_delay, low=0, high=86400, unit=seconds),
        max_age_seconds=_number(retry_t, "max_age_seconds", "retry", errors, rd.max_age_seconds, low=0,
                                high=90 * 86400, above=True, unit=seconds),
    )
    if retry.max_delay < retry.base_delay:
        errors.add("retry.max_delay", f"{retry.max_delay:g} is less than retry.base_delay ({retry.base_delay:g}); "
                                      "raise max_delay or lower base_delay")

    rec_t = _table(data, "receiver", "", errors)
    _check_keys(rec_t, "receiver", "receiver", errors)
    rec_secret = _typed(rec_t, "secret", str, "receiver", errors, "")
    try:
        rec_secret = resolve_secret(rec_secret, "receiver.secret", env)
    except ConfigError as exc:
        errors.add("receiver.secret", str(exc))
    if rec_secret and len(rec_secret) < MIN_RECEIVER_SECRET:
        errors.add("receiver.secret", f"is {len(rec_secret)} characters long; use at least {MIN_RECEIVER_SECRET} "
                                      "random characters (e.g. python -c 'import secrets; "
                                      "print(secrets.token_urlsafe(32))')")
    rec_host = env.get("VTDUI_RECEIVER_HOST") or _typed(rec_t, "host", str, "receiver", errors, "127.0.0.1")
    if not rec_host or any(c.isspace() or unicodedata.category(c) in {"Cc", "Cf"} for c in rec_host):
        errors.add("receiver.host", f"{rec_host!r} is not a host name or address; e.g. 127.0.0.1")
    public_url = env.get("VTDUI_RECEIVER_PUBLIC_URL") or _typed(rec_t, "public_url", str, "receiver", errors, None)
    if public_url is not None:
        public_url, rec_credentials = _url(public_url, "receiver.public_url", errors)
        if rec_credentials is not None:
            errors.add("receiver.public_url", "must not hold user:password (HAPI authenticates with "
                                              "receiver.secret); remove it")
    receiver = ReceiverSettings(
        host=rec_host,
        port=_number(rec_t, "port", "receiver", errors, 8765, low=1, high=65535, integer=True),
        public_url=public_url,
        secret=rec_secret,
    )

    out_t = _table(data, "outbox", "", errors)
    _check_keys(out_t, "outbox", "outbox", errors)
    od = OutboxSettings()
    outbox = OutboxSettings(
        # below 0.1 s the worker would spin on the database
        poll_seconds=_number(out_t, "poll_seconds", "outbox", errors, od.poll_seconds, low=0.1, high=3600,
                             unit=seconds),
        reconcile_seconds=_number(out_t, "reconcile_seconds", "outbox", errors, od.reconcile_seconds, low=1,
                                  high=86400, unit=seconds),
        lease_seconds=_number(out_t, "lease_seconds", "outbox", errors, od.lease_seconds, low=1, high=86400,
                              unit=seconds),
    )

    db_t = _table(data, "database", "", errors)
    _check_keys(db_t, "database", "database", errors)
    db_url: str | None = env.get("VTDUI_DATABASE_URL") or _typed(db_t, "url", str, "database", errors, None)
    if db_url:
        try:
            db_url = resolve_secret(db_url, "database.url", env)
        except ConfigError as exc:
            errors.add("database.url", str(exc))
        if not db_url.startswith(("postgresql://", "postgres://")):
            errors.add("database.url", "must start with postgresql:// (or be left out: SQLite in state_dir)")
    else:
        db_url = None
    database = DatabaseSettings(url=db_url, pool_size=_number(db_t, "pool_size", "database", errors, 5, low=1,
                                                              high=100, integer=True))

    log_t = _table(data, "logging", "", errors)
    _check_keys(log_t, "logging", "logging", errors)
    level = str(_typed(log_t, "level", str, "logging", errors, "INFO")).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        errors.add("logging.level", f"{level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    fmt = _typed(log_t, "format", str, "logging", errors, "json")
    if fmt not in {"json", "text"}:
        errors.add("logging.format", f"{fmt!r} is not 'json' or 'text'")

    state_raw = env.get("VTDUI_STATE_DIR") or _typed(data, "state_dir", str, "config", errors, ".vtdui")
    hooks_raw = env.get("VTDUI_HOOKS_DIR") or _typed(data, "hooks_dir", str, "config", errors, "")
    for key, raw_dir in (("state_dir", state_raw), ("hooks_dir", hooks_raw)):
        if "\0" in raw_dir or any(unicodedata.category(c) == "Cc" for c in raw_dir):
            errors.add(key, "contains control characters; write a plain directory path")
    errors.raise_if_any()
    return Config(
        path=file, state_dir=_path(base, state_raw) or Path(".vtdui"),
        hooks_dir=_path(base, hooks_raw) if hooks_raw else None,
        hapi=hapi, viatrajectoire=vt, legal_entities=entities, sync=sync, retry=retry, receiver=receiver,
        outbox=outbox, database=database, log_level=level, log_format=fmt, warnings=tuple(warnings),
    )
