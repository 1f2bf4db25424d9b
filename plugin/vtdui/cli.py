"""The ``vtdui`` command line.

Commands live in :mod:`vtdui.commands`, one module each, and are imported only when used so that
``vtdui --help`` stays fast and one broken optional dependency does not break every command.
"""

from __future__ import annotations

import importlib

import click

from vtdui import __version__
from vtdui.errors import VtduiError

#: command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "hapi": "vtdui.commands.hapi:hapi",
    "demo": "vtdui.commands.demo:demo",
    "plugins": "vtdui.commands.plugins:plugins",
    "simulator": "vtdui.commands.simulator:simulator",
    "cda": "vtdui.commands.cda:cda",
    "validate": "vtdui.commands.validate:validate",
    "terminology": "vtdui.commands.terminology:terminology",
    "sync": "vtdui.commands.sync:sync",
    "run": "vtdui.commands.run:run",
    "status": "vtdui.commands.status:status",
    "config": "vtdui.commands.config:config",
    "setup": "vtdui.commands.setup:setup",
    "outbox": "vtdui.commands.outbox:outbox",
    "quarantine": "vtdui.commands.quarantine:quarantine",
    "evidence": "vtdui.commands.evidence:evidence",
    "rehearse": "vtdui.commands.rehearse:rehearse",
    "db": "vtdui.commands.db:db",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List the commands whose module exists."""
        lazy = {name for name in COMMANDS if self._load(name) is not None}
        return sorted(lazy | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return one command (plugin-registered commands included)."""
        return self.commands.get(cmd_name) or self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vtdui")
def cli() -> None:
    """vtdui: a HAPI FHIR server as the DUI's repository, connected to ViaTrajectoire."""


def _register_plugin_commands() -> None:
    """Let plugins add commands (hook ``register_commands``); hooks dir from ``$VTDUI_HOOKS_DIR`` or ./hooks."""
    import os
    from pathlib import Path

    from vtdui.plugins import get_plugin_manager

    hooks_dir = Path(os.environ.get("VTDUI_HOOKS_DIR", "hooks"))
    pm = get_plugin_manager(hooks_dir)
    pm.hook.register_commands(cli=cli)


def main() -> None:
    """Entry point of the console script: expected errors become one clear message, exit 1."""
    try:
        _register_plugin_commands()
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(130) from None
    except click.exceptions.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except VtduiError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
