"""``vtdui config check``: validate the configuration and say what to fix."""

from __future__ import annotations

from pathlib import Path

import click

from vtdui.config import load_config


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
def check(config_path: Path | None) -> None:
    """Validate the configuration file: every mistake is listed with where it is and how to fix it."""
    cfg = load_config(config_path)
    click.echo(f"configuration OK: {cfg.path or 'embedded defaults'}")
    click.echo(f"  HAPI:            {cfg.hapi.base_url}")
    click.echo(f"  ViaTrajectoire:  {cfg.viatrajectoire.base_url} (token {cfg.viatrajectoire.token_url})")
    click.echo(f"  state directory: {cfg.state_dir}")
    for entity in cfg.legal_entities:
        cert = entity.p12_file or entity.cert_file
        click.echo(f"  legal entity {entity.finess_ej} {entity.name} (certificate {cert})")
        for eg in entity.establishments:
            esat = " ESAT" if eg.is_esat else ""
            click.echo(f"    establishment {eg.finess_eg} {eg.name}{esat}, {len(eg.units)} ROR unit(s)")
