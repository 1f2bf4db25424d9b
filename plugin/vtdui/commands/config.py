"""``vtdui config check``: validate the configuration and say what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vtdui.config import Config, ConfigProblemsError, load_config
from vtdui.errors import ConfigError


@click.group()
def config() -> None:
    """Inspect the configuration."""


def _summary(cfg: Config, checks: dict[str, Any]) -> dict[str, Any]:
    entities = []
    for entity in cfg.legal_entities:
        found = checks.get(entity.finess_ej)
        entities.append({
            "finess_ej": entity.finess_ej, "name": entity.name,
            "certificate": str(entity.p12_file or entity.cert_file),
            "certificate_not_after": found.not_after.isoformat() if found is not None and found.not_after else None,
            "establishments": [{"finess_eg": eg.finess_eg, "name": eg.name, "is_esat": eg.is_esat,
                                "units": len(eg.units)} for eg in entity.establishments],
        })
    return {"ok": True, "path": str(cfg.path) if cfg.path else None, "hapi": cfg.hapi.base_url,
            "viatrajectoire": {"base_url": cfg.viatrajectoire.base_url, "token_url": cfg.viatrajectoire.token_url},
            "state_dir": str(cfg.state_dir), "hooks_dir": str(cfg.hooks_dir) if cfg.hooks_dir else None,
            "database": "postgresql" if cfg.database.is_postgres else "sqlite",
            "legal_entities": entities, "warnings": list(cfg.warnings)}


@config.command("check")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--no-certificates", is_flag=True, help="Do not open the client certificates.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"ok": ..., "errors"|...} as JSON (exit status unchanged: 1 when not usable).')
def check(config_path: Path | None, no_certificates: bool, as_json: bool) -> None:
    """Validate the configuration file: every mistake is listed with where it is and how to fix it.

    The client certificates are opened as a connection would (PKCS#12 password, key matching the
    certificate, expiry), so a wrong password is found here rather than at the first poll.
    Accepted but doubtful settings are listed as warnings (exit status 0).
    """
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        if not as_json:
            raise
        errors = list(exc.problems) if isinstance(exc, ConfigProblemsError) else [str(exc)]
        click.echo(json.dumps({"ok": False, "errors": errors}, indent=2, ensure_ascii=False))
        raise SystemExit(1) from None
    problems: list[str] = []
    checks: dict[str, Any] = {}
    if not no_certificates:
        from vtdui.viatrajectoire.tls import check_certificates

        checks = {c.finess_ej: c for c in check_certificates(cfg.legal_entities, cfg.viatrajectoire.ca_file)}
        problems = [c.error for c in checks.values() if c.error is not None and c.error != "expired"]
        problems += [f"legal entity {c.finess_ej}: the client certificate expired on {c.not_after:%Y-%m-%d}; "
                     "ask IGC-Santé for a new one and point p12_file (or cert_file/key_file) at it"
                     for c in checks.values() if c.error == "expired"]
    if problems:
        if as_json:
            click.echo(json.dumps({"ok": False, "errors": problems}, indent=2, ensure_ascii=False))
            raise SystemExit(1)
        raise ConfigError("the configuration is not usable:\n" + "\n".join(f"  - {p}" for p in problems))
    if as_json:
        click.echo(json.dumps(_summary(cfg, checks), indent=2, ensure_ascii=False))
        return
    click.echo(f"configuration OK: {cfg.path or 'embedded defaults'}")
    for warning in cfg.warnings:
        click.secho(f"  warning: {warning}", fg="yellow", err=True)
    click.echo(f"  HAPI:            {cfg.hapi.base_url}")
    click.echo(f"  ViaTrajectoire:  {cfg.viatrajectoire.base_url} (token {cfg.viatrajectoire.token_url})")
    click.echo(f"  state directory: {cfg.state_dir}")
    click.echo(f"  hooks directory: {cfg.hooks_dir or 'none (set hooks_dir or $VTDUI_HOOKS_DIR)'}")
    if cfg.database.is_postgres and cfg.database.url:
        from vtdui.postgres import redact_url

        click.echo(f"  state database:  PostgreSQL {redact_url(cfg.database.url)} (schema: `vtdui db status`)")
    else:
        click.echo("  state database:  SQLite files in the state directory (one process)")
    for entity in cfg.legal_entities:
        cert = entity.p12_file or entity.cert_file
        click.echo(f"  legal entity {entity.finess_ej} {entity.name} (certificate {cert})")
        found = checks.get(entity.finess_ej)
        if found is not None and found.not_after is not None:
            click.echo(f"    {found.subject}, valid until {found.not_after:%Y-%m-%d} ({found.days_left} days)")
        for eg in entity.establishments:
            esat = " ESAT" if eg.is_esat else ""
            click.echo(f"    establishment {eg.finess_eg} {eg.name}{esat}, {len(eg.units)} ROR unit(s)")
