"""``vtdui evidence DIR``: export the flux 2 and 4 payloads and their HTTP traces for the referencing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vtdui.config import load_config
from vtdui.evidence import export_evidence

__all__ = ["evidence"]


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--all", "include_unsent", is_flag=True,
              help="Also export attempted items that were refused or are waiting (error-handling evidence).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (directory, items, files) as JSON.")
def evidence(directory: Path, config_path: Path | None, include_unsent: bool, as_json: bool) -> None:
    """Write one JSON file per ESMSTask / ESMSConsent sent (as sent) and one with its HTTP exchange trace.

    Secrets (Authorization, tokens, client secret) and health data (free texts, NIR-like numbers) are
    removed. Submit the esms-*.json files to the ANS validators (EVSClient esms-task / esms-consent).
    """
    config = load_config(config_path)
    report = export_evidence(config.state_dir, directory, include_unsent=include_unsent, config=config)
    if as_json:
        click.echo(json.dumps({"directory": str(report.directory), "items": report.items,
                               "files": [str(f) for f in report.files],
                               "without_trace": list(report.without_trace)}, indent=2))
        return
    click.echo(f"{report.items} item(s) exported to {report.directory} ({len(report.files)} files)")
    if report.without_trace:
        click.echo("no HTTP trace kept for items " + ", ".join(map(str, report.without_trace)) +
                   " (sent before the exchange log existed or by another state directory)")
