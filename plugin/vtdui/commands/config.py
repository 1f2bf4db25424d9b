"""``vtdui config check``: validate the configuration and say what to fix."""

from __future__ import annotations

from pathlib import Path

import click

from vtdui.config import load_config
from vtdui.errors import ConfigError


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--no-certificates", is_flag=True, help="Do not open the client certificates.")
def check(config_path: Path | None, no_certificates: bool) -> None:
    """Validate the configuration file: every mistake is listed with where it is and how to fix it.

    The client certificates are opened as a connection would (PKCS#12 password, key matching the
    certificate, expiry), so a wrong password is found here rather than at the first poll.
    """
    cfg = load_config(config_path)
    problems: list[str] = []
    checks = {}
    if not no_certificates:
        from vtdui.viatrajectoire.tls import check_certificates

        checks = {c.finess_ej: c for c in check_certificates(cfg.legal_entities, cfg.viatrajectoire.ca_file)}
        problems = [c.error for c in checks.values() if c.error is not None and c.error != "expired"]
        problems += [f"legal entity {c.finess_ej}: the client certificate expired on {c.not_after:%Y-%m-%d}; "
                     "ask IGC-Santé for a new one and point p12_file (or cert_file/key_file) at it"
                     for c in checks.values() if c.error == "expired"]
    if problems:
        raise ConfigError("the configuration is not usable:\n" + "\n".join(f"  - {p}" for p in problems))
    click.echo(f"configuration OK: {cfg.path or 'embedded defaults'}")
    click.echo(f"  HAPI:            {cfg.hapi.base_url}")
    click.echo(f"  ViaTrajectoire:  {cfg.viatrajectoire.base_url} (token {cfg.viatrajectoire.token_url})")
    click.echo(f"  state directory: {cfg.state_dir}")
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
