"""The plugin manager: built-in implementations, entry points and the hooks directory.

Loading order (later plugins are called first by pluggy, and built-ins are ``trylast``, so yours win):

1. built-in implementations (:data:`BUILTIN_PLUGINS`), registered as ordinary plugins;
2. installed distributions exposing an entry point in the group ``vtdui``;
3. every ``*.py`` module of the hooks directory, when one is configured (``hooks_dir`` in ``vtdui.toml``
   or ``$VTDUI_HOOKS_DIR``; never implicitly the current directory's ``hooks/``: code is not imported from
   wherever a command happens to run). Names starting with ``_`` or ``test_`` are skipped.

``VTDUI_PLUGINS`` (comma-separated plugin names) restricts what loads from 2 and 3, and an empty value
loads none of them; a name that is neither an installed entry point nor a file of the hooks directory
stops the start with the known names. After loading, ``check_pending()`` makes a misspelt hook name fail loudly.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pluggy

from vtdui import PROJECT_NAME, hookspecs
from vtdui.errors import ConfigError

__all__ = ["BUILTIN_PLUGINS", "PluginInfo", "describe_plugins", "get_plugin_manager", "known_plugins",
           "load_hooks_dir"]

#: modules holding the default behaviour, registered as ordinary plugins
BUILTIN_PLUGINS: tuple[str, ...] = ("vtdui.mapping.builtin", "vtdui.builders")


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``vtdui plugins`` shows it."""

    name: str
    origin: str  # "builtin", "entrypoint" or "hooks-dir"
    hooks: tuple[str, ...]
    location: str | None
    #: the hooks of ``hooks`` this plugin implements as a wrapper (``@hookimpl(wrapper=True)``)
    wrappers: tuple[str, ...] = ()


def _allowed(env: dict[str, str] | os._Environ[str]) -> set[str] | None:
    raw = env.get("VTDUI_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def load_hooks_dir(pm: pluggy.PluginManager, directory: Path, allowed: set[str] | None = None) -> list[str]:
    """Import every plugin module of ``directory`` and register it; return the registered names.

    Raises:
        ConfigError: when a module cannot be imported (the message names the file and the error).
    """
    names: list[str] = []
    if not directory.is_dir():
        return names
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith(("_", "test_")) or path.name == "conftest.py":
            continue
        name = f"hooks-dir:{path.stem}"
        if allowed is not None and path.stem not in allowed and name not in allowed:
            continue
        module = _import_file(path, f"vtdui_hooks_{path.stem}")
        if pm.is_registered(module):
            continue
        _register(pm, module, name)
        names.append(name)
    return names


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None = None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin {name or plugin!r} is invalid: {exc}") from exc


def _import_file(path: Path, module_name: str) -> ModuleType:
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(path):
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load hook module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ConfigError(f"hook module {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def get_plugin_manager(hooks_dir: Path | None = None, *, load_entrypoints: bool = True,
                       extra: tuple[object, ...] = (), builtins: bool = True,
                       check_names: bool = True) -> pluggy.PluginManager:
    """Build a plugin manager with built-ins, entry points, the hooks directory and ``extra`` plugins.

    Args:
        hooks_dir: directory of local hook modules (``None``, the default: load none).
        load_entrypoints: load distributions registered under the ``vtdui`` entry-point group.
        extra: plugin objects registered last (tests, embedding applications).
        builtins: register :data:`BUILTIN_PLUGINS` (turn off to replace the default behaviour wholesale).
        check_names: fail when ``VTDUI_PLUGINS`` names a plugin that is neither an installed entry point
            nor a file of ``hooks_dir`` (off only where the hooks directory is not the configured one yet).

    Raises:
        ConfigError: a plugin failed to import, implements a hook that does not exist / with arguments
            the specification does not have, or ``VTDUI_PLUGINS`` names an unknown plugin.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS if builtins else ():
        pm.register(importlib.import_module(module_name), name=f"builtin:{module_name}")
    allowed = _allowed(os.environ)
    if load_entrypoints:
        if allowed is None:
            pm.load_setuptools_entrypoints(PROJECT_NAME)
        else:
            for name in sorted(allowed):
                pm.load_setuptools_entrypoints(PROJECT_NAME, name=name)
    if hooks_dir is not None:
        load_hooks_dir(pm, hooks_dir, allowed)
    if allowed and check_names:
        _check_allowed(allowed, hooks_dir)
    for plugin in extra:
        if not pm.is_registered(plugin):  # already loaded from its entry point or the hooks directory
            _register(pm, plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin {exc.plugin!r} is invalid: {exc}") from exc
    return pm


def known_plugins(hooks_dir: Path | None) -> list[str]:
    """Names ``VTDUI_PLUGINS`` may list: installed entry points of group ``vtdui`` and hook files of ``hooks_dir``."""
    names = {ep.name for ep in importlib.metadata.entry_points(group=PROJECT_NAME)}
    if hooks_dir is not None and hooks_dir.is_dir():
        names.update(path.stem for path in hooks_dir.glob("*.py")
                     if not path.name.startswith(("_", "test_")) and path.name != "conftest.py")
    return sorted(names)


def _check_allowed(allowed: set[str], hooks_dir: Path | None) -> None:
    """A name of ``VTDUI_PLUGINS`` that is no plugin stops the start (a typo would silently run without it)."""
    known = known_plugins(hooks_dir)
    unknown = sorted(name for name in allowed if name.removeprefix("hooks-dir:") not in known)
    if unknown:
        raise ConfigError(f"VTDUI_PLUGINS names unknown plugin(s): {', '.join(unknown)}; "
                          f"known plugins: {', '.join(known) or 'none installed'}")


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Describe every registered plugin: name, origin, implemented hooks, file."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos: list[PluginInfo] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        callers = pm.get_hookcallers(plugin) or []
        hooks = tuple(sorted(caller.name for caller in callers))
        wrappers = tuple(sorted(caller.name for caller in callers for impl in caller.get_hookimpls()
                                if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)))
        if name.startswith("builtin:"):
            origin = "builtin"
        elif id(plugin) in dists:
            origin = f"entrypoint ({dists[id(plugin)].project_name})"
        elif name.startswith("hooks-dir:"):
            origin = "hooks-dir"
        else:
            origin = "registered"
        infos.append(PluginInfo(name=name, origin=origin, hooks=hooks,
                                location=getattr(plugin, "__file__", None), wrappers=wrappers))
    return infos
