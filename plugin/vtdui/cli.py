"""The ``vtdui`` command line.

Commands live in :mod:`vtdui.commands`, one module each, and are imported only when used so that
``vtdui --help`` stays fast and one broken optional dependency does not break every command.
"""

from __future__ import annotations

import importlib

import click

from vtdui import __version__
from vtdui.errors import VtduiError
from vtdui.exitcodes import ERROR, INTERRUPTED
from vtdui.urls import redact_userinfo

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
    """Let plugins add commands (hook ``register_commands``).

    Hook files come from ``$VTDUI_HOOKS_DIR`` only: the command line is parsed before any configuration is
    read, and code is never imported implicitly from the current directory.
    """
    import os
    from pathlib import Path

    from vtdui.plugins import get_plugin_manager

    hooks_env = os.environ.get("VTDUI_HOOKS_DIR")
    # VTDUI_PLUGINS names are checked by the command itself, against the configured hooks directory
    pm = get_plugin_manager(Path(hooks_env) if hooks_env else None, check_names=False)
    pm.hook.register_commands(cli=cli)


def main() -> None:
    """Entry point of the console script: expected errors become one clear message, exit 1.

    Exit statuses are those of :mod:`vtdui.exitcodes` (README, "Exit codes").
    """
    try:
        _register_plugin_commands()
        # without standalone mode click returns a command's ``Exit(n)`` status instead of exiting with it
        status = cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(INTERRUPTED) from None
    except click.exceptions.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except VtduiError as exc:
        click.secho(f"Error: {redact_userinfo(str(exc))}", fg="red", err=True)
        raise SystemExit(ERROR) from None
    if isinstance(status, int) and not isinstance(status, bool) and status != 0:
        raise SystemExit(status)
