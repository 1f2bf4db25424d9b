"""Plugin selection and description: unknown ``VTDUI_PLUGINS`` names, wrappers, a plugin given twice."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vtdui.errors import ConfigError
from vtdui.plugins import describe_plugins, get_plugin_manager

WRAPPER = textwrap.dedent("""
    from vtdui import hookimpl

    @hookimpl(wrapper=True)
    def map_decision(document, context):
        entries = yield
        return entries

    @hookimpl
    def before_store(entries, context):
        pass
""")


def _vtdui(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from vtdui.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env})


def test_an_unknown_name_in_vtdui_plugins_stops_with_the_known_names(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme.py").write_text(WRAPPER)
    monkeypatch.setenv("VTDUI_PLUGINS", "acme,acmee")
    with pytest.raises(ConfigError, match=r"unknown plugin\(s\): acmee; known plugins: .*acme"):
        get_plugin_manager(tmp_path, load_entrypoints=False)
    monkeypatch.setenv("VTDUI_PLUGINS", "acme")
    assert "hooks-dir:acme" in dict(get_plugin_manager(tmp_path, load_entrypoints=False).list_name_plugin())


def test_vtdui_plugins_command_exits_non_zero_on_an_unknown_name(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "acme.py").write_text(WRAPPER)
    done = _vtdui("plugins", cwd=tmp_path, VTDUI_PLUGINS="nosuch", VTDUI_HOOKS_DIR=str(hooks))
    assert done.returncode == 1
    assert "nosuch" in done.stderr and "known plugins:" in done.stderr and "acme" in done.stderr
    assert "Traceback" not in done.stderr


def test_vtdui_plugins_marks_wrappers(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "acme.py").write_text(WRAPPER)
    done = _vtdui("plugins", cwd=tmp_path, VTDUI_PLUGINS="acme", VTDUI_HOOKS_DIR=str(hooks))
    assert done.returncode == 0, done.stderr
    assert "hooks-dir:acme  [hooks-dir]\n    hooks: before_store, map_decision (wrapper)\n" in done.stdout
    info = {i.name: i for i in describe_plugins(get_plugin_manager(hooks, load_entrypoints=False))}
    assert info["hooks-dir:acme"].wrappers == ("map_decision",)
    assert info["builtin:vtdui.mapping.builtin"].wrappers == ()


def test_a_plugin_also_loaded_from_the_hooks_dir_can_be_given_as_extra(tmp_path: Path) -> None:
    (tmp_path / "acme.py").write_text(WRAPPER)
    pm = get_plugin_manager(tmp_path, load_entrypoints=False)
    [module] = [p for name, p in pm.list_name_plugin() if name == "hooks-dir:acme"]
    # what a test does with a plugin that is also installed: no pluggy "already registered" ValueError
    pm2 = get_plugin_manager(tmp_path, load_entrypoints=False, extra=(module,))
    assert [name for name, p in pm2.list_name_plugin() if p is module] == ["hooks-dir:acme"]
