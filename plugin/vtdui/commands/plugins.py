"""``vtdui plugins``: list the loaded plugins and the hooks each implements."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from vtdui.config import load_config
from vtdui.plugins import describe_plugins, get_plugin_manager


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Configuration file (default: $VTDUI_CONFIG or ./vtdui.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(config_path: Path | None, as_json: bool) -> None:
    """List the loaded plugins: built-ins, entry points and the hooks directory."""
    config = load_config(config_path)
    pm = get_plugin_manager(config.hooks_dir)
    infos = describe_plugins(pm)
    if as_json:
        click.echo(json.dumps([asdict(info) for info in infos], indent=2))
        return
    for info in infos:
        click.echo(f"{info.name}  [{info.origin}]")
        hooks = [f"{hook} (wrapper)" if hook in info.wrappers else hook for hook in info.hooks]
        click.echo(f"    hooks: {', '.join(hooks) or '-'}")
        if info.location:
            click.echo(f"    file:  {info.location}")
