"""The README's command table names every command, sub-command and option the CLI has."""

from __future__ import annotations

import re
from pathlib import Path

import click

from vtdui.cli import COMMANDS, cli

README = Path(__file__).resolve().parents[2] / "README.md"


Leaf = tuple[tuple[str, ...], list[str]]


def _leaves(command: click.Command, path: tuple[str, ...], ctx: click.Context) -> list[Leaf]:
    if isinstance(command, click.Group):
        out: list[Leaf] = []
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            out += _leaves(sub, (*path, name), ctx)
        return out
    options = [o for p in command.params if isinstance(p, click.Option) for o in p.opts
               if o.startswith("--") and o != "--help"]
    return [(path, options)]


def test_the_command_table_is_complete() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    ctx = click.Context(cli)
    missing: list[str] = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        rows = "\n".join(line for line in section.splitlines() if re.match(rf"\| `vtdui {name}\b", line))
        if not rows:
            missing.append(f"vtdui {name}")
            continue
        for path, options in _leaves(command, (name,), ctx):
            if len(path) > 1 and not re.search(rf"\b{path[-1]}\b", rows):
                missing.append("vtdui " + " ".join(path))
            missing += [f"vtdui {' '.join(path)} {option}" for option in options if option not in rows]
    assert missing == [], f"README's command table misses: {missing}"
