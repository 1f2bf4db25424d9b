"""The hook contract: every hook documented, plugins loaded from every source, misspellings loud."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

from vtdui import hookimpl, hookspecs
from vtdui.errors import ConfigError
from vtdui.plugins import describe_plugins, get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "hooks" / "README.md"


def _spec_names() -> list[str]:
    return sorted(hookspecs.__all__)


def test_every_hookspec_is_exported() -> None:
    pm = pluggy.PluginManager("vtdui")
    pm.add_hookspecs(hookspecs)
    declared = sorted(name for name in dir(pm.hook) if not name.startswith("_"))
    assert declared == _spec_names()


@pytest.mark.parametrize("name", _spec_names())
def test_every_hook_is_documented_with_signature_and_example(name: str) -> None:
    text = README.read_text(encoding="utf-8")
    heading = re.search(rf"^### `{name}\((?P<args>[^)]*)\)`\n(?P<body>.*?)(?=^##|\Z)", text, re.S | re.M)
    assert heading, f"hooks/README.md has no section '### `{name}(...)`'"
    import inspect

    params = list(inspect.signature(getattr(hookspecs, name)).parameters)
    documented = [a.strip() for a in heading.group("args").split(",") if a.strip()]
    assert documented == params, f"{name}: README documents ({documented}), hookspec has ({params})"
    assert "```python" in heading.group("body"), f"{name}: the README section has no example"
    assert getattr(hookspecs, name).__doc__, f"{name}: the hookspec has no docstring"


def test_hooks_dir_plugin_is_loaded_and_called(tmp_path: Path) -> None:
    (tmp_path / "tagger.py").write_text(textwrap.dedent("""
        from vtdui import hookimpl

        @hookimpl
        def before_store(entries, context):
            entries.append({"tagged": True})
    """))
    (tmp_path / "_private.py").write_text("raise RuntimeError('must not be imported')\n")
    pm = get_plugin_manager(tmp_path, load_entrypoints=False)
    entries: list[dict[str, object]] = []
    pm.hook.before_store(entries=entries, context=None)
    assert entries == [{"tagged": True}]
    info = {i.name: i for i in describe_plugins(pm)}
    assert info["hooks-dir:tagger"].hooks == ("before_store",)
    assert info["hooks-dir:tagger"].origin == "hooks-dir"


def test_misspelt_hook_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(textwrap.dedent("""
        from vtdui import hookimpl

        @hookimpl
        def map_decison(document, context):
            return []
    """))
    with pytest.raises(ConfigError, match="map_decison"):
        get_plugin_manager(tmp_path, load_entrypoints=False)


def test_wrong_argument_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "badargs.py").write_text(textwrap.dedent("""
        from vtdui import hookimpl

        @hookimpl
        def before_store(entries, context, surprise):
            pass
    """))
    with pytest.raises(ConfigError, match="badargs"):
        get_plugin_manager(tmp_path, load_entrypoints=False)


def test_broken_hook_module_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    with pytest.raises(ConfigError, match=r"broken\.py.*ModuleNotFoundError"):
        get_plugin_manager(tmp_path, load_entrypoints=False)


def test_vtdui_plugins_env_restricts_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("one", "two"):
        source = "from vtdui import hookimpl\n\n@hookimpl\ndef before_store(entries, context):\n"
        (tmp_path / f"{name}.py").write_text(source + f"    entries.append('{name}')\n")
    monkeypatch.setenv("VTDUI_PLUGINS", "two")
    pm = get_plugin_manager(tmp_path, load_entrypoints=False)
    entries: list[str] = []
    pm.hook.before_store(entries=entries, context=None)
    assert entries == ["two"]


def test_user_firstresult_plugin_overrides_a_trylast_builtin() -> None:
    class Builtin:
        @hookimpl(trylast=True)
        def build_esms_consent(self, consent: dict[str, object], context: object) -> dict[str, object]:
            return {"from": "builtin"}

    class Mine:
        @hookimpl
        def build_esms_consent(self, consent: dict[str, object], context: object) -> dict[str, object] | None:
            return {"from": "mine"} if consent.get("special") else None

    pm = get_plugin_manager(None, load_entrypoints=False, extra=(Builtin(), Mine()), builtins=False)
    assert pm.hook.build_esms_consent(consent={"special": True}, context=None) == {"from": "mine"}
    assert pm.hook.build_esms_consent(consent={}, context=None) == {"from": "builtin"}


def test_register_commands_hook_adds_a_cli_command(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "hello.py").write_text(textwrap.dedent('''
        import click
        from vtdui import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")
    '''))
    command = [sys.executable, "-c", "from vtdui.cli import main; main()", "hello"]
    env = {k: v for k, v in os.environ.items() if k != "VTDUI_HOOKS_DIR"}
    # ./hooks of the working directory is never imported implicitly
    implicit = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, env=env)
    assert implicit.returncode == 2 and "No such command 'hello'" in implicit.stderr
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False,
                         env={**env, "VTDUI_HOOKS_DIR": str(hooks)})
    assert out.returncode == 0, out.stderr
    assert "hello from a plugin" in out.stdout


def test_builtin_plugins_are_registered_by_default() -> None:
    names = {name for name, _ in get_plugin_manager(None, load_entrypoints=False).list_name_plugin()}
    assert {"builtin:vtdui.mapping.builtin", "builtin:vtdui.builders"} <= names
