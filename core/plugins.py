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
from core.contract.errors import PluginError

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


def list_plugins(enabled: Iterable[str]) -> list[PluginInfo]:
    """Every installed plugin, and whether ``enabled`` names it."""
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


def is_firstresult(pm: pluggy.PluginManager, hook_name: str) -> bool:
    """What the hook's spec in :mod:`core.hookspecs` says: does the first result win?"""
    spec = getattr(pm.hook, hook_name).spec
    return bool(spec is not None and spec.opts.get("firstresult"))


async def call_hook(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> Any:
    """Call a hook the way its spec says, awaiting async implementations.

    A ``firstresult`` spec (a provider) returns the first non-None result, and an
    implementation that raises becomes a :class:`PluginError` naming the plugin (at
    start-up it stops the gateway). Any other spec (an event) calls every implementation
    behind its own error boundary: one that raises is logged with its plugin's name and
    skipped; the ``(plugin name, result)`` pairs of the non-None results are returned.
    """
    if is_firstresult(pm, hook_name):
        return await _call_first(pm, hook_name, kwargs)
    return await _call_each(pm, hook_name, kwargs)


async def _call_each(
    pm: pluggy.PluginManager, hook_name: str, kwargs: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    results = []
    for impl in _impls(pm, hook_name):
        try:
            result = await _call(impl, kwargs)
        except Exception as exc:
            logger.opt(exception=exc).error(
                "plugin {} raised in {}: {}", impl.plugin_name, hook_name, exc
            )
            continue
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


async def _call_first(pm: pluggy.PluginManager, hook_name: str, kwargs: Mapping[str, Any]) -> Any:
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
    """Call a synchronous set-up hook (settings, routes, CLI): every implementation, in
    order; ``(plugin name, result)`` pairs. A failure names the plugin and stops start-up.
    No set-up spec is ``firstresult``; one that were would be refused here."""
    if is_firstresult(pm, hook_name):
        raise ValueError(f"{hook_name} is a firstresult hook: call it with call_hook")
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
