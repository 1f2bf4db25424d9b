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
``"file:/path"`` (read from a file, trailing newline removed).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtdui.errors import ConfigError
from vtdui.identifiers import is_valid_finess

__all__ = [
    "Config",
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
    hooks_dir: Path | None = Path("hooks")
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
            return path.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from exc
    return value


# ---------------------------------------------------------------------------------------------------
# Validation


class _Errors:
    """Collects every mistake so the user fixes them in one go."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            raise ConfigError(f"invalid configuration in {self.source}:\n{lines}")


_SCHEMA: dict[str, set[str]] = {
    "": {"state_dir", "hooks_dir", "hapi", "viatrajectoire", "legal_entities", "sync", "retry", "receiver",
         "outbox", "logging", "database"},
    "hapi": {"base_url", "authorization", "timeout"},
    "viatrajectoire": {"base_url", "token_url", "client_id", "client_secret", "ca_file", "timeout", "page_size",
                       "token_renew_margin", "token_auth", "token_scope", "max_response_bytes"},
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


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _url(value: str, where: str, errors: _Errors) -> str:
    if not value.startswith(("http://", "https://")):
        errors.add(where, f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


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
            id_unite=str(item["id_unite"]), nom_unite=str(item["nom_unite"]),
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
        for j, eg in enumerate(item.get("establishments", [])):
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
                finess_eg=finess_eg, name=str(eg.get("name", "")),
                is_esat=_typed(eg, "is_esat", bool, w, errors, False),
                units=_units(eg.get("units", []), f"{w}.units", errors),
            ))
        if not establishments:
            errors.add(f"{where}.establishments", "at least one establishment (FINESS EG) is required")
        cert = _path(base, item.get("cert_file"))
        key = _path(base, item.get("key_file"))
        p12 = _path(base, item.get("p12_file"))
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
        entities.append(LegalEntity(finess_ej=finess_ej, name=str(item.get("name", finess_ej)),
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
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"configuration file {file} does not exist; create it or pass --config "
                              "with the right path (the simulator writes one in its data directory)") from None
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {file}: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        base = file.resolve().parent
    errors = _Errors(str(file) if file else "the defaults")
    _check_keys(data, "", "", errors)

    hapi_t = _table(data, "hapi", "", errors)
    _check_keys(hapi_t, "hapi", "hapi", errors)
    hapi_url = env.get("FHIR_BASE_URL") or _typed(hapi_t, "base_url", str, "hapi", errors, DEFAULT_HAPI_URL)
    hapi = HapiSettings(base_url=_url(hapi_url, "hapi.base_url", errors),
                        authorization=_typed(hapi_t, "authorization", str, "hapi", errors, None),
                        timeout=_typed(hapi_t, "timeout", float, "hapi", errors, 60.0))

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
    vt = ViaTrajectoireSettings(
        base_url=_url(env.get("VTDUI_VT_BASE_URL") or _typed(vt_t, "base_url", str, "viatrajectoire", errors,
                                                            defaults.base_url), "viatrajectoire.base_url", errors),
        token_url=_url(env.get("VTDUI_VT_TOKEN_URL") or _typed(vt_t, "token_url", str, "viatrajectoire", errors,
                                                              defaults.token_url), "viatrajectoire.token_url",
                       errors),
        client_id=_typed(vt_t, "client_id", str, "viatrajectoire", errors, ""),
        client_secret=secret,
        ca_file=ca_file,
        timeout=_typed(vt_t, "timeout", float, "viatrajectoire", errors, defaults.timeout),
        page_size=_typed(vt_t, "page_size", int, "viatrajectoire", errors, None),
        token_renew_margin=_typed(vt_t, "token_renew_margin", float, "viatrajectoire", errors,
                                  defaults.token_renew_margin),
        token_auth=_typed(vt_t, "token_auth", str, "viatrajectoire", errors, defaults.token_auth),
        token_scope=_typed(vt_t, "token_scope", str, "viatrajectoire", errors, None) or None,
        max_response_bytes=_typed(vt_t, "max_response_bytes", int, "viatrajectoire", errors,
                                  defaults.max_response_bytes),
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
        interval_seconds=_typed(sync_t, "interval_seconds", float, "sync", errors, sd.interval_seconds),
        first_lookback_days=_typed(sync_t, "first_lookback_days", int, "sync", errors, sd.first_lookback_days),
        max_lookback_days=_typed(sync_t, "max_lookback_days", int, "sync", errors, sd.max_lookback_days),
        overlap_seconds=_typed(sync_t, "overlap_seconds", float, "sync", errors, sd.overlap_seconds),
        fetch_evaluations=_typed(sync_t, "fetch_evaluations", bool, "sync", errors, sd.fetch_evaluations),
        max_concurrent=_typed(sync_t, "max_concurrent", int, "sync", errors, sd.max_concurrent),
        max_concurrent_per_entity=_typed(sync_t, "max_concurrent_per_entity", int, "sync", errors,
                                         sd.max_concurrent_per_entity),
        failure_backoff_seconds=_typed(sync_t, "failure_backoff_seconds", float, "sync", errors,
                                       sd.failure_backoff_seconds),
        lease_seconds=_typed(sync_t, "lease_seconds", float, "sync", errors, sd.lease_seconds),
        quarantine_backoff_seconds=_typed(sync_t, "quarantine_backoff_seconds", float, "sync", errors,
                                          sd.quarantine_backoff_seconds),
        quarantine_max_backoff_seconds=_typed(sync_t, "quarantine_max_backoff_seconds", float, "sync", errors,
                                              sd.quarantine_max_backoff_seconds),
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
    for name in ("max_concurrent", "max_concurrent_per_entity"):
        if getattr(sync, name) < 1:
            errors.add(f"sync.{name}", "must be at least 1")
    for name in ("failure_backoff_seconds", "lease_seconds"):
        if getattr(sync, name) <= 0:
            errors.add(f"sync.{name}", "must be a positive number of seconds")
    if sync.interval_seconds > 86400:
        errors.add("sync.interval_seconds", "must be at most 86400: the IG requires polling at least daily (J-1)")

    retry_t = _table(data, "retry", "", errors)
    _check_keys(retry_t, "retry", "retry", errors)
    rd = RetrySettings()
    retry = RetrySettings(
        attempts=_typed(retry_t, "attempts", int, "retry", errors, rd.attempts),
        base_delay=_typed(retry_t, "base_delay", float, "retry", errors, rd.base_delay),
        max_delay=_typed(retry_t, "max_delay", float, "retry", errors, rd.max_delay),
        max_age_seconds=_typed(retry_t, "max_age_seconds", float, "retry", errors, rd.max_age_seconds),
    )

    rec_t = _table(data, "receiver", "", errors)
    _check_keys(rec_t, "receiver", "receiver", errors)
    rec_secret = _typed(rec_t, "secret", str, "receiver", errors, "")
    try:
        rec_secret = resolve_secret(rec_secret, "receiver.secret", env)
    except ConfigError as exc:
        errors.add("receiver.secret", str(exc))
    receiver = ReceiverSettings(
        host=env.get("VTDUI_RECEIVER_HOST") or _typed(rec_t, "host", str, "receiver", errors, "127.0.0.1"),
        port=_typed(rec_t, "port", int, "receiver", errors, 8765),
        public_url=env.get("VTDUI_RECEIVER_PUBLIC_URL") or _typed(rec_t, "public_url", str, "receiver", errors, None),
        secret=rec_secret,
    )

    out_t = _table(data, "outbox", "", errors)
    _check_keys(out_t, "outbox", "outbox", errors)
    od = OutboxSettings()
    outbox = OutboxSettings(
        poll_seconds=_typed(out_t, "poll_seconds", float, "outbox", errors, od.poll_seconds),
        reconcile_seconds=_typed(out_t, "reconcile_seconds", float, "outbox", errors, od.reconcile_seconds),
        lease_seconds=_typed(out_t, "lease_seconds", float, "outbox", errors, od.lease_seconds),
    )
    for name in ("poll_seconds", "reconcile_seconds", "lease_seconds"):
        if getattr(outbox, name) <= 0:
            errors.add(f"outbox.{name}", "must be a positive number of seconds")

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
    database = DatabaseSettings(url=db_url, pool_size=_typed(db_t, "pool_size", int, "database", errors, 5))
    if database.pool_size < 1:
        errors.add("database.pool_size", "must be at least 1")

    log_t = _table(data, "logging", "", errors)
    _check_keys(log_t, "logging", "logging", errors)
    level = str(_typed(log_t, "level", str, "logging", errors, "INFO")).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        errors.add("logging.level", f"{level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    fmt = _typed(log_t, "format", str, "logging", errors, "json")
    if fmt not in {"json", "text"}:
        errors.add("logging.format", f"{fmt!r} is not 'json' or 'text'")

    state_raw = env.get("VTDUI_STATE_DIR") or _typed(data, "state_dir", str, "config", errors, ".vtdui")
    hooks_raw = env.get("VTDUI_HOOKS_DIR") or _typed(data, "hooks_dir", str, "config", errors, "hooks")
    errors.raise_if_any()
    return Config(
        path=file, state_dir=_path(base, state_raw) or Path(".vtdui"),
        hooks_dir=_path(base, hooks_raw) if hooks_raw else None,
        hapi=hapi, viatrajectoire=vt, legal_entities=entities, sync=sync, retry=retry, receiver=receiver,
        outbox=outbox, database=database, log_level=level, log_format=fmt,
    )
