"""Finding, loading and calling plugins.

Built-in and third-party plugins both come from the ``eneca_bot.plugins`` entry point
group. An entry point names a module or a class; a class is instantiated once per gateway,
so plugin state lives on the instance, never in module globals.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy
from loguru import logger

from core import hookspecs
from core.errors import PluginError

ENTRY_POINT_GROUP = "eneca_bot.plugins"
PROJECT_NAME = "eneca_bot"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A discovered plugin, as ``eneca-bot plugins`` lists it."""

    name: str
    target: str
    distribution: str
    version: str
    enabled: bool


def discover() -> dict[str, metadata.EntryPoint]:
    """Every installed plugin entry point, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def describe(enabled: Iterable[str]) -> list[PluginInfo]:
    wanted = set(enabled)
    infos = []
    for name, ep in sorted(discover().items()):
        dist = ep.dist
        infos.append(
            PluginInfo(
                name=name,
                target=ep.value,
                distribution=dist.metadata["Name"] if dist else "?",
                version=dist.version if dist else "?",
                enabled=name in wanted,
            )
        )
    return infos


def _load(name: str, entry_points: Mapping[str, metadata.EntryPoint]) -> Any:
    if name not in entry_points:
        known = ", ".join(sorted(entry_points)) or "none"
        raise PluginError(
            f"plugin {name!r} is enabled but not installed "
            f"(installed plugins: {known}; check PLUGINS)"
        )
    try:
        return entry_points[name].load()
    except Exception as exc:
        raise PluginError(f"plugin {name!r} failed to import: {type(exc).__name__}: {exc}") from exc


def create_plugin_manager(
    enabled: Iterable[str], extra: Mapping[str, Any] | None = None
) -> pluggy.PluginManager:
    """Register the enabled plugins, in order; ``extra`` supplies objects by name (tests)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    entry_points = discover()
    extra = dict(extra or {})
    for name in enabled:
        obj = extra.pop(name) if name in extra else _load(name, entry_points)
        if inspect.isclass(obj):
            obj = obj()
        try:
            pm.register(obj, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from exc
    for name, obj in extra.items():  # objects given directly are always enabled
        pm.register(obj() if inspect.isclass(obj) else obj, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from exc
    return pm


def _impls(pm: pluggy.PluginManager, hook_name: str) -> list[pluggy.HookImpl]:
    # pluggy calls the last-registered and tryfirst implementations first.
    return list(reversed(getattr(pm.hook, hook_name).get_hookimpls()))


async def _call(impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
    result = impl.function(*(kwargs[arg] for arg in impl.argnames))
    if inspect.isawaitable(result):
        result = await result
    return result


async def call_each(
    pm: pluggy.PluginManager, hook_name: str, *, isolate: bool = True, **kwargs: Any
) -> list[tuple[str, Any]]:
    """Call every implementation, awaiting async ones; ``(plugin name, result)`` pairs.

    With ``isolate`` an implementation that raises is logged with its plugin's name and
    skipped; without it a :class:`PluginError` naming the plugin is raised.
    """
    results = []
    for impl in _impls(pm, hook_name):
        try:
            result = await _call(impl, kwargs)
        except Exception as exc:
            if not isolate:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            logger.opt(exception=exc).error(
                "plugin {} raised in {}: {}", impl.plugin_name, hook_name, exc
            )
            continue
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


async def call_first(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> Any:
    """The first non-None result of a provider hook; a raising provider stops start-up."""
    for impl in _impls(pm, hook_name):
        try:
            result = await _call(impl, kwargs)
        except Exception as exc:
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        if result is not None:
            return result
    return None


def call_each_sync(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a synchronous set-up hook (settings, routes, CLI); failures name the plugin."""
    results = []
    for impl in _impls(pm, hook_name):
        try:
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        if result is not None:
            results.append((impl.plugin_name, result))
    return results
