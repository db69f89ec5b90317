"""Building the gateway: configuration, plugins, the one aiohttp application.

``create_app()`` is the app factory that ``eneca-bot serve`` and the tests call. It has no
process-wide side effects: each app writes its own ``app.log`` (added at start-up, removed
at shut-down) and has its own metrics registry; the console logger and the garbage
collector's tuning belong to ``eneca-bot serve`` (:mod:`core.cli`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
from aiohttp import web
from loguru import logger
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from core import __version__
from core.config.settings import (
    CoreSettings,
    PluginSettings,
    build_settings,
    config_path,
    read_toml,
)
from core.config.strict import check_document
from core.contract.errors import ConfigError, PluginError
from core.gateway import Gateway
from core.logs import Redactor, add_file_sink, log_file_path
from core.plugins import call_each_sync, create_plugin_manager, discover
from core.web.access import WebAccess, refuse_shared_keys
from core.web.http import APP_TAG, GATEWAY, request_context
from core.web.metrics import METRICS, Metrics
from core.web.routes import core_routes
from core.web.settings import WebAccessSettings

Overrides = Mapping[str, Mapping[str, Any]]

#: The file this app logs to (``LOG_DIR``/``LOG_FILE``); None: console only.
LOG_FILE = web.AppKey("log_file", Path | None)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Everything known before anything starts: settings of the core and every plugin."""

    core: CoreSettings
    pm: pluggy.PluginManager
    plugin_settings: Mapping[type[BaseSettings], BaseSettings]
    #: Remarks about the configuration that do not stop start-up (logged when serving).
    notes: tuple[str, ...] = ()
    #: Risks a plugin's settings see in the configuration (``PluginSettings.review``).
    warnings: tuple[str, ...] = ()
    #: The TOML file read (absolute), None when there was none.
    config_file: Path | None = None


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env_file: str | os.PathLike[str] | None = ".env",
    overrides: Overrides | None = None,
    plugins: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Read and validate all configuration; raises ``ConfigError`` or ``PluginError``.

    ``overrides`` are the highest layer (CLI flags, tests), keyed by settings section
    (``"core"``, ``"talkme"``...). ``plugins`` adds plugin objects by name without an
    entry point (tests); they run whether or not ``PLUGINS`` lists them.
    """
    overrides = overrides or {}
    path, explicit = config_path(config_file)
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    document = read_toml(path)
    dotenv = Path(env_file) if env_file else None
    core = build_settings(CoreSettings, document, dotenv, overrides.get("core"), path)
    pm = create_plugin_manager(core.plugins, plugins)
    models = {name: model for name, model in call_each_sync(pm, "settings_model")}
    sections = {getattr(m, "section", "") or name: m for name, m in models.items()}
    report = check_document(
        document,
        path,
        {"core": (CoreSettings, WebAccessSettings), **sections},
        [*discover(), *sections],
    )
    if report.errors:
        raise ConfigError("\n".join(report.errors))
    plugin_settings: dict[type[BaseSettings], BaseSettings] = {CoreSettings: core}
    web_access = build_settings(WebAccessSettings, document, dotenv, overrides.get("core"), path)
    refuse_shared_keys(web_access, core)
    plugin_settings[WebAccessSettings] = web_access
    for name, model in models.items():
        section = getattr(model, "section", "") or name
        try:
            plugin_settings[model] = build_settings(
                model, document, dotenv, overrides.get(section), path
            )
        except ConfigError as exc:
            raise ConfigError(f"plugin {name!r}: {exc}") from None
    warnings: list[str] = []
    for model, settings in plugin_settings.items():
        try:
            warnings += settings.review(core) if isinstance(settings, PluginSettings) else []
        except ValueError as exc:
            section = getattr(model, "section", "") or model.__name__
            raise ConfigError(f"[{section}]: {exc}") from None
    loaded = path.absolute() if path.is_file() else None
    return LoadedConfig(core, pm, plugin_settings, tuple(report.notes), tuple(warnings), loaded)


def _secrets_of(settings: BaseSettings) -> list[str]:
    found: list[str] = []
    for value in settings.__dict__.values():
        items = value if isinstance(value, list | tuple) else [value]
        found += [item.get_secret_value() for item in items if isinstance(item, SecretStr)]
    return found


def _lifespan_ctx(
    name: str, generator: AsyncIterator[None]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        try:
            await generator.__anext__()
        except StopAsyncIteration:
            raise PluginError(f"plugin {name!r}: lifespan ended without yielding") from None
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {name!r} failed to start: {exc}") from exc
        yield
        try:
            await generator.__anext__()
        except StopAsyncIteration:
            pass
        except Exception as exc:
            logger.opt(exception=exc).error("plugin {} failed to shut down: {}", name, exc)
        else:
            logger.error("plugin {}: lifespan yielded more than once", name)

    return ctx


def create_app(
    config: LoadedConfig | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env_file: str | os.PathLike[str] | None = ".env",
    overrides: Overrides | None = None,
    plugins: Mapping[str, Any] | None = None,
) -> web.Application:
    """The aiohttp application hosting every enabled plugin."""
    if config is None:
        config = load_config(config_file, env_file=env_file, overrides=overrides, plugins=plugins)
    core = config.core
    redactor = Redactor()
    for settings in config.plugin_settings.values():
        redactor.add(*_secrets_of(settings))
    metrics = Metrics()
    web_settings = config.plugin_settings.get(WebAccessSettings)
    access = WebAccess(
        web_settings if isinstance(web_settings, WebAccessSettings) else WebAccessSettings(),
        core,
        metrics.registry,
    )
    gateway = Gateway(
        core,
        config.pm,
        config.plugin_settings,
        redactor,
        __version__,
        observe_reply=metrics.observe_reply,
        observe_delivery=metrics.observe_delivery,
        access=access,
    )
    access.limits.use(gateway._limits)  # the public limits count where check_rate does

    plugin_middlewares = [
        m
        for _, ms in reversed(call_each_sync(config.pm, "register_middlewares", gateway=gateway))
        for m in ms
    ]
    app = web.Application(
        client_max_size=core.max_body_bytes,
        middlewares=[metrics.middleware(), request_context, *plugin_middlewares],
    )
    app[GATEWAY] = gateway
    app[METRICS] = metrics
    app[APP_TAG] = tag = uuid.uuid4().hex[:8]
    app[LOG_FILE] = log_file_path(Path(core.log_dir), core.log_file)
    app.add_routes(core_routes())
    for name, routes in reversed(call_each_sync(config.pm, "register_routes", gateway=gateway)):
        try:
            app.add_routes(routes)
        except (ValueError, RuntimeError) as exc:
            raise PluginError(f"plugin {name!r} registered a bad route: {exc}") from exc

    async def log_file(app: web.Application) -> AsyncIterator[None]:
        sink = add_file_sink(
            Path(core.log_dir),
            core.log_level,
            core.log_json,
            core.log_rotation,
            core.log_retention,
            redactor,
            tag,
            core.log_file,
        )
        for note in config.notes:
            logger.info("configuration: {}", note)
        for warning in config.warnings:
            logger.warning("{}", warning)
        yield
        if sink is not None:
            logger.remove(sink)

    async def running(app: web.Application) -> AsyncIterator[None]:
        for warning in access.keys.startup_warnings():
            logger.warning(warning)
        await gateway._start()
        logger.info(
            "eneca-bot {} serving with plugins: {}", __version__, ", ".join(gateway.plugin_names)
        )
        yield
        await gateway._stop()

    # The inbox/outbox opens in gateway._start(): a plugin may provide it (durable_backend).
    contexts = [
        log_file,
        *(
            _lifespan_ctx(name, generator)
            for name, generator in reversed(call_each_sync(config.pm, "lifespan", gateway=gateway))
        ),
        running,
    ]
    app.cleanup_ctx.append(_all_or_nothing(contexts))
    return app


def _all_or_nothing(
    contexts: list[Callable[[web.Application], AsyncIterator[None]]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """One cleanup context entering ``contexts`` in order and leaving them in reverse.

    When one fails to start, those already started are closed before the error goes on:
    ``web.run_app`` runs start-up outside its clean-up, and an open database's thread would
    otherwise keep the process alive after it printed the error.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        started: list[AsyncIterator[None]] = []
        try:
            for context in contexts:
                step = context(app).__aiter__()
                await step.__anext__()
                started.append(step)
            yield
        finally:
            for step in reversed(started):
                try:
                    await step.__anext__()
                except StopAsyncIteration:
                    pass
                except Exception as exc:
                    logger.opt(exception=exc).error("shut-down step failed: {}", exc)

    return ctx
